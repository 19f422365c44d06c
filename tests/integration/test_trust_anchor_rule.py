"""``trust --from-secret`` and ``trust`` over the network apply one anchor rule: a leaf issued
by another CA is refused on both paths, and nothing is written."""

from __future__ import annotations

import base64
import json
from pathlib import Path

from tests.support.certs import PKI
from tests.support.cli import invoke
from tests.support.registry import Registry


def secret_with(pem: bytes, path: Path, key: str = "tls.crt") -> Path:
    b64 = base64.b64encode(pem).decode()
    path.write_text("apiVersion: v1\nkind: Secret\nmetadata:\n  name: registry-cert\n"
                    f"type: kubernetes.io/tls\ndata:\n  {key}: {b64}\n")
    return path


def test_a_leaf_in_a_secret_is_refused_like_the_same_leaf_over_the_network(
        untrusted_registry: Registry, pki: PKI, tmp_path: Path) -> None:
    leaf = pki.untrusted_server.cert.read_bytes()  # CA:FALSE, issued by the other CA
    secret = secret_with(leaf, tmp_path / "leaf.yaml")
    out = tmp_path / "trust.yaml"
    from_secret = invoke(["trust", untrusted_registry.host, "--from-secret", str(secret),
                          "--emit", "configmap", "-o", str(out), "-O", "json"])
    over_network = invoke(["trust", untrusted_registry.host, "--fingerprint",
                           "sha256:" + "00" * 32, "-o", str(out), "-O", "json"])
    for r in (from_secret, over_network):
        assert r.exit_code == 1, r.output
        doc = json.loads(r.stdout)
        assert doc["ok"] is False and doc["cause"] == "no-trust-anchor" and doc["fix"]
    assert "leaf certificate (CA:FALSE)" in json.loads(from_secret.stdout)["message"]
    assert not out.exists()


def test_a_ca_bundle_with_the_leaf_first_still_anchors_on_its_root(
        untrusted_registry: Registry, pki: PKI, tmp_path: Path) -> None:
    bundle = pki.untrusted_server.cert.read_bytes() + pki.other_ca_cert.read_bytes()
    secret = secret_with(bundle, tmp_path / "bundle.yaml")
    r = invoke(["trust", untrusted_registry.host, "--from-secret", str(secret), "-O", "json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["anchor"]["isCA"] is True
