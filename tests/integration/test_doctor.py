"""``crossfetch doctor`` against real servers: every cause reproduced with real sockets,
registries and certificates made by the tests."""

from __future__ import annotations

import hashlib
import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from tests.integration.conftest import PushedPackage
from tests.support import packages as pk
from tests.support.certs import PKI
from tests.support.cli import invoke
from tests.support.httpserver import BaseHandler, TestServer
from tests.support.proxy import FaultProxy
from tests.support.push import raw_push
from tests.support.registry import Registry

FN = "function_with_runtime"


def run_doctor(*args: str, timeout: str = "3") -> tuple[int, dict[str, Any]]:
    result = invoke(["doctor", *args, "--no-node-config", "--timeout", timeout, "-O", "json"])
    assert result.stdout, result.output
    return result.exit_code, json.loads(result.stdout)


def check(report: dict[str, Any], name: str, method: str | None = None) -> dict[str, Any]:
    for c in report["checks"]:
        if c["name"] == name and (method is None or c.get("method") == method):
            return c
    raise AssertionError(f"no {name} check in {report}")


def statuses(report: dict[str, Any]) -> dict[str, str]:
    return {(c["name"] + ("/" + c["method"] if c.get("method") else "")): c["status"]
            for c in report["checks"]}


def disabled_config(tmp_path: Path, registry: str, mode: str = "Disabled") -> str:
    path = tmp_path / "ic.yaml"
    path.write_text(
        "apiVersion: pkg.crossplane.io/v1beta1\nkind: ImageConfig\nmetadata:\n  name: t\n"
        f"spec:\n  matchImages:\n  - prefix: {registry}/\n  registry:\n    tls:\n"
        f"      mode: {mode}\n")
    return str(path)


def der_sha256(pem_file: Path) -> str:
    cert = x509.load_pem_x509_certificate(pem_file.read_bytes())
    return hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()


# -- extra servers ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def expired_registry(testbed_dir: Path, registry_storage: Path, pki: PKI) -> Iterator[Registry]:
    with Registry(testbed_dir, tls=pki.expired_server, storage=registry_storage) as reg:
        yield reg


@pytest.fixture(scope="module")
def wrong_host_registry(testbed_dir: Path, registry_storage: Path, pki: PKI
                        ) -> Iterator[Registry]:
    with Registry(testbed_dir, tls=pki.wrong_host_server, storage=registry_storage) as reg:
        yield reg


@pytest.fixture(scope="module")
def self_signed_registry(testbed_dir: Path, registry_storage: Path, pki: PKI
                         ) -> Iterator[Registry]:
    with Registry(testbed_dir, tls=pki.self_signed, storage=registry_storage) as reg:
        yield reg


class _WebHandler(BaseHandler):
    def do_GET(self) -> None:
        self.reply(404, b"<html><body>Not the registry</body></html>", content_type="text/html")


class WebServer(TestServer):
    """An HTTPS web server that is not a registry."""

    handler = _WebHandler


@pytest.fixture
def silent_listener() -> Iterator[int]:
    """Accepts TCP connections (the kernel does) and never says a word."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    try:
        yield sock.getsockname()[1]
    finally:
        sock.close()


@pytest.fixture
def dropping_port() -> Iterator[int]:
    """A port whose SYNs go unanswered: a full accept queue (backlog 0, one pending
    connection) makes the kernel drop new handshakes, as a DROP rule would."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(0)
    port = sock.getsockname()[1]
    filler = socket.create_connection(("127.0.0.1", port), timeout=2)
    probe = socket.socket()
    probe.settimeout(0.3)
    try:
        probe.connect(("127.0.0.1", port))
        pytest.skip("this kernel does not drop SYNs on a full accept queue")
    except TimeoutError:
        pass
    finally:
        probe.close()
    try:
        yield port
    finally:
        filler.close()
        sock.close()


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A port bound but not listening: connections are refused, and no one else takes it."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    try:
        yield sock.getsockname()[1]
    finally:
        sock.close()


# -- a pull that works ----------------------------------------------------------------------------
def test_healthy_registry_passes_every_stage(https_registry: Registry, pki: PKI,
                                             packages: dict[str, PushedPackage]) -> None:
    ref = f"{https_registry.host}/{packages[FN].ref}"
    code, report = run_doctor(ref, "--ca-bundle", str(pki.ca_cert))
    assert code == 0 and report["ok"] is True
    assert statuses(report) == {
        "reference": "pass", "policy": "pass", "dns": "warn", "tcp": "pass", "tls": "pass",
        "registry": "pass", "auth": "pass", "manifest/HEAD": "pass", "manifest/GET": "pass",
        "package": "pass"}
    assert check(report, "dns")["cause"] == "loopback-address"  # 127.0.0.1 is the pod itself
    assert check(report, "manifest", "HEAD")["data"]["digest"] == packages[FN].built.manifest_digest
    pkg = check(report, "package")["data"]
    assert pkg["kind"] == "Function"
    assert pkg["baseLayer"]["digest"] == packages[FN].built.base_layer_digest
    assert all(isinstance(c["ms"], float) for c in report["checks"])


def test_unmarked_image_is_read_flattened_and_leaves_no_spill(
        https_registry: Registry, pki: PKI, packages: dict[str, PushedPackage],
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No base layer marked: the package stage flattens the layers, spilling candidates to the
    temporary directory, and removes them."""
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr("tempfile.tempdir", None)  # looked up again from TMPDIR
    ref = f"{https_registry.host}/{packages['unmarked'].ref}"
    code, report = run_doctor(ref, "--ca-bundle", str(pki.ca_cert))
    assert code == 0, report
    pkg = check(report, "package")
    assert pkg["status"] == "pass" and pkg["data"]["baseLayer"]["how"] == "flattened"
    assert "all layers flattened" in pkg["detail"]
    assert list(tmp_path.iterdir()) == []


def test_text_output_is_a_checklist_with_timings(https_registry: Registry, pki: PKI,
                                                 packages: dict[str, PushedPackage]) -> None:
    ref = f"{https_registry.host}/{packages[FN].ref}"
    result = invoke(["doctor", ref, "--ca-bundle", str(pki.ca_cert),
                                      "--no-node-config"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert any(line.startswith("  [ok  ] package") and " ms " in line for line in lines)
    result_line = next(line for line in lines if line.startswith("result: "))
    assert result_line.startswith("result: a pull would succeed (warnings: dns)")
    # The second verdict: in its pod, Crossplane would reach itself at 127.0.0.1.
    verdict = next(line for line in lines if line.startswith("crossplane: "))
    assert verdict.startswith("crossplane: Crossplane v2.3.4 would NOT pull it: "
                              "loopback-address")


def test_doctor_cli_process_on_a_healthy_registry(https_registry: Registry, pki: PKI,
                                                   packages: dict[str, PushedPackage]) -> None:
    """The whole CLI process, as a user runs it, ends well inside its deadline. How fast it is
    is measured by bench/ (peers in the same run), never asserted here: a loaded CI machine
    would make a wall-time bar flaky."""
    ref = f"{https_registry.host}/{packages[FN].ref}"
    argv = [sys.executable, "-m", "crossfetch.cli.main", "doctor", ref, "--ca-bundle",
            str(pki.ca_cert), "--no-node-config"]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "\nresult: a pull would succeed" in proc.stdout


# -- reference and dns --------------------------------------------------------------------------
def test_not_fully_qualified_name() -> None:
    code, report = run_doctor("crossplane-contrib/function-foo:v1")
    assert code == 2  # an invalid reference is bad usage, as in pull
    assert check(report, "reference")["status"] == "fail"
    assert check(report, "reference")["cause"] == "not-fully-qualified"
    assert check(report, "policy")["status"] == "skip"
    assert check(report, "package")["status"] == "skip"


def test_dotless_registry_host_warns_that_crossplane_refuses_it(
        https_registry: Registry, pki: PKI, packages: dict[str, PushedPackage]) -> None:
    code, report = run_doctor(f"localhost:{https_registry.port}/{packages[FN].ref}",
                              "--ca-bundle", str(pki.ca_cert))
    assert code == 0
    assert check(report, "reference")["cause"] == "not-fully-qualified"
    assert check(report, "reference")["status"] == "warn"
    dns = check(report, "dns")
    assert (dns["status"], dns["cause"]) == ("warn", "loopback-address")
    assert "127.0.0.1" in dns["data"]["addresses"]
    assert "rewrite name localhost" in dns["fix"] and "hostAliases" in dns["fix"]


def test_dot_localhost_is_loopback_even_when_the_resolver_does_not_say_so(
        http_registry: Registry, tmp_path: Path, packages: dict[str, PushedPackage]) -> None:
    registry = f"registry.localhost:{http_registry.port}"
    code, report = run_doctor(f"{registry}/{packages[FN].ref}", "--config",
                              disabled_config(tmp_path, registry))
    dns = check(report, "dns")
    assert "pod itself" in dns["detail"]
    if dns["data"].get("resolverMaps") is False:
        # A pull from this machine fails on the name: the chain stops there rather than
        # letting tcp and tls pass against 127.0.0.1 and the registry stage fail later.
        assert (dns["status"], dns["cause"]) == ("fail", "dns-failure")
        assert "not checked" in dns["detail"]
        assert code == 1
        assert check(report, "tcp")["status"] == "skip"
        assert check(report, "registry")["status"] == "skip"
        assert f"127.0.0.1 {registry.split(':')[0]}" in dns["fix"]
    else:
        assert (dns["status"], dns["cause"]) == ("warn", "loopback-address")
        assert code == 0
    # Crossplane, in its pod, reaches itself (RFC 6761), whatever this resolver says.
    assert report["crossplane"]["ok"] is False


def test_in_cluster_loopback_is_a_failure(https_registry: Registry, pki: PKI,
                                          packages: dict[str, PushedPackage]) -> None:
    code, report = run_doctor(f"{https_registry.host}/{packages[FN].ref}", "--ca-bundle",
                              str(pki.ca_cert), "--in-cluster")
    assert code == 1
    assert check(report, "dns")["status"] == "fail"
    assert check(report, "tcp")["status"] == "skip"


def test_dns_failure() -> None:
    code, report = run_doctor("registry.does-not-exist.invalid:5000/fns/f:v1")
    assert code == 1
    dns = check(report, "dns")
    assert (dns["status"], dns["cause"]) == ("fail", "dns-failure")
    assert "NetworkPolicy" in dns["detail"]
    assert check(report, "tcp")["status"] == "skip"


# -- tcp ------------------------------------------------------------------------------------------
def test_connection_refused(closed_port: int) -> None:
    code, report = run_doctor(f"127.0.0.1:{closed_port}/fns/f:v1")
    assert code == 1
    tcp = check(report, "tcp")
    assert (tcp["status"], tcp["cause"]) == ("fail", "connection-refused")
    assert "NetworkPolicy" in tcp["detail"]  # says it is not the likely cause
    assert check(report, "tls")["status"] == "skip" and code == 1


def test_tcp_timeout_from_dropped_syns(dropping_port: int) -> None:
    start = time.monotonic()
    code, report = run_doctor(f"127.0.0.1:{dropping_port}/fns/f:v1", timeout="0.5")
    assert time.monotonic() - start < 10
    tcp = check(report, "tcp")
    assert code == 1 and (tcp["status"], tcp["cause"]) == ("fail", "timeout")
    assert "NetworkPolicy" in tcp["detail"] and "--network-policies" in tcp["fix"]


def test_tls_timeout_from_a_listener_that_never_answers(silent_listener: int) -> None:
    start = time.monotonic()
    code, report = run_doctor(f"127.0.0.1:{silent_listener}/fns/f:v1", timeout="0.5")
    assert time.monotonic() - start < 10
    assert code == 1
    assert check(report, "tcp")["status"] == "pass"
    tls = check(report, "tls")
    assert (tls["status"], tls["cause"]) == ("fail", "timeout")


# -- tls -------------------------------------------------------------------------------------------
def test_plain_http_where_tls_expected(http_registry: Registry) -> None:
    code, report = run_doctor(f"{http_registry.host}/fns/f:v1")
    tls = check(report, "tls")
    assert code == 1 and (tls["status"], tls["cause"]) == ("fail", "plain-http")
    assert "mode: Disabled" in tls["fix"]


def test_tls_where_disabled_was_set(https_registry: Registry, tmp_path: Path) -> None:
    code, report = run_doctor(f"{https_registry.host}/fns/f:v1", "--config",
                              disabled_config(tmp_path, https_registry.host))
    tls = check(report, "tls")
    assert code == 1 and (tls["status"], tls["cause"]) == ("fail", "tls-expected")
    assert "mode: Strict" in tls["fix"]


def test_untrusted_certificate_shows_the_certificate(untrusted_registry: Registry,
                                                     pki: PKI) -> None:
    code, report = run_doctor(f"{untrusted_registry.host}/fns/f:v1")
    tls = check(report, "tls")
    assert code == 1 and (tls["status"], tls["cause"]) == ("fail", "untrusted-certificate")
    leaf = tls["data"]["chain"][0]
    assert leaf["sha256"] == "sha256:" + der_sha256(pki.untrusted_server.cert)
    assert "crossfetch untrusted CA" in leaf["issuer"]
    assert "IP:127.0.0.1" in leaf["sans"] and "DNS:localhost" in leaf["sans"]
    for text in (der_sha256(pki.untrusted_server.cert), "issuer:", "subject:", "SANs:"):
        assert text in tls["detail"]
    # Every route to trust, ready to paste: ConfigMap + Helm, ImageConfig, containerd.
    for text in ("kubectl -n crossplane-system create configmap", "registryCaBundleConfig.name",
                 "caBundleConfigMapRef", "hosts.toml", "--from-secret"):
        assert text in tls["fix"]


def test_untrusted_self_signed_fix_pins_its_fingerprint(self_signed_registry: Registry,
                                                       pki: PKI) -> None:
    _code, report = run_doctor(f"{self_signed_registry.host}/fns/f:v1")
    tls = check(report, "tls")
    assert tls["cause"] == "untrusted-certificate"
    fp = der_sha256(pki.self_signed.cert)
    assert f"--fingerprint sha256:{fp}" in tls["fix"]


def test_hostname_mismatch(wrong_host_registry: Registry, pki: PKI) -> None:
    code, report = run_doctor(f"{wrong_host_registry.host}/fns/f:v1",
                              "--ca-bundle", str(pki.ca_cert))
    tls = check(report, "tls")
    assert code == 1 and (tls["status"], tls["cause"]) == ("fail", "hostname-mismatch")
    assert "wrong.example" in tls["fix"]


def test_expired_certificate(expired_registry: Registry, pki: PKI) -> None:
    code, report = run_doctor(f"{expired_registry.host}/fns/f:v1",
                              "--ca-bundle", str(pki.ca_cert))
    tls = check(report, "tls")
    assert code == 1 and (tls["status"], tls["cause"]) == ("fail", "expired-certificate")
    assert tls["data"]["chain"][0]["expired"] is True
    assert "Renew" in tls["fix"]


# -- registry, auth, manifest, package ------------------------------------------------------------
def test_not_a_registry(pki: PKI) -> None:
    with WebServer(tls=pki.server) as web:
        code, report = run_doctor(f"{web.host}/fns/f:v1", "--ca-bundle", str(pki.ca_cert))
    reg = check(report, "registry")
    assert code == 1 and (reg["status"], reg["cause"]) == ("fail", "not-a-registry")
    assert reg["data"]["status"] == 404 and "text/html" in reg["data"]["contentType"]
    assert check(report, "tls")["status"] == "pass"


def test_unauthorized_names_the_challenge(basic_auth_registry: Registry, pki: PKI,
                                          packages: dict[str, PushedPackage]) -> None:
    code, report = run_doctor(f"{basic_auth_registry.host}/{packages[FN].ref}",
                              "--ca-bundle", str(pki.ca_cert))
    auth = check(report, "auth")
    assert code == 1 and (auth["status"], auth["cause"]) == ("fail", "unauthorized")
    assert auth["data"]["challenge"]["scheme"] == "Basic"
    assert auth["data"]["challenge"]["realm"] == "test"
    assert "realm='test'" in auth["detail"]
    assert "create secret docker-registry" in auth["fix"] and "pullSecretRef" in auth["fix"]
    assert check(report, "registry")["status"] == "pass"


def test_not_found_lists_the_tags(https_registry: Registry, pki: PKI,
                                  packages: dict[str, PushedPackage]) -> None:
    repo = packages[FN].repo
    code, report = run_doctor(f"{https_registry.host}/{repo}:v9.9.9",
                              "--ca-bundle", str(pki.ca_cert))
    assert code == 1
    for method in ("HEAD", "GET"):
        m = check(report, "manifest", method)
        assert (m["status"], m["cause"]) == ("fail", "not-found")
    assert packages[FN].tag in check(report, "manifest", "GET")["fix"]
    assert check(report, "package")["status"] == "skip"


def test_head_refused_but_get_works(fault_proxy: FaultProxy, tmp_path: Path,
                                    packages: dict[str, PushedPackage]) -> None:
    fault_proxy.reject_head = True
    code, report = run_doctor(f"{fault_proxy.host}/{packages[FN].ref}", "--config",
                              disabled_config(tmp_path, fault_proxy.host))
    head, get = check(report, "manifest", "HEAD"), check(report, "manifest", "GET")
    assert (head["status"], head["cause"]) == ("warn", "method-not-allowed")
    assert "failed to fetch package descriptor with a GET request" in head["detail"]
    assert get["status"] == "pass" and check(report, "package")["status"] == "pass"
    assert code == 0


def test_image_without_package_yaml(https_registry: Registry, pki: PKI,
                                    packages: dict[str, PushedPackage]) -> None:
    blobs: dict[str, bytes] = {}
    image = pk._Image(blobs)
    image.layer(pk.make_tar({"README.md": b"just an image\n"}))
    manifest = image.manifest()
    raw_push(https_registry.url, "plain/not-a-package", "v1", manifest, pk.OCI_MANIFEST, blobs,
             verify=str(pki.ca_cert))
    code, report = run_doctor(f"{https_registry.host}/plain/not-a-package:v1",
                              "--ca-bundle", str(pki.ca_cert))
    p = check(report, "package")
    assert code == 1 and (p["status"], p["cause"]) == ("fail", "no-package-yaml")
    assert "crossplane xpkg build" in p["fix"]


def test_image_without_package_yaml_fix_pushes_a_package_to_that_reference(
        https_registry: Registry, pki: PKI) -> None:
    blobs: dict[str, bytes] = {}
    image = pk._Image(blobs)
    image.layer(pk.make_tar({"README.md": b"just an image\n"}), annotations=pk.BASE)
    raw_push(https_registry.url, "plain/base-without-package", "v1", image.manifest(),
             pk.OCI_MANIFEST, blobs, verify=str(pki.ca_cert))
    ref = f"{https_registry.host}/plain/base-without-package:v1"
    code, report = run_doctor(ref, "--ca-bundle", str(pki.ca_cert))
    p = check(report, "package")
    assert code == 1 and (p["status"], p["cause"]) == ("fail", "no-package-yaml")
    assert f"crossplane xpkg push -f pkg.xpkg {ref}" in p["fix"]


# -- networkpolicy ---------------------------------------------------------------------------------
DENY_ALL_EGRESS = """\
apiVersion: v1
kind: List
items:
- apiVersion: networking.k8s.io/v1
  kind: NetworkPolicy
  metadata: {name: default-deny-egress, namespace: crossplane-system}
  spec:
    podSelector: {}
    policyTypes: [Egress]
"""

ALLOW_REGISTRY = """\
- apiVersion: networking.k8s.io/v1
  kind: NetworkPolicy
  metadata: {name: allow-registry, namespace: crossplane-system}
  spec:
    podSelector: {matchLabels: {app: crossplane}}
    policyTypes: [Egress]
    egress:
    - to: [{ipBlock: {cidr: 127.0.0.0/8}}]
      ports: [{protocol: TCP, port: PORT}]
"""


def test_networkpolicy_blocking_egress(https_registry: Registry, pki: PKI, tmp_path: Path,
                                       packages: dict[str, PushedPackage]) -> None:
    np = tmp_path / "np.yaml"
    np.write_text(DENY_ALL_EGRESS)
    code, report = run_doctor(f"{https_registry.host}/{packages[FN].ref}", "--ca-bundle",
                              str(pki.ca_cert), "--network-policies", str(np))
    npc = check(report, "networkpolicy")
    assert code == 1 and (npc["status"], npc["cause"]) == ("fail", "egress-blocked")
    assert "crossplane-system/default-deny-egress" in npc["detail"]
    assert "kind: NetworkPolicy" in npc["fix"] and "127.0.0.1/32" in npc["fix"]
    assert npc["data"]["registry"]["verdict"] == "denied"
    assert check(report, "package")["status"] == "pass"  # the laptop can pull; the pod cannot


def test_networkpolicy_allowing_egress(https_registry: Registry, pki: PKI, tmp_path: Path,
                                       packages: dict[str, PushedPackage]) -> None:
    np = tmp_path / "np.yaml"
    np.write_text(DENY_ALL_EGRESS + ALLOW_REGISTRY.replace("PORT", str(https_registry.port)))
    code, report = run_doctor(f"{https_registry.host}/{packages[FN].ref}", "--ca-bundle",
                              str(pki.ca_cert), "--network-policies", str(np))
    npc = check(report, "networkpolicy")
    assert code == 0 and npc["status"] == "pass"
    assert npc["data"]["registry"]["allowedBy"].startswith("crossplane-system/allow-registry")


def test_networkpolicy_other_pod_labels_are_not_selected(
        https_registry: Registry, pki: PKI, tmp_path: Path,
        packages: dict[str, PushedPackage]) -> None:
    np = tmp_path / "np.yaml"
    np.write_text(DENY_ALL_EGRESS.replace("podSelector: {}",
                                          "podSelector: {matchLabels: {app: other}}"))
    code, report = run_doctor(f"{https_registry.host}/{packages[FN].ref}", "--ca-bundle",
                              str(pki.ca_cert), "--network-policies", str(np),
                              "--pod-labels", "app=crossplane,release=crossplane")
    assert code == 0 and check(report, "networkpolicy")["status"] == "pass"


def test_networkpolicy_is_evaluated_even_when_the_network_fails(dropping_port: int,
                                                                tmp_path: Path) -> None:
    np = tmp_path / "np.yaml"
    np.write_text(DENY_ALL_EGRESS)
    code, report = run_doctor(f"127.0.0.1:{dropping_port}/fns/f:v1", "--network-policies",
                              str(np), timeout="0.5")
    assert check(report, "tcp")["cause"] == "timeout"
    assert check(report, "networkpolicy")["cause"] == "egress-blocked"
    assert check(report, "tls")["status"] == "skip" and code == 1


@pytest.mark.parametrize(("password", "ok"), [("s3cret", True), ("wrong", False)])
def test_auth_with_credentials(basic_auth_registry: Registry, pki: PKI, password: str, ok: bool,
                               packages: dict[str, PushedPackage]) -> None:
    result = invoke(["doctor", f"{basic_auth_registry.host}/{packages[FN].ref}", "--ca-bundle",
              str(pki.ca_cert), "--no-node-config", "--username", "alice", "--password-stdin",
              "-O", "json"], input=f"{password}\n")
    report = json.loads(result.stdout)
    auth = check(report, "auth")
    assert auth["data"]["credentials"]  # where the credentials came from is named
    if ok:
        assert result.exit_code == 0 and auth["status"] == "pass"
        assert check(report, "package")["status"] == "pass"
    else:
        assert result.exit_code == 1 and auth["cause"] == "unauthorized"
        assert "rejected" in auth["detail"] and auth["data"]["challenge"]["scheme"] == "Basic"
