"""A throw-away PKI for the integration tests: trusted, untrusted, broken and client certificates.

Everything is written as PEM files under one directory so that both Python clients and the
Go registry (which only takes file paths) can use them.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path

import trustme
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

# 127.0.0.2 lets a BlobMirror on a second loopback address present the same trusted cert.
SERVER_NAMES = ("127.0.0.1", "::1", "localhost", "*.localhost", "registry.test", "127.0.0.2")


@dataclass(frozen=True)
class CertPair:
    """A certificate and its private key, both PEM files."""

    cert: Path
    key: Path


@dataclass(frozen=True)
class PKI:
    """Every certificate the integration tests need, made by :func:`make_pki`."""

    ca_cert: Path
    server: CertPair
    other_ca_cert: Path
    untrusted_server: CertPair
    self_signed: CertPair
    expired_server: CertPair
    wrong_host_server: CertPair
    client_ca_cert: Path
    client: CertPair


def write_leaf(leaf: trustme.LeafCert, directory: Path, name: str) -> CertPair:
    """``name``.crt (the leaf alone) and ``name``.key in ``directory``."""
    cert = directory / f"{name}.crt"
    key = directory / f"{name}.key"
    # Only the leaf, not the chain: the test CAs are roots, so the leaf alone verifies.
    cert.write_bytes(leaf.cert_chain_pems[0].bytes())
    key.write_bytes(leaf.private_key_pem.bytes())
    key.chmod(0o600)
    return CertPair(cert=cert, key=key)


def _write_ca(ca: trustme.CA, directory: Path, name: str) -> Path:
    path = directory / f"{name}.crt"
    path.write_bytes(ca.cert_pem.bytes())
    return path


def self_signed(directory: Path, name: str, *, host: str | None = None) -> CertPair:
    """A leaf certificate that signs itself (no CA), as a quick `openssl req -x509` would: for
    ``host`` (its CN and only SAN), or by default for 127.0.0.1 and localhost (CN
    self-signed.localhost), as the test bed serves it."""
    key = ec.generate_private_key(ec.SECP256R1())
    common_name = host or "self-signed.localhost"
    sans: list[x509.GeneralName] = ([x509.DNSName(host)] if host else
                                    [x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                                     x509.DNSName("localhost")])
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(key, hashes.SHA256())
    )
    pair = CertPair(cert=directory / f"{name}.crt", key=directory / f"{name}.key")
    pair.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    pair.key.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    pair.key.chmod(0o600)
    return pair


def make_pki(directory: Path) -> PKI:
    """Create all test certificates as PEM files in ``directory`` (created if missing)."""
    directory.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.UTC)

    ca = trustme.CA(organization_name="crossfetch test CA")
    other_ca = trustme.CA(organization_name="crossfetch untrusted CA")
    client_ca = trustme.CA(organization_name="crossfetch client CA")

    server = ca.issue_cert(*SERVER_NAMES, common_name="127.0.0.1")
    untrusted = other_ca.issue_cert(*SERVER_NAMES, common_name="127.0.0.1")
    expired = ca.issue_cert(
        *SERVER_NAMES,
        common_name="127.0.0.1",
        not_before=now - dt.timedelta(days=30),
        not_after=now - dt.timedelta(days=1),
    )
    wrong_host = ca.issue_cert("wrong.example", common_name="wrong.example")
    # trustme leaves carry both serverAuth and clientAuth key usages, so this works for mTLS.
    client = client_ca.issue_cert("crossfetch-test-client", common_name="crossfetch-test-client")

    return PKI(
        ca_cert=_write_ca(ca, directory, "ca"),
        server=write_leaf(server, directory, "server"),
        other_ca_cert=_write_ca(other_ca, directory, "other-ca"),
        untrusted_server=write_leaf(untrusted, directory, "untrusted-server"),
        self_signed=self_signed(directory, "self-signed"),
        expired_server=write_leaf(expired, directory, "expired-server"),
        wrong_host_server=write_leaf(wrong_host, directory, "wrong-host-server"),
        client_ca_cert=_write_ca(client_ca, directory, "client-ca"),
        client=write_leaf(client, directory, "client"),
    )
