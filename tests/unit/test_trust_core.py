"""Unit tests for crossfetch.trust: fingerprints, bundles, anchors, Secrets, emitters."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
import trustme

from crossfetch.errors import ConfigError, UsageError
from crossfetch.policy.objects import ObjectSet
from crossfetch.trust import (
    CertInfo,
    TrustNames,
    choose_anchor,
    emit_text,
    load_secret_certs,
    normalize_fingerprint,
    parse_pem_bundle,
    split_host_port,
    write_certs_d,
)

HEX = "0123456789abcdef" * 4


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA(organization_name="unit CA")


@pytest.fixture(scope="module")
def chain(ca: trustme.CA) -> list[CertInfo]:
    leaf = ca.issue_cert("reg.example", "127.0.0.1")
    return parse_pem_bundle(leaf.cert_chain_pems[0].bytes() + ca.cert_pem.bytes())


@pytest.mark.parametrize("text", [
    f"sha256:{HEX}", HEX, HEX.upper(), f"SHA256:{HEX}",
    "SHA256 Fingerprint=" + ":".join(HEX[i:i + 2] for i in range(0, 64, 2)).upper(),
    "sha256=" + ":".join(HEX[i:i + 2] for i in range(0, 64, 2)),
])
def test_fingerprint_forms(text: str) -> None:
    assert normalize_fingerprint(text) == f"sha256:{HEX}"


@pytest.mark.parametrize("text", ["", "sha256:abc", "md5:" + HEX, HEX + "00", "sha256:" + "g" * 64])
def test_bad_fingerprints(text: str) -> None:
    with pytest.raises(UsageError):
        normalize_fingerprint(text)


def test_chain_details(chain: list[CertInfo]) -> None:
    leaf, root = chain
    assert not leaf.is_ca and not leaf.self_signed
    assert root.is_ca and root.self_signed
    assert "DNS:reg.example" in leaf.sans and "IP:127.0.0.1" in leaf.sans
    assert leaf.fingerprint.startswith("sha256:") and len(leaf.fingerprint) == 71
    assert "unit CA" in leaf.issuer
    d = leaf.to_dict()
    assert d["sha256"] == leaf.fingerprint and d["expired"] is False
    assert "SANs:" in leaf.describe()


def test_anchor_is_the_root_or_nothing(chain: list[CertInfo]) -> None:
    assert choose_anchor(chain) is chain[1]
    assert choose_anchor(chain[:1]) is None  # leaf from a CA the server did not send
    assert choose_anchor(chain[::-1]) is chain[1]  # a bundle in any order: its root


def test_bundle_without_certificates() -> None:
    with pytest.raises(ConfigError):
        parse_pem_bundle("no certificates here")


@pytest.mark.parametrize(("section", "key"), [("data", "ca.crt"), ("data", "tls.crt"),
                                              ("stringData", "ca.crt")])
def test_secret_keys(tmp_path: Path, ca: trustme.CA, section: str, key: str) -> None:
    pem = ca.cert_pem.bytes().decode()
    if section == "data":
        value = base64.b64encode(pem.encode()).decode()
        body = f"data:\n  {key}: {value}\n"
    else:
        body = f"stringData:\n  {key}: |\n" + "".join(f"    {x}\n" for x in pem.splitlines())
    f = tmp_path / "s.yaml"
    f.write_text(f"apiVersion: v1\nkind: Secret\nmetadata:\n  name: idpbuilder-cert\n{body}")
    certs, got = load_secret_certs(f)
    assert got == key and certs[0].is_ca


def test_secret_without_ca(tmp_path: Path) -> None:
    f = tmp_path / "s.yaml"
    f.write_text("apiVersion: v1\nkind: Secret\nmetadata: {name: x}\ndata: {other: eA==}\n")
    with pytest.raises(ConfigError, match=r"neither ca\.crt nor tls\.crt"):
        load_secret_certs(f)
    f.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n")
    with pytest.raises(ConfigError, match="no Secret"):
        load_secret_certs(f)


@pytest.mark.parametrize("content", [
    b"\xff\xfe not utf-8 \xc3\x28",
    b"apiVersion: v1\nkind: Secret\nmetadata: {name: x, creationTimestamp: 2024-13-01}\n",
    b"apiVersion: v1\nkind: Secret\nmetadata: {name: x}\ndata: [ca.crt]\n",
    b"apiVersion: v1\nkind: List\nitems: 3\n",
    b"apiVersion: v1\nkind: Secret\nmetadata: {name: x}\ndata: {ca.crt: not-base64!}\n",
], ids=["binary", "impossible-date", "data-list", "items-scalar", "bad-base64"])
def test_unreadable_secret_files_are_config_errors_with_a_fix(tmp_path: Path,
                                                              content: bytes) -> None:
    f = tmp_path / "s.yaml"
    f.write_bytes(content)
    with pytest.raises(ConfigError) as e:
        load_secret_certs(f)
    assert e.value.file == str(f) and e.value.fix


def test_emitted_objects_load_as_policy(chain: list[CertInfo]) -> None:
    names = TrustNames("reg.example:8443")
    text = emit_text("configmap", chain[1], names) + "---\n" + \
        emit_text("imageconfig", chain[1], names)
    objects = ObjectSet()
    objects.add_text(text)
    ic = objects.image_configs[0]
    assert ic.ca_ref == (names.cm, "ca.crt")
    assert ic.match_images[0].prefix == "reg.example:8443/"
    assert "BEGIN CERTIFICATE" in objects.config_maps[names.cm].data["ca.crt"]
    assert "registryCaBundleConfig" in emit_text("helm-values", chain[1], names)
    assert 'server = "https://reg.example:8443"' in emit_text("hosts-toml", chain[1], names)
    with pytest.raises(UsageError):
        emit_text("nope", chain[1], names)


def test_certs_d_refuses_a_file(tmp_path: Path, chain: list[CertInfo]) -> None:
    f = tmp_path / "file"
    f.write_text("")
    with pytest.raises(UsageError):
        write_certs_d(f, chain[1], "reg.example")
    (path,) = write_certs_d(tmp_path / "d", chain[1], "reg.example:5000")
    assert path == tmp_path / "d" / "reg.example:5000" / "ca.crt"


@pytest.mark.parametrize(("text", "want"), [
    ("reg.example", ("reg.example", 443)), ("reg.example:8443", ("reg.example", 8443)),
    ("[::1]:5000", ("::1", 5000)), ("127.0.0.1:5000/some/repo", ("127.0.0.1", 5000)),
])
def test_split_host_port(text: str, want: tuple[str, int]) -> None:
    assert split_host_port(text) == want


@pytest.mark.parametrize("text", ["https://reg.example", "reg.example:0", "reg.example:x", ""])
def test_split_host_port_rejects(text: str) -> None:
    with pytest.raises(UsageError):
        split_host_port(text)


@pytest.mark.parametrize("registry", ["..", ".", "a/../..", "/etc", "..:443", ""])
def test_trust_never_writes_outside_the_target_directory(tmp_path: Path,
                                                         chain: list[CertInfo],
                                                         registry: str) -> None:
    from crossfetch.trust import TrustNames, write_certs_d, write_hosts_dir

    out = tmp_path / "a" / "certs.d"
    out.mkdir(parents=True)
    with pytest.raises(UsageError):
        write_certs_d(out, chain[-1], registry)
    with pytest.raises(UsageError):
        write_hosts_dir(out, chain[-1], TrustNames(registry, "", "crossplane-system", "ca.crt"))
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []
    good = write_certs_d(out, chain[-1], "reg.example:8443")
    assert good == [out / "reg.example:8443" / "ca.crt"]


def test_one_anchor_rule_for_the_network_and_for_secrets(tmp_path: Path, ca: trustme.CA,
                                                          chain: list[CertInfo]) -> None:
    """A leaf issued by another CA (CA:FALSE) anchors nothing, wherever it comes from."""
    from crossfetch.errors import CrossfetchError
    from crossfetch.trust import require_anchor

    secret = tmp_path / "leaf.yaml"
    leaf_pem = ca.issue_cert("reg.example").cert_chain_pems[0].bytes().decode()
    body = "".join("    " + line + "\n" for line in leaf_pem.splitlines())
    secret.write_text("apiVersion: v1\nkind: Secret\nmetadata: {name: s}\nstringData:\n"
                      f"  tls.crt: |\n{body}")
    certs, _ = load_secret_certs(secret)
    assert not certs[0].is_ca and not certs[0].self_signed
    causes = []
    for from_secret, certs_ in ((True, certs), (False, chain[:1])):
        with pytest.raises(CrossfetchError) as e:
            require_anchor(certs_, registry="reg.example:8443", host="reg.example",
                           origin="Secret leaf.yaml key tls.crt", from_secret=from_secret)
        assert e.value.fix and e.value.exit_code == 1
        causes.append(e.value.cause)
    assert causes == ["no-trust-anchor", "no-trust-anchor"]
    assert require_anchor(chain, registry="r", host="r", origin="o", from_secret=True) is chain[1]


def test_trust_decisions_live_in_the_library(chain: list[CertInfo]) -> None:
    """Pinning, confirming and refusing are the library's rules, not the CLI's."""
    from crossfetch.errors import PolicyRefused
    from crossfetch.trust import FingerprintRequired, decide_trust

    kw = {"registry": "reg.example:8443", "host": "reg.example", "origin": "the handshake"}
    root = chain[1]
    # A matching pin: trusted without asking.
    assert decide_trust(chain, pin=root.fingerprint, from_secret=False, can_ask=False,
                        **kw) == (root, False)
    # A pin of another certificate (here the leaf): refused, naming which one it is.
    with pytest.raises(PolicyRefused, match=r"certificate \[0\], not the anchor") as e:
        decide_trust(chain, pin=chain[0].fingerprint, from_secret=False, can_ask=True, **kw)
    assert e.value.cause == "fingerprint-mismatch"
    # No pin: a person must say yes when one can; otherwise refused with the pin to use.
    assert decide_trust(chain, pin=None, from_secret=False, can_ask=True, **kw) == (root, True)
    with pytest.raises(FingerprintRequired) as req:
        decide_trust(chain, pin=None, from_secret=False, can_ask=False, **kw)
    assert req.value.exit_code == 2 and req.value.anchor is root
    assert root.fingerprint in (req.value.fix or "")
    # A Secret the user exported is taken as given.
    assert decide_trust(chain, pin=None, from_secret=True, can_ask=False, **kw) == (root, False)
