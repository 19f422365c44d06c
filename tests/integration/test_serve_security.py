"""The bridge is not an open proxy: only configured prefixes reach an upstream.

Every trick is sent byte for byte (no client-side normalisation), and the upstream's own access
log must stay empty. The upstream here is a registry of its own (fresh storage), so nothing
else in the session writes to its log.
"""

from __future__ import annotations

import base64
import http.client
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.proxy import FaultProxy
from tests.support.registry import Registry
from tests.support.serve import BridgeProcess, push_image

DIGEST = "sha256:" + "a" * 64


@pytest.fixture(scope="module")
def upstream(testbed_dir: Path) -> Iterator[Registry]:
    """An empty plain-HTTP registry that only this module talks to."""
    with Registry(testbed_dir / "serve-security", storage=testbed_dir / "serve-security-data") \
            as reg:
        yield reg


@pytest.fixture(scope="module")
def elsewhere(testbed_dir: Path) -> Iterator[Registry]:
    """Another registry, never routed: where tricks would like to go."""
    with Registry(testbed_dir / "serve-elsewhere",
                  storage=testbed_dir / "serve-elsewhere-data") as reg:
        yield reg


@pytest.fixture(scope="module")
def bridge(testbed_dir: Path, upstream: Registry, elsewhere: Registry
           ) -> Iterator[BridgeProcess]:
    policy = testbed_dir / "serve-security-policy.yaml"
    policy.write_text("".join(
        "---\napiVersion: pkg.crossplane.io/v1beta1\nkind: ImageConfig\n"
        f"metadata: {{name: r{i}}}\nspec:\n  matchImages: [{{type: Prefix, prefix: '{h}/'}}]\n"
        "  registry:\n    tls: {mode: Disabled}\n" for i, h in enumerate(
            [upstream.host, elsewhere.host])))
    with BridgeProcess(testbed_dir, [f"team/={upstream.host}/fns/"], "--config", str(policy),
                       "--retries", "0") as b:
        yield b


def send(bridge: BridgeProcess, target: str, *, host: str | None = None,
         method: str = "GET") -> int:
    conn = http.client.HTTPSConnection("127.0.0.1", bridge.port, context=bridge.ssl_context(),
                                       timeout=30)
    try:
        conn.putrequest(method, target, skip_host=True, skip_accept_encoding=True)
        conn.putheader("Host", host if host is not None else bridge.host)
        conn.endheaders()
        resp = conn.getresponse()
        resp.read()
        return resp.status
    finally:
        conn.close()


def tricks(up: Registry, other: Registry) -> list[tuple[str, str, str | None]]:
    """(what, request target, Host header) — none of them may reach any upstream."""
    u, o = up.host, other.host
    return [
        ("unrouted name", "/v2/other/x/manifests/v1", None),
        ("prefix alone is not a repository", "/v2/team/manifests/v1", None),
        ("dot-dot out of the prefix", "/v2/team/../other/x/manifests/v1", None),
        ("dot-dot into the prefix", "/v2/other/../team/x/manifests/v1", None),
        ("dot segment", "/v2/team/./x/manifests/v1", None),
        ("encoded slash", "/v2/team%2Fx/manifests/v1", None),
        ("encoded slash after prefix", "/v2/team/x%2F..%2F..%2Fother/manifests/v1", None),
        ("encoded dot-dot", "/v2/team/%2E%2E/other/manifests/v1", None),
        ("double slash", "/v2/team//x/manifests/v1", None),
        ("at in name", f"/v2/team/x@{o}/manifests/v1", None),
        ("at in reference", f"/v2/team/x/manifests/v1@{o}", None),
        ("colon in name", "/v2/team/x:v1/manifests/v1", None),
        ("host:port in name", f"/v2/team/{o}/x/manifests/v1", None),
        ("registry host as name", f"/v2/{u}/fns/x/manifests/v1", None),
        ("digest with another algorithm", "/v2/team/x/blobs/md5:abcdef", None),
        ("absolute URL in the path", f"/v2/http://{o}/v2/x/manifests/v1", None),
        ("absolute URL after the prefix", f"/v2/team/http://{o}/x/manifests/v1", None),
        ("absolute-form request target", f"http://{o}/v2/x/manifests/v1", None),
        ("absolute-form with a routed path", f"http://{o}/v2/team/x/manifests/v1", None),
        ("Host header naming an upstream", "/v2/x/manifests/v1", o),
        ("Host header naming the routed upstream", "/v2/fns/x/manifests/v1", u),
        ("backslash", "/v2/team\\..\\other/x/manifests/v1", None),
        ("uppercase name", "/v2/TEAM/x/manifests/v1", None),
        ("write through a route", "/v2/team/x/blobs/uploads/", None),
    ]


def test_no_trick_reaches_any_upstream(bridge: BridgeProcess, upstream: Registry,
                                       elsewhere: Registry) -> None:
    mark_u, mark_o = upstream.mark(), elsewhere.mark()
    for what, target, host in tricks(upstream, elsewhere):
        method = "POST" if target.endswith("/uploads/") else "GET"
        status = send(bridge, target, host=host, method=method)
        assert status in (400, 404, 405), f"{what}: {target} answered {status}"
    assert upstream.requests(since=mark_u) == []
    assert elsewhere.requests(since=mark_o) == []


def test_a_routed_request_does_reach_the_upstream(bridge: BridgeProcess,
                                                  upstream: Registry) -> None:
    """The control for the test above: the same kind of request, routed, is forwarded."""
    mark = upstream.mark()
    assert send(bridge, "/v2/team/x/manifests/v1") == 404
    paths = [r.path for r in upstream.requests(since=mark)]
    assert "/v2/fns/x/manifests/v1" in paths


def test_upstream_redirect_elsewhere_is_not_followed(testbed_dir: Path, upstream: Registry,
                                                     elsewhere: Registry) -> None:
    manifest_digest, (layer,) = push_image(upstream.url, "fns/redirected", "v1", [b"x" * 4096])
    # The same blob exists elsewhere, so following the redirect would succeed.
    push_image(elsewhere.url, "fns/redirected", "v1", [b"x" * 4096])
    with FaultProxy(upstream.url) as proxy:
        proxy.redirect_blobs_to = elsewhere.url
        policy = testbed_dir / "serve-redirect-policy.yaml"
        policy.write_text(
            "apiVersion: pkg.crossplane.io/v1beta1\nkind: ImageConfig\nmetadata: {name: p}\n"
            f"spec:\n  matchImages: [{{type: Prefix, prefix: '{proxy.host}/'}}]\n"
            "  registry:\n    tls: {mode: Disabled}\n")
        with BridgeProcess(testbed_dir, [f"r/={proxy.host}/fns/"], "--config", str(policy),
                           "--retries", "0") as b:
            mark = elsewhere.mark()
            status, _, body = b.get(f"/v2/r/redirected/blobs/{layer}")
            assert status == 403
            err = json.loads(body)["errors"][0]
            assert err["code"] == "DENIED" and "--allow-redirect-host" in err["message"]
            assert elsewhere.requests(since=mark) == []
            assert [r.note for r in proxy.requests_for("GET", blobs=True)] == [
                "redirect_blobs_to"]
        # Allowed explicitly, the same redirect is followed (object storage on another host).
        with BridgeProcess(testbed_dir, [f"r/={proxy.host}/fns/"], "--config", str(policy),
                           "--retries", "0", "--allow-redirect-host", "127.0.0.1") as b:
            status, _, body = b.get(f"/v2/r/redirected/blobs/{layer}")
            assert status == 200 and body == b"x" * 4096
    assert manifest_digest


def test_htpasswd_client_auth(testbed_dir: Path, upstream: Registry, tmp_path: Path) -> None:
    push_image(upstream.url, "fns/private", "v1", [b"secret layer"])
    htpasswd = tmp_path / "htpasswd"
    subprocess.run(["htpasswd", "-bBc", "-C", "4", str(htpasswd), "carol", "pw1"], check=True,
                   capture_output=True)
    policy = testbed_dir / "serve-security-policy.yaml"
    with BridgeProcess(testbed_dir, [f"team/={upstream.host}/fns/"], "--config", str(policy),
                       "--htpasswd", str(htpasswd)) as b:
        mark = upstream.mark()
        for auth in (None, "Basic " + base64.b64encode(b"carol:wrong").decode(),
                     "Basic " + base64.b64encode(b"mallory:pw1").decode(), "Bearer x"):
            headers = {"Authorization": auth} if auth else {}
            status, resp_headers, body = b.get("/v2/team/private/manifests/v1", headers=headers)
            assert status == 401
            assert resp_headers["WWW-Authenticate"].startswith("Basic realm=")
            assert json.loads(body)["errors"][0]["code"] == "UNAUTHORIZED"
        assert b.get("/v2/")[0] == 401
        assert upstream.requests(since=mark) == []
        good = {"Authorization": "Basic " + base64.b64encode(b"carol:pw1").decode(),
                "Accept": "application/vnd.oci.image.manifest.v1+json"}
        assert b.get("/v2/team/private/manifests/v1", headers=good)[0] == 200
        assert b.get("/v2/", headers=good)[0] == 200
        # Health and metrics stay open for probes.
        assert b.get("/healthz")[0] == 200 and b.get("/readyz")[0] == 200
        users = {x.get("user") for x in b.requests()}
        assert "carol" in users
        assert "pw1" not in b.log_path.read_text()
