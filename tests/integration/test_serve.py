"""``crossfetch serve`` against real upstreams and unmodified clients (skopeo, raw HTTP).

One bridge serves every kind of upstream of the test bed, each on its own route, and trusts
each upstream only through its policy file. Clients trust only the bridge's CA.
"""

from __future__ import annotations

import base64
import filecmp
import hashlib
import http.client
import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.integration.conftest import MANIFEST_ACCEPT, TEST_PASSWORD, TEST_USER, PushedPackage
from tests.support.certs import PKI
from tests.support.registry import Registry
from tests.support.serve import BridgeProcess

pytestmark = pytest.mark.skipif(shutil.which("skopeo") is None, reason="skopeo missing")


def b64(data: bytes | str) -> str:
    return base64.b64encode(data.encode() if isinstance(data, str) else data).decode()


def imageconfig(name: str, prefix: str, registry: str) -> str:
    return ("apiVersion: pkg.crossplane.io/v1beta1\nkind: ImageConfig\n"
            f"metadata: {{name: {name}}}\n"
            f"spec:\n  matchImages: [{{type: Prefix, prefix: '{prefix}'}}]\n  registry:\n"
            + "".join(f"    {line}\n" for line in registry.strip().splitlines()))


def pull_secret(name: str, host: str) -> str:
    auth = b64(f"{TEST_USER}:{TEST_PASSWORD}")
    cfg = json.dumps({"auths": {host: {"auth": auth}}})
    return (f"apiVersion: v1\nkind: Secret\nmetadata: {{name: {name}}}\n"
            f"type: kubernetes.io/dockerconfigjson\ndata:\n  .dockerconfigjson: {b64(cfg)}\n")


def bridge_policy(pki: PKI, *, plain: Registry, selfsigned: Registry, mtls: Registry,
                  basic: Registry, token: Registry) -> str:
    """Policy for the bridge's upstreams: plain HTTP allowed for one host, another CA for the
    "self-signed" one, a client certificate, and pull secrets."""
    other_ca = "".join(f"    {line}\n" for line in pki.other_ca_cert.read_text().splitlines())
    docs = [
        imageconfig("plain", f"{plain.host}/", "tls: {mode: Disabled}"),
        imageconfig("selfsigned", f"{selfsigned.host}/",
                    "tls:\n  caBundleConfigMapRef: {name: other-ca, key: ca.crt}"),
        f"apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: other-ca}}\ndata:\n  ca.crt: |\n"
        f"{other_ca}",
        imageconfig("mtls", f"{mtls.host}/", "tls:\n  clientCertSecretRef: {name: client}"),
        "apiVersion: v1\nkind: Secret\nmetadata: {name: client}\ntype: kubernetes.io/tls\n"
        f"data:\n  tls.crt: {b64(pki.client.cert.read_bytes())}\n"
        f"  tls.key: {b64(pki.client.key.read_bytes())}\n",
        imageconfig("basic", f"{basic.host}/",
                    "authentication:\n  pullSecretRef: {name: basic-cred}"),
        pull_secret("basic-cred", basic.host),
        imageconfig("token", f"{token.host}/",
                    "authentication:\n  pullSecretRef: {name: token-cred}"),
        pull_secret("token-cred", token.host),
    ]
    return "---\n".join(docs)


@pytest.fixture(scope="module")
def upstreams(http_registry: Registry, untrusted_registry: Registry, mtls_registry: Registry,
              basic_auth_registry: Registry, token_registry: Registry,
              packages: dict[str, PushedPackage]) -> dict[str, Registry]:
    return {"plain": http_registry, "selfsigned": untrusted_registry, "mtls": mtls_registry,
            "basic": basic_auth_registry, "token": token_registry}


@pytest.fixture(scope="module")
def bridge(testbed_dir: Path, pki: PKI, upstreams: dict[str, Registry]
           ) -> Iterator[BridgeProcess]:
    policy = testbed_dir / "serve-policy.yaml"
    policy.write_text(bridge_policy(pki, **upstreams))
    routes = [f"{name}/={reg.host}/" for name, reg in upstreams.items()]
    with BridgeProcess(testbed_dir, routes, "--config", str(policy), "--ca-bundle",
                       str(pki.ca_cert), "--retries", "0") as b:
        yield b


def cert_dir(tmp: Path, ca: Path) -> Path:
    d = tmp / f"certs-{hashlib.sha256(str(ca).encode()).hexdigest()[:8]}"
    d.mkdir(exist_ok=True)
    shutil.copy(ca, d / "ca.crt")
    return d


def skopeo_dir(src: str, dest: Path, *flags: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["skopeo", "--insecure-policy", "copy", "--quiet", *flags,
                           f"docker://{src}", f"dir:{dest}"], capture_output=True, text=True,
                          timeout=300, check=False)


def same_tree(a: Path, b: Path) -> None:
    names = sorted(p.name for p in a.iterdir())
    assert names == sorted(p.name for p in b.iterdir())
    _match, mismatch, errors = filecmp.cmpfiles(a, b, names, shallow=False)
    assert not mismatch and not errors, (mismatch, errors)


# -- acceptance: unmodified skopeo, Strict TLS, trusting only the bridge's CA -----------------

DIRECT_FLAGS = {
    "plain": ["--src-tls-verify=false"],
    "selfsigned": ["--src-cert-dir", "OTHER_CA"],
    "mtls": ["--src-cert-dir", "MTLS"],
    "basic": ["--src-cert-dir", "CA", "--src-creds", f"{TEST_USER}:{TEST_PASSWORD}"],
    "token": ["--src-cert-dir", "CA", "--src-creds", f"{TEST_USER}:{TEST_PASSWORD}"],
}


@pytest.mark.parametrize("kind", list(DIRECT_FLAGS))
def test_skopeo_pulls_through_the_bridge_byte_identical(
        kind: str, bridge: BridgeProcess, upstreams: dict[str, Registry],
        packages: dict[str, PushedPackage], pki: PKI, tmp_path: Path) -> None:
    pkg = packages["function_with_runtime" if kind == "plain" else "provider_kubernetes"]
    upstream = upstreams[kind]
    mtls_dir = cert_dir(tmp_path, pki.ca_cert)
    shutil.copy(pki.client.cert, mtls_dir / "client.cert")
    shutil.copy(pki.client.key, mtls_dir / "client.key")
    subst = {"OTHER_CA": str(cert_dir(tmp_path, pki.other_ca_cert)), "MTLS": str(mtls_dir),
             "CA": str(cert_dir(tmp_path, pki.ca_cert))}
    flags = [subst.get(f, f) for f in DIRECT_FLAGS[kind]]
    direct = tmp_path / "direct"
    r = skopeo_dir(upstream.ref(pkg.ref), direct, *flags)
    assert r.returncode == 0, r.stderr

    via = tmp_path / "via-bridge"
    only_bridge = str(cert_dir(tmp_path, bridge.ca))
    r = skopeo_dir(f"{bridge.host}/{kind}/{pkg.ref}", via, "--src-cert-dir", only_bridge)
    assert r.returncode == 0, r.stderr
    same_tree(direct, via)
    # Again, from the cache this time: still identical.
    again = tmp_path / "again"
    r = skopeo_dir(f"{bridge.host}/{kind}/{pkg.ref}", again, "--src-cert-dir", only_bridge)
    assert r.returncode == 0, r.stderr
    same_tree(direct, again)


def test_skopeo_refuses_the_bridge_without_its_ca(bridge: BridgeProcess,
                                                  packages: dict[str, PushedPackage],
                                                  tmp_path: Path) -> None:
    r = skopeo_dir(f"{bridge.host}/plain/{packages['configuration'].ref}", tmp_path / "x")
    assert r.returncode != 0
    assert "certificate" in r.stderr


# -- the read API -------------------------------------------------------------------------


def test_api_manifest_head_get_and_negotiation(bridge: BridgeProcess,
                                               packages: dict[str, PushedPackage]) -> None:
    pkg = packages["configuration"]
    path = f"/v2/plain/{pkg.repo}/manifests/{pkg.tag}"
    status, headers, body = bridge.get(path, headers={"Accept": MANIFEST_ACCEPT})
    assert status == 200
    assert body == pkg.built.manifest
    assert headers["Docker-Content-Digest"] == pkg.built.manifest_digest
    assert headers["Content-Type"] == pkg.built.media_type
    assert int(headers["Content-Length"]) == len(body)
    status, headers, body = bridge.get(path, method="HEAD", headers={"Accept": MANIFEST_ACCEPT})
    assert status == 200 and body == b""
    assert int(headers["Content-Length"]) == len(pkg.built.manifest)
    assert headers["Docker-Content-Digest"] == pkg.built.manifest_digest
    by_digest = f"/v2/plain/{pkg.repo}/manifests/{pkg.built.manifest_digest}"
    status, headers, body = bridge.get(by_digest, headers={"Accept": MANIFEST_ACCEPT})
    assert status == 200 and body == pkg.built.manifest
    # A client that accepts only another media type is told the manifest is unknown to it.
    status, _, body = bridge.get(path, headers={"Accept": "application/x-other"})
    assert status == 404 and json.loads(body)["errors"][0]["code"] == "MANIFEST_UNKNOWN"


def test_api_blobs_with_range(bridge: BridgeProcess, packages: dict[str, PushedPackage]) -> None:
    pkg = packages["configuration"]
    digest, data = next(iter(pkg.built.blobs.items()))
    path = f"/v2/plain/{pkg.repo}/blobs/{digest}"
    status, headers, body = bridge.get(path, method="HEAD")
    assert status == 200 and int(headers["Content-Length"]) == len(data)
    assert headers["Docker-Content-Digest"] == digest
    status, _, body = bridge.get(path)
    assert status == 200 and body == data
    status, headers, body = bridge.get(path, headers={"Range": "bytes=2-9"})
    assert status == 206 and body == data[2:10]
    assert headers["Content-Range"] == f"bytes 2-9/{len(data)}"
    status, headers, body = bridge.get(path, headers={"Range": "bytes=-5"})
    assert status == 206 and body == data[-5:]
    status, headers, body = bridge.get(path, headers={"Range": f"bytes={len(data) - 3}-"})
    assert status == 206 and body == data[-3:]
    status, headers, _ = bridge.get(path, headers={"Range": f"bytes={len(data) + 10}-"})
    assert status == 416 and headers["Content-Range"] == f"bytes */{len(data)}"


def test_api_errors(bridge: BridgeProcess, packages: dict[str, PushedPackage]) -> None:
    pkg = packages["configuration"]

    def code(path: str, method: str = "GET") -> tuple[int, str]:
        status, _, body = bridge.get(path, method=method)
        return status, json.loads(body)["errors"][0]["code"]

    assert code(f"/v2/plain/{pkg.repo}/manifests/nope") == (404, "MANIFEST_UNKNOWN")
    assert code("/v2/plain/no/such/manifests/v1") == (404, "MANIFEST_UNKNOWN")
    assert code(f"/v2/plain/{pkg.repo}/blobs/sha256:{'0' * 64}") == (404, "BLOB_UNKNOWN")
    assert code("/v2/unrouted/x/manifests/v1") == (404, "NAME_UNKNOWN")
    assert code(f"/v2/plain/{pkg.repo}/manifests/{pkg.tag}", "PUT") == (405, "UNSUPPORTED")
    assert code(f"/v2/plain/{pkg.repo}/blobs/uploads/", "POST") == (405, "UNSUPPORTED")
    assert code(f"/v2/plain/{pkg.repo}/manifests/{pkg.tag}", "DELETE") == (405, "UNSUPPORTED")
    status, headers, _body = bridge.get("/v2/")
    assert status == 200 and headers["Docker-Distribution-API-Version"] == "registry/2.0"


def test_tags_list_from_the_upstream_with_pagination(
        bridge: BridgeProcess, packages: dict[str, PushedPackage], http_registry: Registry
) -> None:
    pkg = packages["configuration"]
    status, _, body = bridge.get(f"/v2/plain/{pkg.repo}/tags/list")
    assert status == 200
    assert json.loads(body) == {"name": f"plain/{pkg.repo}", "tags": [pkg.tag]}
    status, _headers, body = bridge.get(f"/v2/plain/{pkg.repo}/tags/list?n=0")
    assert json.loads(body)["tags"] == []
    status, _, body = bridge.get(f"/v2/plain/{pkg.repo}/tags/list?last={pkg.tag}")
    assert json.loads(body)["tags"] == []
    status, _, body = bridge.get(f"/v2/plain/{pkg.repo}/tags/list?n=x")
    assert status == 400


def test_health_ready_metrics_and_json_logs(bridge: BridgeProcess) -> None:
    assert bridge.get("/healthz")[0] == 200
    assert bridge.get("/readyz")[0] == 200
    status, _headers, body = bridge.get("/metrics")
    assert status == 200
    text = body.decode()
    assert "crossfetch_bridge_requests_total" in text
    assert "crossfetch_bridge_upstream_seconds_bucket" in text
    lines = bridge.requests()
    assert lines and all({"method", "path", "status", "ms", "cache"} <= set(x) for x in lines)


def test_request_logs_never_hold_credentials(bridge: BridgeProcess) -> None:
    bridge.get("/v2/plain/x/manifests/v1?token=SECRETTOKEN",
               headers={"Authorization": "Basic " + b64("bob:SECRETPASS")})
    text = bridge.log_path.read_text()
    assert "SECRETTOKEN" not in text and "SECRETPASS" not in text
    assert b64("bob:SECRETPASS") not in text


def raw_request(bridge: BridgeProcess, target: str, host: str | None = None,
                method: str = "GET") -> int:
    """Send a request line exactly as given (no client-side normalisation)."""
    conn = http.client.HTTPSConnection("127.0.0.1", bridge.port,
                                       context=bridge.ssl_context(), timeout=30)
    try:
        conn.putrequest(method, target, skip_host=True, skip_accept_encoding=True)
        conn.putheader("Host", host or bridge.host)
        conn.endheaders()
        resp = conn.getresponse()
        resp.read()
        return resp.status
    finally:
        conn.close()


@pytest.mark.parametrize("kind", ["selfsigned", "mtls", "basic"])
def test_pull_as_crossplane_through_the_bridge_with_the_emitted_config(
        kind: str, bridge: BridgeProcess, upstreams: dict[str, Registry],
        packages: dict[str, PushedPackage], tmp_path: Path) -> None:
    """What Crossplane itself cannot do (another CA, a client certificate, ...) it does through
    the bridge, given only what ``serve --emit crossplane`` prints."""
    cli = [sys.executable, "-m", "crossfetch.cli.main"]
    emitted = subprocess.run(
        [*cli, "serve", "--state-dir", str(bridge.state_dir), "--advertise", bridge.host,
         *(x for h in bridge.hostnames for x in ("--hostname", h)),
         *(x for r in bridge.routes for x in ("--route", r)), "--emit", "crossplane"],
        capture_output=True, text=True, timeout=60, check=True).stdout
    config = tmp_path / "emitted.yaml"
    config.write_text(emitted)
    ca = next(d for d in yaml.safe_load_all(emitted) if d and d["kind"] == "ConfigMap")
    bundle = tmp_path / "ca-bundle.crt"
    bundle.write_text(ca["data"]["ca.crt"])
    ref = upstreams[kind].ref(packages["provider_kubernetes"].ref)
    base = [*cli, "pull", ref, "--as-crossplane", "--no-node-config", "--retries", "0",
            "--cache-dir", str(tmp_path / "cache"), "-O", "json"]
    direct = subprocess.run(base, capture_output=True, text=True, timeout=120, check=False)
    assert direct.returncode == 1, direct.stdout  # Crossplane alone cannot
    via = subprocess.run([*base, "--config", str(config), "--ca-bundle", str(bundle)],
                         capture_output=True, text=True, timeout=120, check=False)
    assert via.returncode == 0, via.stdout + via.stderr
    out = json.loads(via.stdout)
    assert out["resolved"] == f"{bridge.host}/{kind}/{packages['provider_kubernetes'].ref}"
    assert out["digest"] == packages["provider_kubernetes"].built.manifest_digest
