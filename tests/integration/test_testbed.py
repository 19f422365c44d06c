"""The test bed itself, checked with independent tools only (curl, skopeo, httpx, stdlib ssl)."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import socket
import ssl
import subprocess
import tarfile
from pathlib import Path

import httpx
import pytest

from tests.integration.conftest import MANIFEST_ACCEPT, PushedPackage, ssl_context
from tests.support import packages as pk
from tests.support.certs import PKI, CertPair
from tests.support.proxy import BlobMirror, FaultProxy
from tests.support.push import PushError, raw_push, skopeo_push
from tests.support.registry import Registry, parse_access_log
from tests.support.tokenserver import TokenServer

BIG_MIN = 100 * 1024 * 1024


def curl(*args: str) -> tuple[int, str]:
    """Run curl; return (exit code, HTTP status or '000')."""
    proc = subprocess.run(
        ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "20", *args],
        capture_output=True,
        text=True,
        check=False,
    )
    return proc.returncode, proc.stdout


def skopeo_raw(ref: str, *extra: str) -> bytes:
    proc = subprocess.run(
        ["skopeo", "--insecure-policy", "inspect", "--raw", *extra, f"docker://{ref}"],
        capture_output=True,
        check=False,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr.decode()
    return proc.stdout


def cert_dir(tmp_path: Path, ca: Path) -> Path:
    d = tmp_path / "certs"
    d.mkdir(exist_ok=True)
    (d / "ca.crt").write_bytes(ca.read_bytes())
    return d


def package_yaml_from_layer(blob: bytes) -> bytes:
    data = gzip.decompress(blob) if blob[:2] == b"\x1f\x8b" else blob
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        member = tar.extractfile("package.yaml")
        assert member is not None
        return member.read()


# -- registries answer -----------------------------------------------------------------------
def test_every_registry_answers_v2(
    http_registry: Registry, https_registry: Registry, untrusted_registry: Registry, pki: PKI
) -> None:
    assert curl(f"{http_registry.url}/v2/") == (0, "200")
    assert curl("--cacert", str(pki.ca_cert), f"{https_registry.url}/v2/") == (0, "200")
    assert curl("--cacert", str(pki.other_ca_cert), f"{untrusted_registry.url}/v2/") == (0, "200")
    # The untrusted registry really is untrusted with the test CA (curl 60: peer cert).
    assert curl("--cacert", str(pki.ca_cert), f"{untrusted_registry.url}/v2/")[0] == 60
    # Plain HTTP to a TLS port: Go answers 400.
    plain = f"http://{https_registry.host}/v2/"
    assert curl(plain) == (0, "400")
    assert https_registry.url.startswith("https://127.0.0.1:")
    assert http_registry.scheme == "http" and http_registry.port > 0


@pytest.mark.parametrize(
    ("cert", "reason"),
    [
        ("expired_server", "certificate has expired"),
        ("wrong_host_server", "IP address mismatch"),
        ("self_signed", "self-signed certificate"),
        ("untrusted_server", "unable to get local issuer certificate"),
    ],
)
def test_broken_certificates_fail_verification_as_named(
    testbed_dir: Path, pki: PKI, cert: str, reason: str
) -> None:
    pair: CertPair = getattr(pki, cert)
    with Registry(testbed_dir, tls=pair) as reg:
        with (
            pytest.raises(ssl.SSLCertVerificationError, match=reason),
            socket.create_connection(("127.0.0.1", reg.port), timeout=10) as sock,
        ):
            ssl_context(pki.ca_cert).wrap_socket(sock, server_hostname="127.0.0.1")
        # Without verification the registry behind it works.
        assert httpx.get(f"{reg.url}/v2/", verify=False).status_code == 200


def test_missing_binary_fails_loudly(testbed_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("tests.support.registry.REGISTRY_BINARY", "/nonexistent/docker-registry")
    with pytest.raises(RuntimeError, match="apt-get install -y docker-registry"):
        Registry(testbed_dir).start()


def test_registry_that_dies_reports_its_log(testbed_dir: Path, pki: PKI) -> None:
    broken = CertPair(cert=pki.server.cert, key=testbed_dir / "no-such.key")
    with pytest.raises(RuntimeError, match=r"(?s)exited with status .*no-such\.key"):
        Registry(testbed_dir, tls=broken).start()


# -- pushed packages -------------------------------------------------------------------------
def test_skopeo_inspect_sees_every_package_as_built(
    packages: dict[str, PushedPackage], https_registry: Registry, pki: PKI, tmp_path: Path
) -> None:
    certs = cert_dir(tmp_path, pki.ca_cert)
    assert set(packages) == {
        "function_with_runtime",
        "provider_kubernetes",
        "configuration",
        "two_platform_index",
        "docker_v2_config_label",
        "unmarked",
        "uncompressed_under_gzip_type",
        "xpkg",
    }
    for name, (ref, built) in packages.items():
        raw = skopeo_raw(https_registry.ref(ref), "--cert-dir", str(certs))
        assert raw == built.manifest, name
        assert "sha256:" + hashlib.sha256(raw).hexdigest() == built.manifest_digest
        assert json.loads(raw)["mediaType"] == built.media_type


def test_base_layers_carry_the_expected_package_yaml(
    packages: dict[str, PushedPackage], http_registry: Registry
) -> None:
    with httpx.Client(base_url=http_registry.url, timeout=30) as client:
        for name, (ref, built) in packages.items():
            repo = ref.rpartition(":")[0]
            assert built.base_layer_digest, name
            blob = client.get(f"/v2/{repo}/blobs/{built.base_layer_digest}").content
            assert "sha256:" + hashlib.sha256(blob).hexdigest() == built.base_layer_digest
            assert package_yaml_from_layer(blob) == built.package_yaml, name
            assert built.package_yaml.startswith(b"---\n")


def test_package_shapes(packages: dict[str, PushedPackage]) -> None:
    fn = packages["function_with_runtime"].built
    manifest = json.loads(fn.manifest)
    assert manifest["layers"][0]["annotations"] == {"io.crossplane.xpkg": "base"}
    assert fn.runtime_layer_digest and len(fn.blobs[fn.runtime_layer_digest]) > 30_000_000
    assert b"kind: Function" in fn.package_yaml and b"CustomResourceDefinition" in fn.package_yaml

    provider = packages["provider_kubernetes"].built
    assert provider.package_yaml.count(b"\n---\n") == 9  # meta + 9 CRDs

    index = packages["two_platform_index"].built
    amd, arm = index.platforms["linux/amd64"], index.platforms["linux/arm64"]
    assert amd.package_yaml != arm.package_yaml
    assert b"crossfetch.test/platform: linux/arm64" in arm.package_yaml
    assert index.package_yaml == amd.package_yaml

    docker = packages["docker_v2_config_label"].built
    dm = json.loads(docker.manifest)
    assert all("annotations" not in layer for layer in dm["layers"])
    labels = json.loads(docker.blobs[dm["config"]["digest"]])["config"]["Labels"]
    assert labels[f"io.crossplane.xpkg:{docker.base_layer_digest}"] == "base"
    assert dm["layers"][0]["digest"] != docker.base_layer_digest

    unmarked = packages["unmarked"].built
    um = json.loads(unmarked.manifest)
    assert len(um["layers"]) == 3 and um["layers"][1]["digest"] == unmarked.base_layer_digest
    assert "Labels" not in json.loads(unmarked.blobs[um["config"]["digest"]])["config"]

    plain = packages["uncompressed_under_gzip_type"].built
    assert plain.base_layer_digest is not None
    assert json.loads(plain.manifest)["layers"][0]["mediaType"].endswith("tar+gzip")
    assert plain.blobs[plain.base_layer_digest][:2] != b"\x1f\x8b"

    path, yaml_bytes = pk.from_xpkg_file()
    assert path.suffix == ".xpkg" and packages["xpkg"].built.package_yaml == yaml_bytes


def test_builders_are_deterministic(tmp_path: Path) -> None:
    for builder in (pk.provider_kubernetes, pk.two_platform_index, pk.docker_v2_config_label):
        a, b = builder(tmp_path / "a"), builder(tmp_path / "b")
        assert a.manifest_digest == b.manifest_digest
        assert (tmp_path / "a" / "index.json").read_bytes() == (
            tmp_path / "b" / "index.json"
        ).read_bytes()


def test_index_children_pushed_with_all_platforms(
    packages: dict[str, PushedPackage], http_registry: Registry
) -> None:
    repo = packages["two_platform_index"].repo
    for child in packages["two_platform_index"].built.platforms.values():
        raw = skopeo_raw(http_registry.ref(f"{repo}@{child.manifest_digest}"), "--tls-verify=false")
        assert raw == child.manifest


def test_big_provider(big_package: PushedPackage, http_registry: Registry) -> None:
    built = big_package.built
    assert len(built.package_yaml) >= BIG_MIN
    assert built.package_yaml.count(b"\nkind: CustomResourceDefinition\n") > 7000
    raw = skopeo_raw(http_registry.ref(big_package.ref), "--tls-verify=false")
    assert raw == built.manifest


def test_skopeo_push_plain_http_and_with_creds_and_ca_file(
    testbed_dir: Path,
    http_registry: Registry,
    basic_auth_registry: Registry,
    registry_credentials: tuple[str, str],
    pki: PKI,
) -> None:
    built = pk.configuration(testbed_dir / "layouts" / "configuration")
    src = f"oci:{built.layout}:{built.tag}"
    skopeo_push(src, http_registry.ref("pushtest/plain:v1"), tls_verify=False)
    assert (
        skopeo_raw(http_registry.ref("pushtest/plain:v1"), "--tls-verify=false") == built.manifest
    )
    user, password = registry_credentials
    dest = basic_auth_registry.ref("pushtest/auth:v1")
    skopeo_push(src, dest, cert_dir=pki.ca_cert, creds=f"{user}:{password}")
    with pytest.raises(PushError, match=r"(?i)unauthorized|authentication required"):
        skopeo_push(src, basic_auth_registry.ref("pushtest/anon:v1"), cert_dir=pki.ca_cert)
    assert [e.status for e in basic_auth_registry.requests() if e.method == "PUT"][-1] == 201


def test_skopeo_push_reports_its_error(http_registry: Registry, tmp_path: Path) -> None:
    with pytest.raises(PushError, match="skopeo copy"):
        skopeo_push(f"oci:{tmp_path}:nope", http_registry.ref("x/y:v1"), tls_verify=False)


# -- access log ------------------------------------------------------------------------------
def test_access_log_records_each_request(
    packages: dict[str, PushedPackage], http_registry: Registry
) -> None:
    repo, _, tag = packages["configuration"].ref.rpartition(":")
    built = packages["configuration"].built
    mark = http_registry.mark()
    httpx.head(
        f"{http_registry.url}/v2/{repo}/manifests/{tag}", headers={"Accept": MANIFEST_ACCEPT}
    )
    httpx.get(f"{http_registry.url}/v2/{repo}/blobs/{built.base_layer_digest}?x=1")
    httpx.get(f"{http_registry.url}/v2/{repo}/manifests/nope", headers={"Accept": MANIFEST_ACCEPT})
    entries = http_registry.requests(since=mark)
    assert [(e.method, e.path, e.status) for e in entries] == [
        ("HEAD", f"/v2/{repo}/manifests/{tag}", 200),
        ("GET", f"/v2/{repo}/blobs/{built.base_layer_digest}", 200),
        ("GET", f"/v2/{repo}/manifests/nope", 404),
    ]
    assert entries[1].query == "x=1" and entries[1].user_agent.startswith("python-httpx")
    assert http_registry.requests(since=http_registry.mark()) == []


def test_parse_access_log_skips_json_lines() -> None:
    text = (
        '{"level":"info","msg":"response completed"}\n'
        "127.0.0.1 - - [25/Nov/2026:17:54:19 +0000] "
        '"GET /v2/a/b/tags/list?n=1 HTTP/1.1" 200 2 "" "curl/7"\n'
    )
    [entry] = parse_access_log(text)
    assert (entry.method, entry.path, entry.query, entry.status) == (
        "GET",
        "/v2/a/b/tags/list",
        "n=1",
        200,
    )


# -- authentication --------------------------------------------------------------------------
def test_htpasswd_registry(
    packages: dict[str, PushedPackage],
    basic_auth_registry: Registry,
    registry_credentials: tuple[str, str],
    pki: PKI,
    tmp_path: Path,
) -> None:
    ctx = ssl_context(pki.ca_cert)
    anon = httpx.get(f"{basic_auth_registry.url}/v2/", verify=ctx)
    assert anon.status_code == 401
    assert anon.headers["WWW-Authenticate"].startswith("Basic ")
    assert (
        httpx.get(f"{basic_auth_registry.url}/v2/", verify=ctx, auth=("alice", "wrong")).status_code
        == 401
    )
    assert (
        httpx.get(
            f"{basic_auth_registry.url}/v2/", verify=ctx, auth=registry_credentials
        ).status_code
        == 200
    )
    user, password = registry_credentials
    ref, built = packages["configuration"]
    raw = skopeo_raw(
        basic_auth_registry.ref(ref),
        "--cert-dir",
        str(cert_dir(tmp_path, pki.ca_cert)),
        "--creds",
        f"{user}:{password}",
    )
    assert raw == built.manifest


def test_token_registry_anonymous_pull_only(
    packages: dict[str, PushedPackage],
    token_registry: Registry,
    token_server: TokenServer,
    pki: PKI,
) -> None:
    ctx = ssl_context(pki.ca_cert)
    repo, _, tag = packages["configuration"].ref.rpartition(":")
    challenge = httpx.get(f"{token_registry.url}/v2/", verify=ctx)
    assert challenge.status_code == 401
    assert f'realm="{token_server.realm}"' in challenge.headers["WWW-Authenticate"]

    before = len(token_server.requests)
    tok = httpx.get(
        token_server.realm,
        params=[
            ("service", "test-registry"),
            ("scope", f"repository:{repo}:pull,push"),
            ("scope", "repository:other:pull"),
        ],
        verify=ctx,
    ).json()
    assert tok["expires_in"] > 0 and "refresh_token" not in tok
    rec = token_server.requests[before]
    assert rec.method == "GET" and rec.path == "/token" and "authorization" not in rec.headers
    assert token_server.issued[-1]["access"][0]["actions"] == ["pull"]  # push withheld
    bearer = {"Authorization": f"Bearer {tok['token']}", "Accept": MANIFEST_ACCEPT}
    got = httpx.get(f"{token_registry.url}/v2/{repo}/manifests/{tag}", headers=bearer, verify=ctx)
    assert got.status_code == 200 and got.content == packages["configuration"].built.manifest
    push = httpx.post(f"{token_registry.url}/v2/{repo}/blobs/uploads/", headers=bearer, verify=ctx)
    assert push.status_code == 401
    assert 'error="insufficient_scope"' in push.headers["WWW-Authenticate"]


def test_token_registry_user_can_push_and_refresh(
    token_registry: Registry,
    token_server: TokenServer,
    registry_credentials: tuple[str, str],
    pki: PKI,
) -> None:
    ctx = ssl_context(pki.ca_cert)
    config = b'{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}'
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": pk.OCI_MANIFEST,
            "config": {
                "mediaType": pk.OCI_CONFIG,
                "digest": pk.sha256(config),
                "size": len(config),
            },
            "layers": [],
        }
    ).encode()
    digest = raw_push(
        token_registry.url,
        "pushed/by-user",
        "v1",
        manifest,
        pk.OCI_MANIFEST,
        {pk.sha256(config): config},
        verify=ctx,
        auth=registry_credentials,
    )
    assert digest == pk.sha256(manifest)
    with pytest.raises(PushError):
        raw_push(
            token_registry.url,
            "pushed/anon",
            "v1",
            manifest,
            pk.OCI_MANIFEST,
            {pk.sha256(config): config},
            verify=ctx,
        )

    user, password = registry_credentials
    form = {
        "grant_type": "password",
        "username": user,
        "password": password,
        "service": "test-registry",
        "scope": "repository:pushed/by-user:pull",
        "client_id": "crossfetch-tests",
        "access_type": "offline",
    }
    first = httpx.post(token_server.realm, data=form, verify=ctx).json()
    assert first["refresh_token"]
    again = httpx.post(
        token_server.realm,
        verify=ctx,
        data={
            "grant_type": "refresh_token",
            "refresh_token": first["refresh_token"],
            "service": "test-registry",
            "scope": "repository:pushed/by-user:pull",
        },
    ).json()
    bearer = {"Authorization": f"Bearer {again['access_token']}", "Accept": MANIFEST_ACCEPT}
    got = httpx.get(
        f"{token_registry.url}/v2/pushed/by-user/manifests/v1", headers=bearer, verify=ctx
    )
    assert got.status_code == 200
    bad = httpx.post(
        token_server.realm,
        verify=ctx,
        data={"grant_type": "password", "username": user, "password": "x"},
    )
    assert bad.status_code == 401
    offline = httpx.get(
        token_server.realm,
        params={"service": "test-registry", "offline_token": "true"},
        auth=registry_credentials,
        verify=ctx,
    ).json()
    assert offline["refresh_token"]


def test_mtls_registry_requires_client_cert(mtls_registry: Registry, pki: PKI) -> None:
    url = f"{mtls_registry.url}/v2/"
    mark = mtls_registry.mark()
    code, status = curl("--cacert", str(pki.ca_cert), url)
    assert code != 0 and status == "000"
    with_cert = curl(
        "--cacert",
        str(pki.ca_cert),
        "--cert",
        str(pki.client.cert),
        "--key",
        str(pki.client.key),
        url,
    )
    assert with_cert == (0, "200")
    assert [(e.method, e.status) for e in mtls_registry.requests(mark)] == [("GET", 200)]


# -- fault proxy -----------------------------------------------------------------------------
def _blob_url(base: str, pushed: PushedPackage, digest: str | None) -> str:
    return f"{base}/v2/{pushed.repo}/blobs/{digest}"


def test_proxy_passes_through_large_blobs_intact(
    packages: dict[str, PushedPackage], fault_proxy: FaultProxy
) -> None:
    fn = packages["function_with_runtime"]
    digest = fn.built.runtime_layer_digest
    h = hashlib.sha256()
    with httpx.stream("GET", _blob_url(fault_proxy.url, fn, digest), timeout=60) as resp:
        assert resp.status_code == 200
        for chunk in resp.iter_bytes():
            h.update(chunk)
    assert "sha256:" + h.hexdigest() == digest
    manifest = httpx.get(
        f"{fault_proxy.url}/v2/{fn.repo}/manifests/{fn.tag}", headers={"Accept": MANIFEST_ACCEPT}
    )
    assert manifest.content == fn.built.manifest
    assert [(r.method, r.status) for r in fault_proxy.requests] == [("GET", 200), ("GET", 200)]


def test_proxy_faults_are_observable(
    packages: dict[str, PushedPackage], fault_proxy: FaultProxy, http_registry: Registry
) -> None:
    fn = packages["provider_kubernetes"]
    manifest_url = f"{fault_proxy.url}/v2/{fn.repo}/manifests/{fn.tag}"
    blob_url = _blob_url(fault_proxy.url, fn, fn.built.base_layer_digest)
    accept = {"Accept": MANIFEST_ACCEPT}

    mark = http_registry.mark()
    fault_proxy.reject_head = True
    assert httpx.head(manifest_url, headers=accept).status_code == 405
    assert http_registry.requests(since=mark) == []  # never reached the registry
    fault_proxy.reject_head = False

    fault_proxy.corrupt_blobs = True
    body = httpx.get(blob_url).content
    good = fn.built.blobs[fn.built.base_layer_digest or ""]
    assert len(body) == len(good) and body != good
    assert sum(a != b for a, b in zip(body, good, strict=True)) == 1
    assert (
        httpx.get(manifest_url, headers=accept).content == fn.built.manifest
    )  # manifests untouched
    fault_proxy.corrupt_blobs = False

    fault_proxy.redirect_blobs_to = "http://127.0.0.2:9"
    redirected = httpx.get(blob_url + "?q=1")
    assert redirected.status_code == 307
    assert (
        redirected.headers["Location"]
        == f"http://127.0.0.2:9/v2/{fn.repo}/blobs/{fn.built.base_layer_digest}?q=1"
    )
    fault_proxy.redirect_blobs_to = None

    fault_proxy.fail_next = [503, 429]
    first, second, third = (httpx.get(manifest_url, headers=accept) for _ in range(3))
    assert (first.status_code, second.status_code, third.status_code) == (503, 429, 200)
    assert second.headers["Retry-After"] == "0"

    fault_proxy.delay = 0.2
    assert httpx.get(manifest_url, headers=accept).status_code == 200
    notes = [r.note for r in fault_proxy.requests]
    assert notes[:2] == ["reject_head", "corrupt_blobs"]
    assert notes[3:6] == ["redirect_blobs_to", "fail_next", "fail_next"]
    fault_proxy.reset()
    assert fault_proxy.requests == [] and fault_proxy.delay == 0


def test_proxy_push_through_keeps_locations_on_the_proxy(fault_proxy: FaultProxy) -> None:
    blob = b"pushed through the proxy"
    config = b"{}"
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": pk.OCI_MANIFEST,
            "config": {"mediaType": pk.OCI_CONFIG, "digest": pk.sha256(config), "size": 2},
            "layers": [
                {"mediaType": pk.OCI_LAYER_GZIP, "digest": pk.sha256(blob), "size": len(blob)}
            ],
        }
    ).encode()
    digest = raw_push(
        fault_proxy.url,
        "via/proxy",
        "v1",
        manifest,
        pk.OCI_MANIFEST,
        {pk.sha256(blob): blob, pk.sha256(config): config},
    )
    assert digest == pk.sha256(manifest)
    assert {r.method for r in fault_proxy.requests} >= {"POST", "PUT", "HEAD"}


def test_https_proxy_and_blob_mirror_on_second_host(
    packages: dict[str, PushedPackage], https_registry: Registry, pki: PKI
) -> None:
    fn = packages["configuration"]
    digest = fn.built.base_layer_digest
    ctx = ssl_context(pki.ca_cert)
    with (
        FaultProxy(https_registry.url, upstream_ca=pki.ca_cert, tls=pki.server) as proxy,
        BlobMirror(https_registry.url, upstream_ca=pki.ca_cert, tls=pki.server) as mirror,
    ):
        assert mirror.url.startswith("https://127.0.0.2:")
        proxy.redirect_blobs_to = mirror.url
        # httpx drops Authorization when a redirect changes host: the mirror sees none.
        resp = httpx.get(
            _blob_url(proxy.url, fn, digest),
            headers={"Authorization": "Bearer secret"},
            follow_redirects=True,
            verify=ctx,
        )
        assert resp.status_code == 200 and pk.sha256(resp.content) == digest
        assert [r.status for r in proxy.requests] == [307]
        assert proxy.requests[0].headers["authorization"] == "Bearer secret"
        [seen] = mirror.requests
        assert seen.path.endswith(f"/blobs/{digest}") and "authorization" not in seen.headers


def test_mirror_refuses_nothing_but_records_headers(https_registry: Registry, pki: PKI) -> None:
    with BlobMirror(https_registry.url, upstream_ca=pki.ca_cert) as mirror:
        resp = httpx.get(
            f"{mirror.url}/v2/", headers={"Authorization": "Basic eDp5", "X-Test": "1"}
        )
        assert resp.status_code == 200
        assert mirror.requests[0].headers["authorization"] == "Basic eDp5"
        assert mirror.requests[0].headers["x-test"] == "1"


def test_servers_bind_only_loopback(fault_proxy: FaultProxy, http_registry: Registry) -> None:
    for host in (fault_proxy.host, http_registry.host):
        addr, _, port = host.rpartition(":")
        assert addr == "127.0.0.1"
        with socket.create_connection((addr, int(port)), timeout=5):
            pass
