"""Pulling real packages from the real registry, in each TLS setup, through the CLI and the API.

Packages are pushed by skopeo or the raw test pusher (tests/integration/conftest.py), never by
crossfetch. What crossfetch returns is compared with the bytes the builders put in.
"""

from __future__ import annotations

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
from crossfetch.errors import DigestMismatch, PlainHTTPError, TLSError
from tests.integration.conftest import PushedPackage
from tests.support.certs import PKI
from tests.support.proxy import FaultProxy
from tests.support.registry import Registry

CLI = [sys.executable, "-m", "crossfetch.cli.main"]


def crossfetch(*args: str, cache: Path,
               stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    cache_args = ["--cache-dir", str(cache)] if args[0] in ("pull", "inspect") else []
    return subprocess.run([*CLI, *args, *cache_args, "--no-node-config"],
                          capture_output=True, text=True, input=stdin, timeout=120, check=False)


def imageconfig(prefix: str, mode: str | None = None, ca: str | None = None,
                name: str = "test") -> str:
    tls = ""
    if mode or ca:
        tls = "    tls:\n"
        if mode:
            tls += f"      mode: {mode}\n"
        if ca:
            tls += "      caBundleConfigMapRef: {name: test-ca, key: ca.crt}\n"
    doc = (f"apiVersion: pkg.crossplane.io/v1beta1\nkind: ImageConfig\nmetadata: {{name: {name}}}\n"
           f"spec:\n  matchImages: [{{type: Prefix, prefix: '{prefix}'}}]\n  registry:\n{tls}")
    if ca:
        body = "".join("    " + line + "\n" for line in ca.splitlines())
        doc += ("---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: test-ca}\ndata:\n"
                f"  ca.crt: |\n{body}")
    return doc


def policy_file(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "policy.yaml"
    p.write_text(text)
    return p


def blob_gets(registry: Registry, mark: int) -> list[str]:
    return [e.path.rsplit("/", 1)[-1] for e in registry.requests(since=mark)
            if e.method == "GET" and "/blobs/" in e.path]


# -- the three TLS setups --------------------------------------------------------------------


def test_https_with_ca_bundle_flag(tmp_path: Path, https_registry: Registry, pki: PKI,
                                   packages: dict[str, PushedPackage]) -> None:
    p = packages["function_with_runtime"]
    out = tmp_path / "package.yaml"
    r = crossfetch("pull", https_registry.ref(p.ref), "--ca-bundle", str(pki.ca_cert),
                   "-o", str(out), "-O", "json", cache=tmp_path / "c")
    assert r.returncode == 0, r.stderr + r.stdout
    assert out.read_bytes() == p.built.package_yaml
    d = json.loads(r.stdout)
    for key in ("reference", "resolved", "digest", "mediaType", "apiVersion", "kind", "name",
                "crossplane", "dependsOn", "objects"):
        assert key in d
    assert d["digest"] == p.built.manifest_digest
    assert d["kind"] == "Function"
    assert d["objects"] == {"CustomResourceDefinition": 1}


def test_https_with_ca_env_var(tmp_path: Path, https_registry: Registry, pki: PKI,
                               packages: dict[str, PushedPackage]) -> None:
    p = packages["configuration"]
    import os

    env = {**os.environ, "CA_BUNDLE_PATH": str(pki.ca_cert)}
    r = subprocess.run([*CLI, "pull", https_registry.ref(p.ref), "-O", "json", "--cache-dir",
                        str(tmp_path), "--no-node-config"], env=env, capture_output=True,
                       text=True, timeout=120, check=False)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["kind"] == "Configuration"


def test_https_with_ca_from_imageconfig_configmap(tmp_path: Path, https_registry: Registry,
                                                  pki: PKI,
                                                  packages: dict[str, PushedPackage]) -> None:
    p = packages["provider_kubernetes"]
    cfg = policy_file(tmp_path, imageconfig(f"{https_registry.host}/", mode="Strict",
                                            ca=pki.ca_cert.read_text()))
    with Client(Policy.load([cfg]), cache=Cache(tmp_path / "c")) as c:
        res = c.pull(https_registry.ref(p.ref))
    assert res.path.read_bytes() == p.built.package_yaml
    assert res.package.kind == "Provider"
    assert res.package.objects.get("CustomResourceDefinition", 0) >= 1


def test_plain_http_refused_under_strict_with_fix(tmp_path: Path, http_registry: Registry,
                                                  packages: dict[str, PushedPackage]) -> None:
    p = packages["function_with_runtime"]
    r = crossfetch("pull", http_registry.ref(p.ref), "--retries", "0", cache=tmp_path)
    assert r.returncode == 1
    assert "plain HTTP" in r.stderr and "Strict" in r.stderr
    assert "mode: Disabled" in r.stderr  # the ImageConfig that would allow it
    with Client(cache=Cache(tmp_path / "api"), retries=0) as c, pytest.raises(PlainHTTPError):
        c.pull(http_registry.ref(p.ref))


def test_plain_http_works_under_disabled(tmp_path: Path, http_registry: Registry,
                                         packages: dict[str, PushedPackage]) -> None:
    p = packages["function_with_runtime"]
    cfg = policy_file(tmp_path, imageconfig(f"{http_registry.host}/", mode="Disabled"))
    out = tmp_path / "p.yaml"
    r = crossfetch("pull", http_registry.ref(p.ref), "--config", str(cfg), "-o", str(out),
                   cache=tmp_path / "c")
    assert r.returncode == 0, r.stderr
    assert out.read_bytes() == p.built.package_yaml


class TLSRecorder:
    """A TCP relay in front of a TLS registry that records each connection's first bytes, so
    a test can prove no plain-HTTP request was ever sent."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.first_bytes: list[bytes] = []
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self._stop = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._stop:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._pipe_conn, args=(client,), daemon=True).start()

    def _pipe_conn(self, client: socket.socket) -> None:
        upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
        first = True

        def pump(src: socket.socket, dst: socket.socket, record: bool) -> None:
            nonlocal first
            try:
                while data := src.recv(65536):
                    if record and first:
                        self.first_bytes.append(data[:8])
                        first = False
                    dst.sendall(data)
            except OSError:
                pass
            finally:
                for s in (src, dst):
                    with contextlib.suppress(OSError):
                        s.shutdown(socket.SHUT_RDWR)

        threading.Thread(target=pump, args=(upstream, client, False), daemon=True).start()
        pump(client, upstream, True)

    def close(self) -> None:
        self._stop = True
        self.sock.close()


@pytest.fixture
def tls_recorder(untrusted_registry: Registry) -> Iterator[TLSRecorder]:
    rec = TLSRecorder(untrusted_registry.port)
    yield rec
    rec.close()


def test_untrusted_certificate_fails_strict_without_plain_http(
        tmp_path: Path, tls_recorder: TLSRecorder, packages: dict[str, PushedPackage]) -> None:
    p = packages["function_with_runtime"]
    ref = f"127.0.0.1:{tls_recorder.port}/{p.ref}"
    with Client(cache=Cache(tmp_path), retries=0) as c, pytest.raises(TLSError) as ei:
        c.pull(ref)
    assert ei.value.cause == "untrusted-certificate"
    assert "Strict" in str(ei.value.mode)
    assert tls_recorder.first_bytes, "the client never connected"
    # Every connection opened with a TLS handshake record; none with an HTTP method.
    assert all(b[0] == 0x16 for b in tls_recorder.first_bytes), tls_recorder.first_bytes


def test_untrusted_certificate_works_under_insecure(tmp_path: Path, untrusted_registry: Registry,
                                                   packages: dict[str, PushedPackage]) -> None:
    p = packages["function_with_runtime"]
    cfg = policy_file(tmp_path, imageconfig(f"{untrusted_registry.host}/", mode="Insecure"))
    r = crossfetch("pull", untrusted_registry.ref(p.ref), "--config", str(cfg), "-O", "json",
                   cache=tmp_path / "c")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["digest"] == p.built.manifest_digest


# -- the package shapes ----------------------------------------------------------------------


@pytest.fixture
def http_client(tmp_path: Path, http_registry: Registry) -> Iterator[Client]:
    cfg = policy_file(tmp_path, imageconfig(f"{http_registry.host}/", mode="Disabled"))
    with Client(Policy.load([cfg]), cache=Cache(tmp_path / "cache")) as c:
        yield c


def test_function_reads_only_the_base_layer(http_client: Client, http_registry: Registry,
                                            packages: dict[str, PushedPackage]) -> None:
    p = packages["function_with_runtime"]
    mark = http_registry.mark()
    res = http_client.pull(http_registry.ref(p.ref))
    assert res.path.read_bytes() == p.built.package_yaml
    fetched = blob_gets(http_registry, mark)
    assert fetched == [p.built.base_layer_digest], fetched
    assert p.built.runtime_layer_digest not in fetched
    # no config either: the base layer is annotated
    assert res.base_layer and res.base_layer.how == "annotation"


def test_tag_pull_is_pinned_to_the_digest_head_returned(http_client: Client,
                                                       http_registry: Registry,
                                                       packages: dict[str, PushedPackage]) -> None:
    p = packages["configuration"]
    mark = http_registry.mark()
    http_client.pull(http_registry.ref(p.ref))
    manifests = [(e.method, e.path.rsplit("/", 1)[-1]) for e in http_registry.requests(since=mark)
                 if "/manifests/" in e.path]
    # The tag is only ever HEADed; the content is fetched by the digest that HEAD returned.
    assert manifests == [("HEAD", p.tag), ("GET", p.built.manifest_digest)], manifests


@pytest.mark.parametrize("name,kind,how", [
    ("provider_kubernetes", "Provider", "annotation"),
    ("configuration", "Configuration", "annotation"),
    ("docker_v2_config_label", "Function", "label"),
    ("unmarked", None, "flattened"),
    ("uncompressed_under_gzip_type", None, None),
    ("xpkg", "Function", None),
])
def test_package_shapes(http_client: Client, http_registry: Registry,
                        packages: dict[str, PushedPackage], name: str, kind: str | None,
                        how: str | None) -> None:
    p = packages[name]
    res = http_client.pull(http_registry.ref(p.ref))
    assert res.path.read_bytes() == p.built.package_yaml
    if kind:
        assert res.package.kind == kind
    if how:
        assert res.base_layer and res.base_layer.how == how
    assert res.digest == p.built.manifest_digest


def test_configuration_reports_dependencies(http_client: Client, http_registry: Registry,
                                            packages: dict[str, PushedPackage]) -> None:
    res = http_client.pull(http_registry.ref(packages["configuration"].ref))
    d = res.to_dict()
    assert d["crossplane"]
    assert len(d["dependsOn"]) >= 1
    assert all("package" in dep and "version" in dep for dep in d["dependsOn"])


def test_index_defaults_to_linux_amd64_and_honours_platform(
        tmp_path: Path, http_registry: Registry, packages: dict[str, PushedPackage]) -> None:
    p = packages["two_platform_index"]
    cfg = policy_file(tmp_path, imageconfig(f"{http_registry.host}/", mode="Disabled"))
    ref = http_registry.ref(p.ref)
    with Client(Policy.load([cfg]), cache=Cache(tmp_path / "c")) as c:
        amd = c.pull(ref)
    with Client(Policy.load([cfg]), cache=Cache(tmp_path / "c"), platform="linux/arm64") as c:
        arm = c.pull(ref)
    assert amd.path.read_bytes() == p.built.platforms["linux/amd64"].package_yaml
    assert arm.path.read_bytes() == p.built.platforms["linux/arm64"].package_yaml
    assert amd.path.read_bytes() != arm.path.read_bytes()
    assert amd.digest == arm.digest == p.built.manifest_digest
    assert amd.platform == "linux/amd64" and arm.platform == "linux/arm64"


def test_head_and_tags(tmp_path: Path, http_registry: Registry,
                       packages: dict[str, PushedPackage]) -> None:
    p = packages["provider_kubernetes"]
    cfg = policy_file(tmp_path, imageconfig(f"{http_registry.host}/", mode="Disabled"))
    r = crossfetch("head", http_registry.ref(p.ref), "--config", str(cfg), "-O", "json",
                   cache=tmp_path)
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert d["digest"] == p.built.manifest_digest
    assert d["mediaType"] == p.built.media_type
    r = crossfetch("tags", http_registry.ref(p.ref), "--config", str(cfg), "-O", "json",
                   cache=tmp_path)
    assert r.returncode == 0, r.stderr
    assert p.tag in json.loads(r.stdout)["tags"]


def test_inspect_human_output(tmp_path: Path, http_registry: Registry,
                              packages: dict[str, PushedPackage]) -> None:
    cfg = policy_file(tmp_path, imageconfig(f"{http_registry.host}/", mode="Disabled"))
    r = crossfetch("inspect", http_registry.ref(packages["configuration"].ref), "--config",
                   str(cfg), "--validate", cache=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "Configuration" in r.stdout and "dependsOn" in r.stdout


# -- faults through a proxy in front of the real registry ------------------------------------


def _proxy_client(tmp_path: Path, proxy: FaultProxy) -> Client:
    cfg = policy_file(tmp_path, imageconfig(f"{proxy.host}/", mode="Disabled"))
    return Client(Policy.load([cfg]), cache=Cache(tmp_path / "cache"), retries=2)


def test_head_rejected_with_405_still_pulls_via_get(tmp_path: Path, fault_proxy: FaultProxy,
                                                    packages: dict[str, PushedPackage]) -> None:
    p = packages["provider_kubernetes"]
    fault_proxy.reject_head = True
    with _proxy_client(tmp_path, fault_proxy) as c:
        res = c.pull(f"{fault_proxy.host}/{p.ref}")
    assert res.path.read_bytes() == p.built.package_yaml
    methods = [r.method for r in fault_proxy.requests if "/manifests/" in r.path]
    assert "HEAD" in methods and "GET" in methods


def test_corrupted_blob_is_an_error_and_leaves_nothing_cached(
        tmp_path: Path, fault_proxy: FaultProxy, packages: dict[str, PushedPackage]) -> None:
    p = packages["provider_kubernetes"]
    fault_proxy.corrupt_blobs = True
    out = tmp_path / "out.yaml"
    with _proxy_client(tmp_path, fault_proxy) as c, pytest.raises(DigestMismatch):
        c.pull(f"{fault_proxy.host}/{p.ref}", out)
    assert not out.exists()
    cache_root = tmp_path / "cache"
    leftovers = [x for x in cache_root.rglob("*") if x.is_file()]
    assert not [x for x in leftovers if "packages" in x.parts], leftovers
    assert not [x for x in leftovers if x.name == "package.yaml"], leftovers


def test_retries_5xx_and_429(tmp_path: Path, fault_proxy: FaultProxy,
                             packages: dict[str, PushedPackage]) -> None:
    p = packages["configuration"]
    fault_proxy.fail_next = [503, 429]
    with _proxy_client(tmp_path, fault_proxy) as c:
        res = c.pull(f"{fault_proxy.host}/{p.ref}")
    assert res.path.read_bytes() == p.built.package_yaml


def test_digest_pinned_cached_pull_works_with_registry_stopped(
        tmp_path: Path, testbed_dir: Path, registry_storage: Path,
        packages: dict[str, PushedPackage]) -> None:
    p = packages["function_with_runtime"]
    reg = Registry(testbed_dir, storage=registry_storage)
    with reg:
        cfg = policy_file(tmp_path, imageconfig(f"{reg.host}/", mode="Disabled"))
        ref = f"{reg.host}/{p.repo}@{p.built.manifest_digest}"
        first = crossfetch("pull", ref, "--config", str(cfg), cache=tmp_path / "c")
        assert first.returncode == 0, first.stderr
    assert not reg.running
    out = tmp_path / "again.yaml"
    again = crossfetch("pull", ref, "--config", str(cfg), "-o", str(out), "--retries", "0",
                       cache=tmp_path / "c")
    assert again.returncode == 0, again.stderr
    assert out.read_bytes() == p.built.package_yaml


def test_cache_is_content_addressed_and_verified(tmp_path: Path, http_client: Client,
                                                 http_registry: Registry,
                                                 packages: dict[str, PushedPackage]) -> None:
    p = packages["configuration"]
    res = http_client.pull(http_registry.ref(p.ref))
    assert p.built.manifest_digest.split(":")[1] in str(res.path)
    # Tamper with the cached file: the next pull notices, drops it and fetches again.
    res.path.write_bytes(b"tampered")
    again = http_client.pull(http_registry.ref(p.ref))
    assert not again.cached
    assert again.path.read_bytes() == p.built.package_yaml


# -- exit codes ------------------------------------------------------------------------------


@pytest.mark.parametrize("args,code,needle", [
    (["pull", "function-foo:v1"], 2, "not fully qualified"),
    (["pull", "reg.example/UPPER:v1"], 2, "repository path"),
    (["pull", "reg.example/a:v1", "--config", "/nonexistent.yaml"], 2, "nonexistent"),
])
def test_usage_errors_exit_2(tmp_path: Path, args: list[str], code: int, needle: str) -> None:
    r = crossfetch(*args, cache=tmp_path)
    assert r.returncode == code, r.stderr
    assert needle in r.stderr


def test_json_error_output(tmp_path: Path) -> None:
    r = crossfetch("pull", "127.0.0.1:1/nothing/here:v1", "--retries", "0", "-O", "json",
                   cache=tmp_path)
    assert r.returncode == 1
    d: dict[str, Any] = json.loads(r.stdout)
    assert d["ok"] is False and d["cause"] == "connection-refused" and d["fix"]


def test_ipv6_literal_registry(tmp_path: Path, testbed_dir: Path,
                               packages: dict[str, PushedPackage]) -> None:
    from tests.support.push import raw_push

    p = packages["configuration"]
    # skopeo 1.9 cannot parse IPv6 references, so the independent raw pusher puts it in.
    with Registry(testbed_dir, host="::1") as reg:
        assert reg.host.startswith("[::1]:")
        raw_push(reg.url, "v6/cfg", "v1", p.built.manifest, p.built.media_type, p.built.blobs)
        cfg = policy_file(tmp_path, imageconfig(f"{reg.host}/", mode="Disabled"))
        out = tmp_path / "p.yaml"
        r = crossfetch("pull", f"{reg.host}/v6/cfg:v1", "--config", str(cfg), "-o", str(out),
                       cache=tmp_path / "c")
    assert r.returncode == 0, r.stderr
    assert out.read_bytes() == p.built.package_yaml
