"""Clients configured by what ``serve --emit`` prints: containerd (the kubelet path) and
crossfetch's own pull with the emitted ImageConfigs; the TLS state; graceful shutdown."""

from __future__ import annotations

import hashlib
import http.client
import ipaddress
import os
import signal
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from cryptography import x509

from tests.integration.conftest import PushedPackage
from tests.support.containerd import Containerd, containerd_skip_reason
from tests.support.registry import Registry
from tests.support.serve import CLI, BridgeProcess, push_image


def plain_policy(path: Path, host: str) -> Path:
    path.write_text("apiVersion: pkg.crossplane.io/v1beta1\nkind: ImageConfig\n"
                    f"metadata: {{name: plain}}\nspec:\n  matchImages: [{{type: Prefix, "
                    f"prefix: '{host}/'}}]\n  registry:\n    tls: {{mode: Disabled}}\n")
    return path


@pytest.fixture(scope="module")
def bridge(testbed_dir: Path, http_registry: Registry,
           packages: dict[str, PushedPackage]) -> Iterator[BridgeProcess]:
    policy = plain_policy(testbed_dir / "serve-clients-policy.yaml", http_registry.host)
    with BridgeProcess(testbed_dir, [f"local/={http_registry.host}/",
                                     f"fns/={http_registry.host}/fns/"],
                       "--config", str(policy), "--retries", "0") as b:
        yield b


def emit(bridge: BridgeProcess, *args: str) -> subprocess.CompletedProcess[str]:
    cmd = [*CLI, "serve", "--state-dir", str(bridge.state_dir), "--advertise", bridge.host,
           *(x for h in bridge.hostnames for x in ("--hostname", h)),
           *(x for r in bridge.routes for x in ("--route", r)), *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)


def test_state_dir_holds_a_ca_and_a_server_cert_for_every_hostname(tmp_path: Path) -> None:
    state = tmp_path / "state"
    names = ["crossfetch-bridge.crossplane-system.svc",
             "crossfetch-bridge.crossplane-system.svc.cluster.local", "10.96.0.10", "::1"]
    r = subprocess.run([*CLI, "serve", "--state-dir", str(state), "--route", "a/=reg.test/",
                        *(x for n in names for x in ("--hostname", n)), "--emit", "crossplane"],
                       capture_output=True, text=True, timeout=60, check=False)
    assert r.returncode == 0, r.stderr
    for private in ("ca.key", "server.key"):
        assert stat.S_IMODE((state / private).stat().st_mode) == 0o600
    cert = x509.load_pem_x509_certificate((state / "server.crt").read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert set(san.get_values_for_type(x509.DNSName)) == set(names[:2])
    assert set(san.get_values_for_type(x509.IPAddress)) == {ipaddress.ip_address("10.96.0.10"),
                                                           ipaddress.ip_address("::1")}
    ca = x509.load_pem_x509_certificate((state / "ca.crt").read_bytes())
    assert cert.issuer == ca.subject
    # A second run keeps the CA and the certificate (clients keep trusting them) ...
    before = {p: (state / p).read_bytes() for p in ("ca.crt", "server.crt")}
    subprocess.run(r.args, capture_output=True, timeout=60, check=True)
    assert {p: (state / p).read_bytes() for p in before} == before
    # ... and a new hostname reissues only the server certificate, under the same CA.
    subprocess.run([*r.args, "--hostname", "bridge.example"], capture_output=True, timeout=60,
                   check=True)
    assert (state / "ca.crt").read_bytes() == before["ca.crt"]
    assert (state / "server.crt").read_bytes() != before["server.crt"]


def test_emit_crossplane_then_pull_with_the_emitted_config(
        bridge: BridgeProcess, http_registry: Registry, packages: dict[str, PushedPackage],
        tmp_path: Path) -> None:
    r = emit(bridge, "--emit", "crossplane")
    assert r.returncode == 0, r.stderr
    docs = [d for d in yaml.safe_load_all(r.stdout) if d]
    cm = next(d for d in docs if d["kind"] == "ConfigMap")
    assert cm["metadata"] == {"name": "crossfetch-bridge-ca", "namespace": "crossplane-system"}
    assert cm["data"]["ca.crt"].strip() == bridge.ca.read_text().strip()
    assert "registryCaBundleConfig:" in r.stdout
    ics = {d["spec"]["matchImages"][0]["prefix"]: d["spec"]["rewriteImage"]["prefix"]
           for d in docs if d["kind"] == "ImageConfig"}
    assert ics == {f"{http_registry.host}/": f"{bridge.host}/local/",
                   f"{http_registry.host}/fns/": f"{bridge.host}/fns/"}

    # crossfetch pull, given only the emitted objects and the CA as Crossplane gets them
    # (CA_BUNDLE_PATH), goes through the bridge.
    config = tmp_path / "emitted.yaml"
    config.write_text(r.stdout)
    ca = tmp_path / "bundle.crt"
    ca.write_text(cm["data"]["ca.crt"])
    pkg = packages["function_with_runtime"]  # fns/...: the longer of the two prefixes wins
    before = len(bridge.requests())
    p = subprocess.run([*CLI, "pull", http_registry.ref(pkg.ref), "--config", str(config),
                        "--no-node-config", "--cache-dir", str(tmp_path / "c"), "-O", "json"],
                       capture_output=True, text=True, timeout=120, check=False,
                       env={**os.environ, "CA_BUNDLE_PATH": str(ca)})
    assert p.returncode == 0, p.stderr + p.stdout
    assert f'"resolved": "{bridge.host}/fns/function-runtime:v0.1.0"' in p.stdout
    assert pkg.built.manifest_digest in p.stdout
    assert any(x["path"].startswith("/v2/fns/function-runtime/blobs/")
               for x in bridge.requests()[before:])


@pytest.mark.containerd
def test_containerd_cri_pull_through_the_bridge(
        bridge: BridgeProcess, http_registry: Registry, packages: dict[str, PushedPackage],
        tmp_path: Path) -> None:
    if reason := containerd_skip_reason():
        pytest.skip(reason)
    from crossfetch.cri import RuntimeBlobSource, RuntimeClient

    hosts = tmp_path / "certs.d"
    r = emit(bridge, "--emit", "hosts-toml", "--emit-dir", str(hosts))
    assert r.returncode == 0, r.stderr
    toml = (hosts / http_registry.host / "hosts.toml").read_text()
    # The upstream itself is plain HTTP: the https server line can only fail, so a pull that
    # works went through the bridge mirror.
    assert f'server = "https://{http_registry.host}"' in toml
    assert f'[host."https://{bridge.host}/v2/local"]' in toml and "override_path = true" in toml
    pkg = packages["function_with_runtime"]
    ref = http_registry.ref(pkg.ref)
    before = len(bridge.requests())
    with Containerd(tmp_path, hosts_dir=hosts) as ctd, \
            RuntimeClient(ctd.endpoint, timeout=120) as client:
        client.pull(ref)
        _, _, digest = RuntimeBlobSource(client, ref).fetch_manifest(pkg.tag)
    assert digest == pkg.built.manifest_digest
    seen = bridge.requests()[before:]
    blobs = {x["path"].split("?")[0].rsplit("/", 1)[1] for x in seen
             if x["kind"] == "blob" and x["status"] == 200}
    assert pkg.built.runtime_layer_digest in blobs
    assert all("containerd" in x["agent"] for x in seen)


def test_emit_hosts_toml_refuses_routes_containerd_cannot_use(tmp_path: Path) -> None:
    r = subprocess.run([*CLI, "serve", "--state-dir", str(tmp_path), "--route",
                        "g/=gitea.test:8443/giteaadmin/", "--emit", "hosts-toml"],
                       capture_output=True, text=True, timeout=60, check=False)
    assert r.returncode == 2
    assert "error:" in r.stderr and "--route" in r.stderr


def test_emit_dir_is_not_left_through_a_symlink(tmp_path: Path) -> None:
    """--emit-dir writes only under the directory named, as trust --emit certs-d does."""
    hosts, elsewhere = tmp_path / "hosts", tmp_path / "elsewhere"
    hosts.mkdir()
    elsewhere.mkdir()
    (hosts / "reg.test:5000").symlink_to(elsewhere)
    r = subprocess.run([*CLI, "serve", "--state-dir", str(tmp_path / "state"), "--route",
                        "g/=reg.test:5000/", "--emit", "hosts-toml", "--emit-dir", str(hosts)],
                       capture_output=True, text=True, timeout=60, check=False)
    assert r.returncode == 2 and "is outside" in r.stderr, r.stderr
    assert list(elsewhere.iterdir()) == []


def test_graceful_shutdown_finishes_in_flight_responses(testbed_dir: Path, tmp_path: Path
                                                        ) -> None:
    with Registry(tmp_path / "up", storage=tmp_path / "up-data") as up:
        data = os.urandom(20 * 1024 * 1024)
        _, (digest,) = push_image(up.url, "fns/g", "v1", [data])
        policy = plain_policy(tmp_path / "p.yaml", up.host)
        b = BridgeProcess(tmp_path, [f"g/={up.host}/fns/"], "--config", str(policy))
        with b:
            assert b.get(f"/v2/g/g/blobs/{digest}")[0] == 200  # cached now
            conn = http.client.HTTPSConnection("127.0.0.1", b.port,
                                               context=b.ssl_context(), timeout=60)
            conn.request("GET", f"/v2/g/g/blobs/{digest}")
            resp = conn.getresponse()
            first = resp.read(1024 * 1024)
            proc = b.terminate()
            rest = resp.read()
            conn.close()
            assert hashlib.sha256(first + rest).hexdigest() == digest.split(":")[1]
            assert proc.wait(timeout=60) == 0
            msgs = [x.get("msg") for x in b.log_lines()]
            assert "shutting down: finishing in-flight responses" in msgs
            assert msgs[-1] == "stopped"
    assert signal.SIGTERM  # the signal the kubelet sends
