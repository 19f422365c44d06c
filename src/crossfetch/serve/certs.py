"""The bridge's TLS material: a private CA and a server certificate for every ``--hostname``,
kept in ``--state-dir`` (``ca.crt``, ``ca.key``, ``server.crt``, ``server.key``; keys 0600).

The CA is made once and kept, so clients that trust ``ca.crt`` keep trusting the bridge when
the server certificate is reissued (new hostnames, or less than 30 days left).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import ssl
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from ..errors import ConfigError

CA_DAYS = 3650
SERVER_DAYS = 397  # the longest validity browsers and many clients accept
RENEW_BEFORE = dt.timedelta(days=30)
CA_CERT, CA_KEY, SERVER_CERT, SERVER_KEY = "ca.crt", "ca.key", "server.crt", "server.key"


def _write(path: Path, data: bytes, private: bool) -> None:
    tmp = path.parent / f".{path.name}.{os.urandom(6).hex()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600 if private else 0o644)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _san(names: list[str]) -> x509.SubjectAlternativeName:
    out: list[x509.GeneralName] = []
    for n in names:
        try:
            out.append(x509.IPAddress(ipaddress.ip_address(n.strip("[]"))))
        except ValueError:
            out.append(x509.DNSName(n))
    return x509.SubjectAlternativeName(out)


def _load_ca(state: Path) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None:
    try:
        cert = x509.load_pem_x509_certificate((state / CA_CERT).read_bytes())
        key = serialization.load_pem_private_key((state / CA_KEY).read_bytes(), None)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as e:
        raise ConfigError(f"cannot read the bridge CA in {state}: {e}",
                          fix=f"remove {state}/ca.crt and ca.key to make a new CA (clients "
                          "must then trust the new ca.crt)") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ConfigError(f"{state}/{CA_KEY} is not an EC key made by crossfetch")
    return cert, key


def _new_ca(state: Path) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "crossfetch bridge CA"),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, "crossfetch")])
    now = dt.datetime.now(dt.UTC)
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=CA_DAYS))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True,
                                         crl_sign=True, content_commitment=False,
                                         key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, encipher_only=False,
                                         decipher_only=False), critical=True)
            .add_extension(ski, critical=False)
            .sign(key, hashes.SHA256()))
    _write(state / CA_KEY, _key_pem(key), private=True)
    _write(state / CA_CERT, cert.public_bytes(serialization.Encoding.PEM), private=False)
    return cert, key


def _server_ok(state: Path, hostnames: list[str], ca: x509.Certificate) -> bool:
    try:
        cert = x509.load_pem_x509_certificate((state / SERVER_CERT).read_bytes())
        (state / SERVER_KEY).stat()
    except (OSError, ValueError):
        return False
    if cert.issuer != ca.subject:
        return False
    if cert.not_valid_after_utc - dt.datetime.now(dt.UTC) < RENEW_BEFORE:
        return False
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return False
    return set(san) == set(_san(hostnames))


def ensure_state(state: Path, hostnames: list[str]) -> tuple[Path, Path, Path]:
    """(ca.crt, server.crt, server.key) in ``state``, made or renewed as needed."""
    if not hostnames:
        raise ConfigError("the bridge needs at least one --hostname to make its certificate",
                          fix="pass --hostname for every name clients use, e.g. --hostname "
                          "crossfetch-bridge.crossplane-system.svc")
    try:
        state.mkdir(parents=True, exist_ok=True, mode=0o700)
        loaded = _load_ca(state)
        ca_cert, ca_key = loaded if loaded else _new_ca(state)
        if not _server_ok(state, hostnames, ca_cert):
            key = ec.generate_private_key(ec.SECP256R1())
            now = dt.datetime.now(dt.UTC)
            cert = (x509.CertificateBuilder()
                    .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME,
                                                                hostnames[0][:64])]))
                    .issuer_name(ca_cert.subject).public_key(key.public_key())
                    .serial_number(x509.random_serial_number())
                    .not_valid_before(now - dt.timedelta(minutes=5))
                    .not_valid_after(now + dt.timedelta(days=SERVER_DAYS))
                    .add_extension(_san(hostnames), critical=False)
                    .add_extension(x509.BasicConstraints(ca=False, path_length=None),
                                   critical=True)
                    .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
                                   critical=False)
                    .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                        ca_key.public_key()), critical=False)
                    .sign(ca_key, hashes.SHA256()))
            _write(state / SERVER_KEY, _key_pem(key), private=True)
            _write(state / SERVER_CERT, cert.public_bytes(serialization.Encoding.PEM),
                   private=False)
    except OSError as e:
        raise ConfigError(f"cannot write the bridge's TLS files in {state}: {e.strerror}",
                          fix="pass --state-dir to a writable directory") from None
    return state / CA_CERT, state / SERVER_CERT, state / SERVER_KEY


def server_context(cert: Path, key: Path) -> ssl.SSLContext:
    """TLS ≥ 1.2 server context for the given pair."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        ctx.load_cert_chain(str(cert), str(key))
    except (OSError, ssl.SSLError) as e:
        raise ConfigError(f"cannot load the TLS pair {cert} / {key}: {e}",
                          fix="pass a PEM certificate (chain) and its unencrypted PEM key") \
            from None
    return ctx
