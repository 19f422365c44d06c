"""``crossfetch trust`` against real TLS registries: pinning, refusal, emitters, and the round
trip into ``crossfetch pull --config`` under Strict."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from crossfetch.policy.objects import ObjectSet
from tests.integration.conftest import PushedPackage
from tests.support.certs import PKI
from tests.support.cli import CliResult as Result
from tests.support.cli import invoke as run_cli
from tests.support.registry import Registry

FN = "function_with_runtime"


@pytest.fixture(scope="module")
def self_signed_registry(testbed_dir: Path, registry_storage: Path, pki: PKI
                         ) -> Iterator[Registry]:
    """HTTPS with a self-signed leaf (no CA), serving the shared test packages."""
    with Registry(testbed_dir, tls=pki.self_signed, storage=registry_storage) as reg:
        yield reg


def fp(pem_file: Path) -> str:
    cert = x509.load_pem_x509_certificate(pem_file.read_bytes())
    return "sha256:" + hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()


def invoke(*args: str) -> Result:
    return run_cli(list(args))


def pull(ref: str, tmp_path: Path, *config: Path) -> Result:
    args = ["pull", ref, "--no-node-config", "--cache-dir", str(tmp_path / "cache"),
            "--retries", "0", "-O", "json"]
    for c in config:
        args += ["--config", str(c)]
    return invoke(*args)


def test_round_trip_pinned_self_signed_registry_then_strict_pull(
        self_signed_registry: Registry, pki: PKI, tmp_path: Path,
        packages: dict[str, PushedPackage]) -> None:
    host = self_signed_registry.host
    ref = f"{host}/{packages[FN].ref}"
    before = pull(ref, tmp_path)
    assert before.exit_code == 1 and "untrusted-certificate" in before.stdout

    pin = fp(pki.self_signed.cert)
    ic, cm = tmp_path / "imageconfig.yaml", tmp_path / "configmap.yaml"
    for kind, out in (("imageconfig", ic), ("configmap", cm)):
        r = invoke("trust", host, "--fingerprint", pin, "--emit", kind, "-o", str(out))
        assert r.exit_code == 0, r.output
        assert "verifies with this anchor" in r.stderr
    assert "mode: Strict" in ic.read_text() and "caBundleConfigMapRef" in ic.read_text()
    assert "BEGIN CERTIFICATE" in cm.read_text()

    after = pull(ref, tmp_path, ic, cm)
    assert after.exit_code == 0, after.output
    result = json.loads(after.stdout)
    assert result["digest"] == packages[FN].built.manifest_digest
    assert result["kind"] == "Function"


def test_both_objects_in_one_file(self_signed_registry: Registry, pki: PKI, tmp_path: Path,
                                  packages: dict[str, PushedPackage]) -> None:
    out = tmp_path / "trust.yaml"
    r = invoke("trust", self_signed_registry.host, "--fingerprint", fp(pki.self_signed.cert),
               "--emit", "configmap", "--emit", "imageconfig", "-o", str(out))
    assert r.exit_code == 0, r.output
    objects = ObjectSet()
    objects.add_file(out)
    assert len(objects.image_configs) == 1 and len(objects.config_maps) == 1
    ok = pull(f"{self_signed_registry.host}/{packages[FN].ref}", tmp_path, out)
    assert ok.exit_code == 0, ok.output


def test_wrong_pin_is_refused_and_nothing_written(self_signed_registry: Registry,
                                                  tmp_path: Path) -> None:
    out = tmp_path / "ca.crt"
    r = invoke("trust", self_signed_registry.host, "--fingerprint", "sha256:" + "ab" * 32,
               "-o", str(out))
    assert r.exit_code == 1
    assert "fingerprint" in r.stderr and "refusing" in r.stderr
    assert not out.exists()


def test_no_pin_and_no_terminal_refuses_and_prints_the_command(
        self_signed_registry: Registry, pki: PKI, tmp_path: Path) -> None:
    out = tmp_path / "ca.crt"
    r = invoke("trust", self_signed_registry.host, "--emit", "configmap", "-o", str(out))
    assert r.exit_code == 2
    pin = fp(pki.self_signed.cert)
    assert (f"crossfetch trust {self_signed_registry.host} --fingerprint {pin} --emit configmap"
            in r.stderr)
    # The chain is shown so the user can check it.
    assert "subject:" in r.output and pin.removeprefix("sha256:") in r.output
    assert not out.exists()


def test_json_output_lists_the_chain(self_signed_registry: Registry, pki: PKI) -> None:
    r = invoke("trust", self_signed_registry.host, "--fingerprint", fp(pki.self_signed.cert),
               "--emit", "imageconfig", "-O", "json")
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert doc["ok"] and doc["verified"] is True
    assert doc["anchor"]["sha256"] == fp(pki.self_signed.cert)
    assert doc["chain"][0]["selfSigned"] is True
    assert "kind: ImageConfig" in doc["text"]


def test_pin_accepts_openssl_format(self_signed_registry: Registry, pki: PKI) -> None:
    hexfp = fp(pki.self_signed.cert).removeprefix("sha256:").upper()
    colons = ":".join(hexfp[i:i + 2] for i in range(0, 64, 2))
    r = invoke("trust", self_signed_registry.host, "--fingerprint", f"SHA256={colons}")
    assert r.exit_code == 0, r.output
    assert r.stdout.startswith("-----BEGIN CERTIFICATE-----")


def test_certs_d_layout_and_hosts_toml(self_signed_registry: Registry, pki: PKI,
                                       tmp_path: Path) -> None:
    host = self_signed_registry.host
    pin = fp(pki.self_signed.cert)
    assert invoke("trust", host, "--fingerprint", pin, "--emit", "certs-d").exit_code == 2
    r = invoke("trust", host, "--fingerprint", pin, "--emit", "certs-d",
               "-o", str(tmp_path / "certs.d"))
    assert r.exit_code == 0, r.output
    ca = tmp_path / "certs.d" / host / "ca.crt"
    assert fp(ca) == pin
    (tmp_path / "hosts").mkdir()
    r = invoke("trust", host, "--fingerprint", pin, "--emit", "hosts-toml",
               "-o", str(tmp_path / "hosts"))
    assert r.exit_code == 0, r.output
    toml = (tmp_path / "hosts" / host / "hosts.toml").read_text()
    assert f'server = "https://{host}"' in toml
    assert f'ca = "/etc/containerd/certs.d/{host}/ca.crt"' in toml
    assert fp(tmp_path / "hosts" / host / "ca.crt") == pin
    r = invoke("trust", host, "--fingerprint", pin, "--emit", "helm-values")
    assert "registryCaBundleConfig:\n  name: " in r.stdout and "key: ca.crt" in r.stdout


def test_leaf_from_an_unsent_ca_has_no_anchor(untrusted_registry: Registry) -> None:
    r = invoke("trust", untrusted_registry.host, "--fingerprint", "sha256:" + "00" * 32)
    assert r.exit_code == 1
    assert "no anchor" in r.stderr and "--from-secret" in r.stderr


@pytest.mark.parametrize("key", ["ca.crt", "tls.crt"])
def test_from_secret_then_strict_pull(https_registry: Registry, pki: PKI, tmp_path: Path,
                                      packages: dict[str, PushedPackage], key: str) -> None:
    secret = tmp_path / "idpbuilder-cert.yaml"
    b64 = base64.b64encode(pki.ca_cert.read_bytes()).decode()
    secret.write_text("apiVersion: v1\nkind: Secret\nmetadata:\n  name: idpbuilder-cert\n"
                      f"  namespace: default\ntype: kubernetes.io/tls\ndata:\n  {key}: {b64}\n")
    out = tmp_path / "trust.yaml"
    r = invoke("trust", https_registry.host, "--from-secret", str(secret),
               "--emit", "configmap", "--emit", "imageconfig", "-o", str(out))
    assert r.exit_code == 0, r.output
    ok = pull(f"{https_registry.host}/{packages[FN].ref}", tmp_path, out)
    assert ok.exit_code == 0, ok.output


def test_trust_against_plain_http_fails_clearly(http_registry: Registry) -> None:
    r = invoke("trust", http_registry.host)
    assert r.exit_code == 1
    # Issue 10: it said "TLS handshake ... failed: WRONG_VERSION_NUMBER"; it names HTTP now.
    assert "speaks plain HTTP, not TLS" in r.stderr and "WRONG_VERSION_NUMBER" not in r.stderr


@pytest.mark.parametrize(("answer", "code"), [("y\n", 0), ("n\n", 1)])
def test_interactive_yes_on_a_terminal(self_signed_registry: Registry, pki: PKI,
                                       monkeypatch: pytest.MonkeyPatch, answer: str,
                                       code: int) -> None:
    monkeypatch.setattr("crossfetch.cli.trust_cmds._interactive", lambda: True)
    r = run_cli(["trust", self_signed_registry.host], input=answer)
    assert r.exit_code == code, r.output
    assert "Trust " in r.output and fp(pki.self_signed.cert).removeprefix("sha256:") in r.output
    assert ("-----BEGIN CERTIFICATE-----" in r.stdout) == (code == 0)
