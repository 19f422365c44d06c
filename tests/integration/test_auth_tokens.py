"""Token auth against the real registry and the test token server; redirects across hosts.

Anonymous pulls, authenticated pulls (password and identity token), the token cache, scope
upgrade for an operation that needs ``pull,push``, and the redirect proxy: no credentials reach
a second host, and a redirect to plain HTTP is refused.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs

import pytest

from crossfetch import Cache, Client, Policy
from crossfetch.errors import PolicyRefused, Unauthorized
from crossfetch.policy.credentials import keychain_provider
from crossfetch.transport.auth import RegistryAuth
from tests.integration.conftest import TEST_PASSWORD, TEST_USER, PushedPackage
from tests.support.certs import PKI
from tests.support.proxy import BlobMirror, FaultProxy
from tests.support.registry import Registry
from tests.support.tokenserver import TokenServer

CLI = [sys.executable, "-m", "crossfetch.cli.main"]


def client(tmp_path: Path, pki: PKI, *, user: str | None = None, password: str | None = None,
           docker_config: dict[str, object] | None = None) -> Client:
    policy = Policy.load(ca_bundle=pki.ca_cert, env={})
    docker = tmp_path / "docker"
    docker.mkdir(exist_ok=True)
    if docker_config is not None:
        (docker / "config.json").write_text(json.dumps(docker_config))
    policy.keychains = keychain_provider(policy.objects, username=user, password=password,
                                         env={"DOCKER_CONFIG": str(docker), "PATH": os.defpath})
    return Client(policy, cache=Cache(tmp_path / "cache"), retries=0)


def token_requests(ts: TokenServer, since: int = 0) -> list[tuple[str, list[str], str | None]]:
    """(method, scopes, Authorization scheme) of each token request after ``since``."""
    out = []
    for r in ts.requests[since:]:
        params = parse_qs(r.query if r.method == "GET" else r.body.decode())
        scopes = [s for v in params.get("scope", []) for s in v.split(" ")]
        auth = r.headers.get("authorization")
        out.append((r.method, scopes, auth.split(" ")[0] if auth else None))
    return out


@pytest.fixture
def pkg(packages: dict[str, PushedPackage]) -> PushedPackage:
    return packages["configuration"]


# -- pulls ----------------------------------------------------------------------------------


def test_anonymous_pull_gets_a_pull_token(tmp_path: Path, pki: PKI, token_registry: Registry,
                                          token_server: TokenServer, pkg: PushedPackage) -> None:
    since = len(token_server.requests)
    with client(tmp_path, pki) as c:
        result = c.pull(token_registry.ref(pkg.ref), output=tmp_path / "p.yaml")
    assert result.digest == pkg.built.manifest_digest
    assert (tmp_path / "p.yaml").read_bytes() == pkg.built.package_yaml
    reqs = token_requests(token_server, since)
    assert reqs == [("GET", [f"repository:{pkg.repo}:pull"], None)]  # one token, cached


def test_authenticated_pull_sends_basic_to_the_realm_only(
        tmp_path: Path, pki: PKI, token_registry: Registry, token_server: TokenServer,
        pkg: PushedPackage) -> None:
    since = len(token_server.requests)
    issued = len(token_server.issued)
    with client(tmp_path, pki, user=TEST_USER, password=TEST_PASSWORD) as c:
        c.pull(token_registry.ref(pkg.ref))
        c.head(token_registry.ref(pkg.ref))  # the cached token answers
    assert token_requests(token_server, since) == [
        ("GET", [f"repository:{pkg.repo}:pull"], "Basic")]
    assert token_server.issued[issued]["sub"] == TEST_USER


def test_identity_token_uses_oauth2_refresh_grant(
        tmp_path: Path, pki: PKI, token_registry: Registry, token_server: TokenServer,
        pkg: PushedPackage) -> None:
    refresh = "refresh-token-for-alice-0123456789"
    token_server.refresh_tokens[refresh] = TEST_USER
    since = len(token_server.requests)
    cfg: dict[str, object] = {"auths": {token_registry.host: {"identitytoken": refresh}}}
    with client(tmp_path, pki, docker_config=cfg) as c:
        c.head(token_registry.ref(pkg.ref))
    [req] = token_server.requests[since:]
    form = parse_qs(req.body.decode())
    assert req.method == "POST"
    assert form["grant_type"] == ["refresh_token"] and form["refresh_token"] == [refresh]
    assert form["service"] == ["test-registry"]
    assert "authorization" not in req.headers
    assert token_server.issued[-1]["sub"] == TEST_USER


def test_wrong_password_at_token_server_is_redacted(
        tmp_path: Path, pki: PKI, token_registry: Registry, pkg: PushedPackage) -> None:
    secret = "n0t-the-Password-42"
    with client(tmp_path, pki, user=TEST_USER, password=secret) as c, \
            pytest.raises(Exception) as info:
        c.head(token_registry.ref(pkg.ref))
    err = info.value
    assert type(err).__name__ == "AuthError" and err.cause == "token-denied"  # type: ignore[attr-defined]
    assert "--username/--password-stdin" in str(err)
    for text in (str(err), repr(err), json.dumps(err.to_dict())):  # type: ignore[attr-defined]
        assert secret not in text
        assert base64.b64encode(f"{TEST_USER}:{secret}".encode()).decode() not in text


# -- scopes ---------------------------------------------------------------------------------


def _upload(c: Client, ref: str, actions: str, query: str = "") -> int:
    decision = c.decide(ref)
    ep = decision.endpoints[-1]
    auth = RegistryAuth(ep, decision, actions, transport=c.transport)
    resp = c.transport.send(ep, "POST", f"/v2/{decision.resolved.repository}/blobs/uploads/"
                            + query, auth=auth)
    return resp.status_code


def test_push_scope_in_one_token_request(tmp_path: Path, pki: PKI, token_registry: Registry,
                                         token_server: TokenServer, pkg: PushedPackage) -> None:
    since = len(token_server.requests)
    with client(tmp_path, pki, user=TEST_USER, password=TEST_PASSWORD) as c:
        assert _upload(c, token_registry.ref(pkg.ref), "pull,push") == 202
    assert token_requests(token_server, since) == [
        ("GET", [f"repository:{pkg.repo}:pull,push"], "Basic")]


def test_scope_upgrade_after_insufficient_scope(
        tmp_path: Path, pki: PKI, token_registry: Registry, token_server: TokenServer,
        pkg: PushedPackage) -> None:
    since = len(token_server.requests)
    ref = token_registry.ref(pkg.ref)
    with client(tmp_path, pki, user=TEST_USER, password=TEST_PASSWORD) as c:
        c.head(ref)  # a pull token, cached
        # The flow holds a pull token and is asked to upload: the registry answers 401
        # insufficient_scope, the flow asks once for pull,push and the upload starts.
        assert _upload(c, ref, "pull") == 202
    assert token_requests(token_server, since) == [
        ("GET", [f"repository:{pkg.repo}:pull"], "Basic"),
        ("GET", [f"repository:{pkg.repo}:pull,push"], "Basic")]


def test_several_scopes_in_one_request_for_a_cross_repository_mount(
        tmp_path: Path, pki: PKI, token_registry: Registry, token_server: TokenServer,
        pkg: PushedPackage) -> None:
    since = len(token_server.requests)
    digest = pkg.built.base_layer_digest
    with client(tmp_path, pki, user=TEST_USER, password=TEST_PASSWORD) as c:
        status = _upload(c, token_registry.ref("mounted/copy:v1"), "pull,push",
                         f"?mount={digest}&from={pkg.repo}")
    assert status in (201, 202)
    *_, (_, scopes, _) = token_requests(token_server, since)
    assert sorted(scopes) == sorted([f"repository:{pkg.repo}:pull",
                                     "repository:mounted/copy:pull,push"])


def test_anonymous_push_fails_clearly_after_one_upgrade(
        tmp_path: Path, pki: PKI, token_registry: Registry, token_server: TokenServer,
        pkg: PushedPackage) -> None:
    since = len(token_server.requests)
    with client(tmp_path, pki) as c, pytest.raises(Unauthorized) as info:
        _upload(c, token_registry.ref(pkg.ref), "pull")
    err = info.value
    assert err.cause == "insufficient-scope"
    assert "anonymous" in str(err) and "pull,push" in str(err)
    # The registry's challenge names pull,push: asked for at once, granted pull only, asked
    # again exactly once, then a clear failure (no loop).
    wide = [f"repository:{pkg.repo}:pull,push"]
    assert [s for _, s, _ in token_requests(token_server, since)] == [wide, wide]


# -- redirects to another host ----------------------------------------------------------------


@pytest.fixture
def blob_mirror(https_registry: Registry, pki: PKI) -> Iterator[BlobMirror]:
    """HTTPS "object storage" on 127.0.0.2 serving the shared storage anonymously."""
    with BlobMirror(https_registry.url, upstream_ca=pki.ca_cert, tls=pki.server) as m:
        yield m


@pytest.mark.parametrize("upstream", ["basic_auth_registry", "token_registry"])
def test_no_authorization_follows_a_redirect_to_another_host(
        upstream: str, request: pytest.FixtureRequest, tmp_path: Path, pki: PKI,
        blob_mirror: BlobMirror, pkg: PushedPackage) -> None:
    registry: Registry = request.getfixturevalue(upstream)
    with FaultProxy(registry.url, upstream_ca=pki.ca_cert, tls=pki.server) as proxy:
        proxy.redirect_blobs_to = blob_mirror.url
        with client(tmp_path, pki, user=TEST_USER, password=TEST_PASSWORD) as c:
            result = c.pull(f"{proxy.host}/{pkg.ref}", output=tmp_path / "p.yaml")
        assert result.digest == pkg.built.manifest_digest
        assert (tmp_path / "p.yaml").read_bytes() == pkg.built.package_yaml
        redirected = proxy.requests_for("GET", blobs=True)
        assert redirected and all(r.status == 307 for r in redirected)
        # credentials were in use at the registry ...
        assert all("authorization" in r.headers for r in redirected)
        # ... and none of them reached the second host
        assert blob_mirror.requests
        for r in blob_mirror.requests:
            assert "authorization" not in r.headers, r


def test_redirect_to_plain_http_is_refused(tmp_path: Path, pki: PKI, https_registry: Registry,
                                           basic_auth_registry: Registry,
                                           pkg: PushedPackage) -> None:
    with BlobMirror(https_registry.url, upstream_ca=pki.ca_cert) as plain_mirror, \
            FaultProxy(basic_auth_registry.url, upstream_ca=pki.ca_cert, tls=pki.server) as proxy:
        proxy.redirect_blobs_to = plain_mirror.url
        with client(tmp_path, pki, user=TEST_USER, password=TEST_PASSWORD) as c, \
                pytest.raises(PolicyRefused) as info:
            c.pull(f"{proxy.host}/{pkg.ref}")
        assert info.value.cause == "unsafe-redirect"
        assert "never redirected to plain HTTP" in str(info.value)
        assert plain_mirror.requests == []


def test_cli_pull_with_token_auth_end_to_end(tmp_path: Path, pki: PKI, token_registry: Registry,
                                             pkg: PushedPackage) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")}
    env["DOCKER_CONFIG"] = str(tmp_path)
    out = tmp_path / "p.yaml"
    r = subprocess.run([*CLI, "pull", token_registry.ref(pkg.ref), "--ca-bundle",
                        str(pki.ca_cert), "--username", TEST_USER, "--password-stdin",
                        "--no-node-config", "--cache-dir", str(tmp_path / "c"), "-o", str(out),
                        "-O", "json"], input=TEST_PASSWORD, capture_output=True, text=True,
                       env=env, timeout=120, check=False)
    assert r.returncode == 0, r.stderr + r.stdout
    assert out.read_bytes() == pkg.built.package_yaml
    assert TEST_PASSWORD not in r.stdout + r.stderr
