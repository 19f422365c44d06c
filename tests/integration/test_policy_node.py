"""Node configuration against the real registry: mTLS from each source, mirrors, the safe
HTTP fallback, and blocked prefixes.

What reached a registry is read from its own access log; what reached a port at all (to prove
that no plain-HTTP request was sent) from a small TCP tap in front of it, defined here because
the registry does not log requests it rejects before routing.
"""

from __future__ import annotations

import base64
import contextlib
import json
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from crossfetch import Cache, Client, Policy
from crossfetch.errors import PolicyRefused, TLSError, TransportError
from crossfetch.oci import Descriptor
from crossfetch.policy.node import load_node_policy
from crossfetch.policy.tlssecret import client_cert_loader
from tests.integration.conftest import PushedPackage
from tests.support import packages as pk
from tests.support.certs import PKI
from tests.support.push import raw_push
from tests.support.registry import Registry

CLI = [sys.executable, "-m", "crossfetch.cli.main"]
HTTP_METHODS = (b"GET ", b"HEAD", b"POST", b"PUT ", b"PATC", b"DELE", b"OPTI")


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args, "--no-node-config"], capture_output=True, text=True,
                          timeout=120, check=False)


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def client_for(tmp_path: Path, **node: Any) -> Client:
    policy = Policy(node=load_node_policy(system=False, **node))
    return Client(policy, cache=Cache(tmp_path / "cache"), retries=0)


class Tap:
    """A TCP forwarder that records the first bytes of every connection made through it."""

    def __init__(self, target_port: int) -> None:
        self.target = ("127.0.0.1", target_port)
        self.first: list[bytes] = []
        self._lock = threading.Lock()
        self._srv = socket.create_server(("127.0.0.1", 0))
        self._socks: list[socket.socket] = []
        self.port = self._srv.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._srv.accept()
            except OSError:
                return
            up = socket.create_connection(self.target)
            with self._lock:
                self._socks += [conn, up]
            threading.Thread(target=self._pump, args=(conn, up, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(up, conn, False), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, record: bool) -> None:
        first = record
        with contextlib.suppress(OSError):
            while data := src.recv(65536):
                if first:
                    with self._lock:
                        self.first.append(data[:8])
                    first = False
                dst.sendall(data)
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)

    def plain_http_connections(self) -> list[bytes]:
        with self._lock:
            return [f for f in self.first if f.startswith(HTTP_METHODS)]

    def tls_connections(self) -> list[bytes]:
        with self._lock:
            return [f for f in self.first if f[:1] == b"\x16"]

    def close(self) -> None:
        self._srv.close()
        with self._lock:
            for s in self._socks:
                s.close()


@pytest.fixture
def tap_factory() -> Iterator[Any]:
    taps: list[Tap] = []

    def make(registry: Registry) -> Tap:
        taps.append(Tap(registry.port))
        return taps[-1]

    yield make
    for t in taps:
        t.close()


# -- mTLS from each of the three sources -----------------------------------------------------


def _mtls_ref(mtls_registry: Registry, packages: dict[str, PushedPackage]) -> tuple[str, str]:
    p = packages["configuration"]
    return mtls_registry.ref(p.ref), p.built.manifest_digest


def test_mtls_with_client_pair_from_hosts_toml(tmp_path: Path, pki: PKI,
                                               mtls_registry: Registry,
                                               packages: dict[str, PushedPackage]) -> None:
    ref, digest = _mtls_ref(mtls_registry, packages)
    hosts = tmp_path / "certs.d"
    write(hosts / mtls_registry.host / "hosts.toml",
          f'server = "https://{mtls_registry.host}"\nca = "{pki.ca_cert}"\n'
          f'client = [["{pki.client.cert}", "{pki.client.key}"]]\n')
    proc = cli("head", ref, "--hosts-dir", str(hosts), "-O", "json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["digest"] == digest


def test_mtls_with_client_pair_from_certs_d(tmp_path: Path, pki: PKI, mtls_registry: Registry,
                                            packages: dict[str, PushedPackage]) -> None:
    ref, digest = _mtls_ref(mtls_registry, packages)
    d = tmp_path / "docker-certs.d" / mtls_registry.host
    d.mkdir(parents=True)
    (d / "ca.crt").write_bytes(pki.ca_cert.read_bytes())
    (d / "client.cert").write_bytes(pki.client.cert.read_bytes())
    (d / "client.key").write_bytes(pki.client.key.read_bytes())
    proc = cli("head", ref, "--certs-dir", str(d.parent), "-O", "json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["digest"] == digest


def _tls_secret_config(tmp_path: Path, pki: PKI, prefix: str) -> Path:
    def b64(p: Path) -> str:
        return base64.b64encode(p.read_bytes()).decode()

    ca = "".join(f"    {line}\n" for line in pki.ca_cert.read_text().splitlines())
    return write(tmp_path / "policy.yaml", f"""\
apiVersion: pkg.crossplane.io/v1beta1
kind: ImageConfig
metadata: {{name: mtls}}
spec:
  matchImages: [{{type: Prefix, prefix: "{prefix}"}}]
  registry:
    tls:
      mode: Strict
      caBundleConfigMapRef: {{name: mtls-ca, key: ca.crt}}
      clientCertSecretRef: {{name: mtls-client}}
---
apiVersion: v1
kind: ConfigMap
metadata: {{name: mtls-ca}}
data:
  ca.crt: |
{ca}---
apiVersion: v1
kind: Secret
metadata: {{name: mtls-client}}
type: kubernetes.io/tls
data:
  tls.crt: {b64(pki.client.cert)}
  tls.key: {b64(pki.client.key)}
""")


def test_mtls_with_client_pair_from_imageconfig_secret(
        tmp_path: Path, pki: PKI, mtls_registry: Registry,
        packages: dict[str, PushedPackage]) -> None:
    ref, digest = _mtls_ref(mtls_registry, packages)
    config = _tls_secret_config(tmp_path, pki, f"{mtls_registry.host}/")
    proc = cli("head", ref, "--config", str(config), "-O", "json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["digest"] == digest

    # In-process: the key lands in a private file that is gone once the loader is closed.
    policy = Policy.load([config])
    loader = client_cert_loader(policy.objects)
    policy.client_cert_loader = loader
    with Client(policy, cache=Cache(tmp_path / "cache"), retries=0) as c:
        assert c.head(ref).digest == digest
        key = c.decide(ref).endpoints[-1].tls.client.key  # type: ignore[union-attr]
        assert key.stat().st_mode & 0o777 == 0o600
        assert key.parent.stat().st_mode & 0o777 == 0o700
    loader.close()  # type: ignore[union-attr]
    assert not key.exists()


def test_mtls_refused_without_client_pair(tmp_path: Path, pki: PKI, mtls_registry: Registry,
                                          packages: dict[str, PushedPackage]) -> None:
    ref, _ = _mtls_ref(mtls_registry, packages)
    hosts = tmp_path / "certs.d"
    write(hosts / mtls_registry.host / "hosts.toml",
          f'server = "https://{mtls_registry.host}"\nca = "{pki.ca_cert}"\n')
    mark = mtls_registry.mark()
    proc = cli("head", ref, "--hosts-dir", str(hosts), "-O", "json")
    assert proc.returncode == 1
    err = json.loads(proc.stdout)
    assert err["ok"] is False and "TLS" in err["message"], err
    assert err["cause"] == "client-certificate-required", err
    assert "clientCertSecretRef" in err["fix"]
    assert mtls_registry.requests(since=mark) == []


# -- mirrors ---------------------------------------------------------------------------------


class MirrorBed:
    """Two registries with separate storage. Under ``mirrored/pkg:v1`` the upstream serves
    package X and the mirror a different package Y; the mirror also holds X (as ``:x``) minus
    X's base layer."""

    def __init__(self, workdir: Path) -> None:
        self.upstream = Registry(workdir, storage=workdir / "up-data").start()
        self.mirror = Registry(workdir, storage=workdir / "mirror-data").start()
        self.x = pk.configuration(workdir / "x")
        self.y = pk.provider_kubernetes(workdir / "y")
        for reg, built, tag in ((self.upstream, self.x, "v1"), (self.mirror, self.y, "v1"),
                                (self.mirror, self.x, "x")):
            raw_push(reg.url, "mirrored/pkg", tag, built.manifest, built.media_type, built.blobs)
        assert self.x.base_layer_digest is not None
        self.missing = self.x.base_layer_digest
        import httpx

        r = httpx.delete(f"{self.mirror.url}/v2/mirrored/pkg/blobs/{self.missing}")
        assert r.status_code == 202, r.text
        self.ref = f"{self.upstream.host}/mirrored/pkg:v1"

    def hosts_dir(self, tmp: Path, caps: str, extra_first: str = "") -> Path:
        d = tmp / "hosts"
        write(d / self.upstream.host / "hosts.toml",
              f'server = "http://{self.upstream.host}"\n\n{extra_first}'
              f'[host."http://{self.mirror.host}"]\n  capabilities = {caps}\n')
        return d

    def stop(self) -> None:
        self.upstream.stop()
        self.mirror.stop()


@pytest.fixture(scope="module")
def mirror_bed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MirrorBed]:
    bed = MirrorBed(tmp_path_factory.mktemp("mirror-bed"))
    try:
        yield bed
    finally:
        bed.stop()


def _manifest_requests(reg: Registry, since: int, ident: str) -> list[str]:
    return [f"{e.method} {e.status}" for e in reg.requests(since=since)
            if e.path.endswith(f"/manifests/{ident}")]


def test_mirror_without_resolve_never_resolves_a_tag(tmp_path: Path,
                                                     mirror_bed: MirrorBed) -> None:
    b = mirror_bed
    m = b.mirror.mark()
    with client_for(tmp_path, hosts_dirs=[str(b.hosts_dir(tmp_path, '["pull"]'))]) as c:
        assert c.head(b.ref).digest == b.x.manifest_digest
    assert _manifest_requests(b.mirror, m, "v1") == []


def test_mirror_with_resolve_resolves_the_tag(tmp_path: Path, mirror_bed: MirrorBed) -> None:
    b = mirror_bed
    with client_for(tmp_path,
                    hosts_dirs=[str(b.hosts_dir(tmp_path, '["pull", "resolve"]'))]) as c:
        assert c.head(b.ref).digest == b.y.manifest_digest


def test_registries_conf_digest_only_mirror_never_resolves_a_tag(
        tmp_path: Path, mirror_bed: MirrorBed) -> None:
    b = mirror_bed
    conf = write(tmp_path / "registries.conf",
                 f'[[registry]]\nlocation = "{b.upstream.host}"\ninsecure = true\n\n'
                 f'[[registry.mirror]]\nlocation = "{b.mirror.host}"\ninsecure = true\n'
                 'pull-from-mirror = "digest-only"\n')
    m = b.mirror.mark()
    with client_for(tmp_path, registries_conf=str(conf)) as c:
        assert c.head(b.ref).digest == b.x.manifest_digest
        # Content pinned to a digest may come from the mirror.
        _, _, digest = c.registry(c.decide(b.ref)).fetch_manifest(b.x.manifest_digest)
        assert digest == b.x.manifest_digest
    assert _manifest_requests(b.mirror, m, "v1") == []
    assert _manifest_requests(b.mirror, m, b.x.manifest_digest) == ["GET 200"]


def test_blob_falls_through_when_the_mirror_lacks_it(tmp_path: Path,
                                                     mirror_bed: MirrorBed) -> None:
    b = mirror_bed
    mm, um = b.mirror.mark(), b.upstream.mark()
    with client_for(tmp_path, hosts_dirs=[str(b.hosts_dir(tmp_path, '["pull"]'))]) as c:
        rc = c.registry(c.decide(b.ref))
        blob = b.x.blobs[b.missing]
        got = b"".join(rc.open_blob(Descriptor(pk.OCI_LAYER_GZIP, b.missing, len(blob))))
        assert got == blob
        assert rc.last_endpoint is not None and rc.last_endpoint.role == "upstream"
    blob_path = f"/v2/mirrored/pkg/blobs/{b.missing}"
    assert [(e.method, e.status) for e in b.mirror.requests(since=mm) if e.path == blob_path] \
        == [("GET", 404)]
    assert [(e.method, e.status) for e in b.upstream.requests(since=um)
            if e.path == blob_path] == [("GET", 200)]


def test_pull_through_mirror_takes_missing_blob_from_upstream(tmp_path: Path,
                                                              mirror_bed: MirrorBed) -> None:
    b = mirror_bed
    mm = b.mirror.mark()
    with client_for(tmp_path, hosts_dirs=[str(b.hosts_dir(tmp_path, '["pull"]'))]) as c:
        result = c.pull(b.ref)
    assert result.digest == b.x.manifest_digest
    assert result.path.read_bytes() == b.x.package_yaml
    # The manifest came from the mirror (by digest), the base layer from the upstream.
    assert _manifest_requests(b.mirror, mm, b.x.manifest_digest) == ["GET 200"]


def test_unreachable_mirror_is_skipped(tmp_path: Path, mirror_bed: MirrorBed) -> None:
    b = mirror_bed
    with socket.create_server(("127.0.0.1", 0)) as s:
        dead = f"127.0.0.1:{s.getsockname()[1]}"
    extra = f'[host."http://{dead}"]\n  capabilities = ["pull", "resolve"]\n\n'
    hosts = b.hosts_dir(tmp_path, '["pull"]', extra_first=extra)
    proc = cli("head", b.ref, "--hosts-dir", str(hosts), "--retries", "0", "-O", "json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["digest"] == b.x.manifest_digest
    # And explain shows the try order that made it so.
    proc = cli("policy", "explain", b.ref, "--hosts-dir", str(hosts), "-O", "json")
    eps = json.loads(proc.stdout)["endpoints"]
    assert [(e["url"], e["role"], e["capabilities"]) for e in eps] == [
        (f"http://{dead}", "mirror", ["pull", "resolve"]),
        (f"http://{b.mirror.host}", "mirror", ["pull"]),
        (f"http://{b.upstream.host}", "upstream", ["pull", "push", "resolve"])]


# -- the safe fallback -----------------------------------------------------------------------


def test_fallback_to_plain_http_only_after_https_attempt(
        tmp_path: Path, http_registry: Registry, packages: dict[str, PushedPackage],
        tap_factory: Any) -> None:
    p = packages["configuration"]
    tap = tap_factory(http_registry)
    hosts = tmp_path / "certs.d"
    # An http:// server with a TLS setting: HTTPS first, HTTP only if the server speaks it.
    write(hosts / tap.host / "hosts.toml", f'server = "http://{tap.host}"\nskip_verify = true\n')
    mark = http_registry.mark()
    proc = cli("head", f"{tap.host}/{p.ref}", "--hosts-dir", str(hosts), "-O", "json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["digest"] == p.built.manifest_digest
    assert tap.tls_connections(), "HTTPS was not tried first"
    assert tap.plain_http_connections()
    assert any(e.path.endswith(f"/manifests/{p.tag}") and e.status == 200
               for e in http_registry.requests(since=mark))


@pytest.mark.parametrize("source", ["registries.conf", "daemon.json"])
def test_insecure_entries_allow_plain_http(tmp_path: Path, http_registry: Registry,
                                           packages: dict[str, PushedPackage],
                                           source: str) -> None:
    p = packages["configuration"]
    if source == "registries.conf":
        f = write(tmp_path / "r.conf",
                  f'[[registry]]\nlocation = "{http_registry.host}"\ninsecure = true\n')
        args = ["--registries-conf", str(f)]
    else:
        f = write(tmp_path / "daemon.json", '{"insecure-registries": ["127.0.0.0/8"]}')
        args = ["--daemon-json", str(f)]
    proc = cli("head", http_registry.ref(p.ref), *args, "-O", "json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["digest"] == p.built.manifest_digest


def test_certificate_error_never_falls_back(tmp_path: Path, pki: PKI,
                                            untrusted_registry: Registry,
                                            packages: dict[str, PushedPackage],
                                            tap_factory: Any) -> None:
    p = packages["configuration"]
    tap = tap_factory(untrusted_registry)
    hosts = tmp_path / "certs.d"
    # Fallback allowed (http:// with a CA), but the certificate is from another CA.
    write(hosts / tap.host / "hosts.toml", f'server = "http://{tap.host}"\nca = "{pki.ca_cert}"\n')
    mark = untrusted_registry.mark()
    proc = cli("head", f"{tap.host}/{p.ref}", "--hosts-dir", str(hosts), "-O", "json")
    assert proc.returncode == 1
    err = json.loads(proc.stdout)
    assert err["cause"] == "untrusted-certificate", err
    assert tap.tls_connections()
    assert tap.plain_http_connections() == []
    assert untrusted_registry.requests(since=mark) == []

    with client_for(tmp_path, hosts_dirs=[str(hosts)]) as c, pytest.raises(TLSError):
        c.head(f"{tap.host}/{p.ref}")
    assert tap.plain_http_connections() == []


# -- blocked ---------------------------------------------------------------------------------


def test_blocked_prefix_is_refused_before_any_request(
        tmp_path: Path, http_registry: Registry, packages: dict[str, PushedPackage]) -> None:
    p = packages["configuration"]
    conf = write(tmp_path / "registries.conf",
                 f'[[registry]]\nprefix = "{http_registry.host}/configs"\nblocked = true\n')
    mark = http_registry.mark()
    proc = cli("head", http_registry.ref(p.ref), "--registries-conf", str(conf), "-O", "json")
    assert proc.returncode == 1
    err = json.loads(proc.stdout)
    assert err["cause"] == "blocked" and f"{conf}:1" in err["message"], err
    with client_for(tmp_path, registries_conf=str(conf)) as c, pytest.raises(PolicyRefused):
        c.pull(http_registry.ref(p.ref))
    assert http_registry.requests(since=mark) == []
    # A sibling prefix is not blocked.
    other = packages["provider_kubernetes"]
    # Not blocked: it gets as far as the TLS handshake with a plain-HTTP port.
    with client_for(tmp_path, registries_conf=str(conf)) as c, pytest.raises(TransportError):
        c.head(http_registry.ref(other.ref))


# -- end to end through the CLI --------------------------------------------------------------


def test_cli_pull_with_hosts_dir_mirror(tmp_path: Path, mirror_bed: MirrorBed) -> None:
    b = mirror_bed
    out = tmp_path / "package.yaml"
    proc = cli("pull", b.ref, "--hosts-dir", str(b.hosts_dir(tmp_path, '["pull"]')),
               "--cache-dir", str(tmp_path / "cache"), "-o", str(out), "-O", "json")
    assert proc.returncode == 0, proc.stderr
    assert out.read_bytes() == b.x.package_yaml
    assert json.loads(proc.stdout)["digest"] == b.x.manifest_digest
