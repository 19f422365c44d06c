"""Read a registry's certificate chain, choose a trust anchor, and write trust configuration.

``crossfetch trust`` and ``doctor``'s ``untrusted-certificate`` detail share this module. The
chain is read in a handshake *without* verification (that is the point: the server is not
trusted yet), so nothing read here is believed until the user pins its SHA-256 fingerprint or
confirms it interactively.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import re
import socket
import ssl
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

from .errors import (
    ConfigError,
    CrossfetchError,
    PolicyRefused,
    TLSError,
    TransportError,
    UsageError,
)
from .fixes import configmap, helm, hoststoml
from .fixes.fix import CROSSFETCH_ONLY
from .fixes.imageconfig import TLS, imageconfig_yaml
from .fixes.names import CA_KEY, CROSSPLANE_NAMESPACE, containerd_hosts_dir, object_name
from .reference import is_ip

DEFAULT_TIMEOUT = 5.0
EMIT_KINDS = ("pem", "configmap", "helm-values", "imageconfig", "hosts-toml", "certs-d")
_FP_RE = re.compile(r"^([0-9a-f]{64})$")
_PEM_RE = re.compile(rb"-----BEGIN CERTIFICATE-----\s.+?-----END CERTIFICATE-----", re.S)


class CertInfo(NamedTuple):
    """What a user needs to decide whether to trust one certificate."""

    der: bytes
    subject: str
    issuer: str
    serial: str
    not_before: dt.datetime
    not_after: dt.datetime
    sans: tuple[str, ...]
    fingerprint: str
    """``sha256:<64 lowercase hex>`` of the DER encoding."""
    is_ca: bool
    self_signed: bool

    @classmethod
    def from_der(cls, der: bytes) -> CertInfo:
        # cryptography is imported only where a certificate is read (about 40 ms of start-up):
        # doctor imports this module on every run, and a healthy one reads no certificate.
        from cryptography import x509
        from cryptography.exceptions import InvalidSignature

        cert = x509.load_der_x509_certificate(der)
        sans: list[str] = []
        try:
            ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
            sans += [f"DNS:{n}" for n in ext.get_values_for_type(x509.DNSName)]
            sans += [f"IP:{a}" for a in ext.get_values_for_type(x509.IPAddress)]
        except x509.ExtensionNotFound:
            pass
        try:
            is_ca = cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
        except x509.ExtensionNotFound:
            is_ca = False
        self_signed = cert.subject == cert.issuer
        if self_signed:
            try:
                cert.verify_directly_issued_by(cert)
            except (ValueError, TypeError, InvalidSignature):
                # Same name, other key (or an unsupported algorithm): not provably self-signed.
                self_signed = False
        return cls(der=der, subject=cert.subject.rfc4514_string() or "(empty)",
                   issuer=cert.issuer.rfc4514_string() or "(empty)",
                   serial=format(cert.serial_number, "x"),
                   not_before=cert.not_valid_before_utc, not_after=cert.not_valid_after_utc,
                   sans=tuple(sans), fingerprint=fingerprint(der), is_ca=is_ca,
                   self_signed=self_signed)

    @property
    def pem(self) -> str:
        from cryptography import x509
        from cryptography.hazmat.primitives import serialization

        cert = x509.load_der_x509_certificate(self.der)
        return cert.public_bytes(serialization.Encoding.PEM).decode()

    @property
    def expired(self) -> bool:
        return self.not_after < dt.datetime.now(dt.UTC)

    def to_dict(self) -> dict[str, Any]:
        return {"subject": self.subject, "issuer": self.issuer, "serial": self.serial,
                "notBefore": self.not_before.isoformat(), "notAfter": self.not_after.isoformat(),
                "sans": list(self.sans), "sha256": self.fingerprint, "isCA": self.is_ca,
                "selfSigned": self.self_signed, "expired": self.expired}

    def describe(self, indent: str = "  ") -> str:
        """Multi-line human summary."""
        lines = [f"subject:  {self.subject}", f"issuer:   {self.issuer}",
                 f"valid:    {self.not_before:%Y-%m-%d %H:%M} to {self.not_after:%Y-%m-%d %H:%M}"
                 f" UTC{' (EXPIRED)' if self.expired else ''}",
                 f"SANs:     {', '.join(self.sans) or '(none)'}",
                 f"sha256:   {self.fingerprint.removeprefix('sha256:')}"]
        kind = "self-signed CA" if self.self_signed and self.is_ca else \
            "self-signed" if self.self_signed else "CA" if self.is_ca else "leaf"
        lines.append(f"kind:     {kind}")
        return "\n".join(indent + line for line in lines)


def fingerprint(der: bytes) -> str:
    return "sha256:" + hashlib.sha256(der).hexdigest()


def normalize_fingerprint(text: str) -> str:
    """Accept ``sha256:HEX``, ``SHA256=AB:CD:…`` (openssl) or bare hex; return
    ``sha256:<hex>``."""
    t = text.strip().lower().replace(" ", "")
    for prefix in ("sha256fingerprint=", "sha256:", "sha256="):
        t = t.removeprefix(prefix)
    m = _FP_RE.match(t.replace(":", ""))
    if not m:
        raise UsageError(f"{text!r} is not a SHA-256 fingerprint",
                         cause="invalid-fingerprint",
                         fix="pass --fingerprint sha256:<64 hex digits>, as crossfetch trust "
                         "or `openssl x509 -noout -fingerprint -sha256` prints it")
    return f"sha256:{m.group(1)}"


def parse_pem_bundle(data: bytes | str, *, source: str = "<input>") -> list[CertInfo]:
    """Every certificate in a PEM bundle, in order; raises when there is none."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    raw = data.encode() if isinstance(data, str) else data
    out: list[CertInfo] = []
    for block in _PEM_RE.findall(raw):
        try:
            cert = x509.load_pem_x509_certificate(block)
        except ValueError as e:
            raise ConfigError(f"{source}: a PEM certificate does not parse: {e}",
                              fix="give PEM certificates (-----BEGIN CERTIFICATE-----)") from None
        out.append(CertInfo.from_der(cert.public_bytes(serialization.Encoding.DER)))
    if not out:
        raise ConfigError(f"{source} holds no PEM certificate",
                          fix="give a file with -----BEGIN CERTIFICATE----- blocks")
    return out


# --- reading a chain from a server ----------------------------------------------------------


def split_host_port(target: str, default_port: int = 443) -> tuple[str, int]:
    """``host``, ``host:port``, ``[v6]:port`` → (host, port)."""
    t = target.strip()
    if "://" in t:
        raise UsageError(f"{target!r}: give HOST[:PORT] without a scheme",
                         fix="e.g. crossfetch trust registry.example:8443")
    t = t.split("/", 1)[0]
    if t.startswith("["):
        host, _, rest = t[1:].partition("]")
        port_s = rest.removeprefix(":")
    elif t.count(":") == 1:
        host, port_s = t.split(":")
    else:
        host, port_s = t, ""
    if not host or (port_s and (not port_s.isdigit() or not 0 < int(port_s) < 65536)):
        raise UsageError(f"{target!r} is not HOST[:PORT]", fix="e.g. registry.example:8443")
    return host, int(port_s) if port_s else default_port


def _unverified_chain_der(sock: ssl.SSLSocket) -> list[bytes]:
    """The certificates the peer sent, leaf first, without verifying them.

    Python 3.13 has ``SSLSocket.get_unverified_chain``; 3.10-3.12 have it only on the private
    ``_sslobj``. Where neither exists, the leaf alone.
    """
    getter = getattr(sock, "get_unverified_chain", None) or getattr(
        getattr(sock, "_sslobj", None), "get_unverified_chain", None)
    if getter is not None:
        try:
            chain = getter() or []
            out = [c if isinstance(c, bytes) else c.public_bytes(ssl._ssl.ENCODING_DER)  # type: ignore[attr-defined]
                   for c in chain]
            if out:
                return out
        except (AttributeError, ValueError, ssl.SSLError):
            pass
    leaf = sock.getpeercert(binary_form=True)
    return [leaf] if leaf else []


def fetch_chain(host: str, port: int, *, timeout: float = DEFAULT_TIMEOUT,
                server_name: str | None = None) -> list[CertInfo]:
    """Connect, handshake without verification, and return the presented chain (leaf first).

    Raises :class:`~crossfetch.errors.TransportError` (connect failures, timeouts) or
    :class:`~crossfetch.errors.TLSError` (no TLS on that port).
    """
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE  # reading what is presented, to be pinned by the user
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    sni = server_name or (None if is_ip(host) else host)
    netloc = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    try:
        with socket.create_connection((host, port), timeout=timeout) as raw:
            raw.settimeout(timeout)
            with ctx.wrap_socket(raw, server_hostname=sni) as tls:
                ders = _unverified_chain_der(tls)
    except ssl.SSLError as e:
        from .transport.tls import speaks_plain_http

        if speaks_plain_http(host, port, timeout):
            from .errors import PlainHTTPError

            # A fact, not a TLS failure: the fix (allow plain HTTP) is written at the edge.
            raise PlainHTTPError(
                f"{netloc} speaks plain HTTP, not TLS: it has no certificate to trust",
                url=f"https://{netloc}/", host=host, mode="Strict") from None
        raise TLSError(f"TLS handshake with {netloc} failed: {e.reason or e}", host=host,
                       cause="tls-error",
                       fix="check that the port speaks TLS 1.2 or newer") from None
    except TimeoutError:
        raise TransportError(f"{netloc} did not complete a TLS handshake within {timeout:g}s",
                             host=host, cause="timeout",
                             fix="check the port; raise --timeout if the link is slow") from None
    except OSError as e:
        cause = "connection-refused" if isinstance(e, ConnectionRefusedError) else \
            "dns-failure" if isinstance(e, socket.gaierror) else "connection-failed"
        raise TransportError(f"cannot connect to {netloc}: {e.strerror or e}", host=host,
                             cause=cause, fix="check the host name and port") from None
    if not ders:
        raise TLSError(f"{netloc} presented no certificate", host=host, cause="tls-error")
    return [CertInfo.from_der(d) for d in ders]


def verifies_with(host: str, port: int, anchor: CertInfo, *, timeout: float = DEFAULT_TIMEOUT,
                  server_name: str | None = None) -> str | None:
    """Handshake with only ``anchor`` trusted (plus system roots, as a Strict pull has); return
    ``None`` on success or the verification error."""
    ctx = ssl.create_default_context()
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_verify_locations(cadata=anchor.pem)
    try:
        with socket.create_connection((host, port), timeout=timeout) as raw, \
                ctx.wrap_socket(raw, server_hostname=server_name or host):
            return None
    except ssl.SSLCertVerificationError as e:
        return str(e.verify_message or e)
    except (OSError, ssl.SSLError) as e:
        return str(e)


def choose_anchor(chain: Sequence[CertInfo]) -> CertInfo | None:
    """The trust anchor to save: the root (a self-signed CA) if the chain holds one, otherwise
    a self-signed leaf; ``None`` when every certificate was issued by a CA that is not there.

    This is the one rule for certificates read from a server and from a Secret: only a
    certificate that signed itself can anchor trust on its own. A leaf issued by another CA
    (CA:FALSE) or an intermediate is refused, because a verifier needs the root above it
    (Python's ssl, like OpenSSL without partial chains, reports "unable to get local issuer
    certificate").
    """
    for cert in reversed(chain):
        if cert.self_signed:
            return cert
    return None


def require_anchor(chain: Sequence[CertInfo], *, registry: str, host: str,
                   origin: str, from_secret: bool) -> CertInfo:
    """:func:`choose_anchor`, or a ``no-trust-anchor`` error saying where to get the root."""
    anchor = choose_anchor(chain)
    if anchor is not None:
        return anchor
    first = chain[0]
    what = ("a CA certificate that was not signed by itself (an intermediate)" if first.is_ca
            else "a leaf certificate (CA:FALSE)")
    if from_secret:
        raise CrossfetchError(
            f"{origin} holds no self-signed CA: its first certificate, {first.subject}, is "
            f"{what} issued by {first.issuer}, so it cannot be the trust anchor",
            cause="no-trust-anchor", host=host,
            fix="export the Secret that holds the issuing root CA (for idpbuilder: kubectl "
            "get secret -n default idpbuilder-cert -o yaml), or a bundle that includes the "
            f"root {first.issuer}")
    raise CrossfetchError(
        f"{registry} sent no CA or self-signed certificate (its certificate is issued by "
        f"{first.issuer}), so there is no anchor to save",
        cause="no-trust-anchor", host=host,
        fix="get the issuing CA from where the registry's certificate was made, e.g. "
        "kubectl get secret -n default idpbuilder-cert -o yaml > cert.yaml && crossfetch "
        f"trust {registry} --from-secret cert.yaml")


class FingerprintRequired(PolicyRefused):
    """Nothing vouches for the anchor: no ``--fingerprint`` pin and no person to confirm it.
    ``anchor`` is the certificate that would have been saved."""

    exit_code = 2
    default_cause = "fingerprint-required"

    def __init__(self, message: str, *, anchor: CertInfo, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.anchor = anchor


def decide_trust(chain: Sequence[CertInfo], *, registry: str, host: str, origin: str,
                 pin: str | None, from_secret: bool, can_ask: bool) -> tuple[CertInfo, bool]:
    """The anchor to save, and whether a person must confirm it first.

    The rules, the same for the CLI and library users: a ``pin`` (a normalized fingerprint)
    must be the anchor's, or nothing is trusted (``fingerprint-mismatch``: a different
    certificate can mean the connection is intercepted); a Secret the user exported is taken
    as given; a certificate read over the network without a pin needs a person's yes
    (``can_ask``), otherwise :class:`FingerprintRequired`."""
    anchor = require_anchor(chain, registry=registry, host=host, origin=origin,
                            from_secret=from_secret)
    if pin is not None:
        if pin != anchor.fingerprint:
            other = next((i for i, c in enumerate(chain) if c.fingerprint == pin), None)
            hint = f" (it is certificate [{other}], not the anchor)" if other is not None else ""
            raise PolicyRefused(
                f"the trust anchor's fingerprint is {anchor.fingerprint}, not the pinned "
                f"{pin}{hint}: refusing to trust it", cause="fingerprint-mismatch", host=host,
                fix="check with the registry's owner which certificate is right; a different "
                "certificate can mean the connection is intercepted")
        return anchor, False
    if from_secret:
        return anchor, False
    if can_ask:
        return anchor, True
    raise FingerprintRequired(
        f"refusing to save {anchor.subject} for {registry} unpinned, without a terminal to "
        "confirm it", anchor=anchor, host=registry,
        fix=f"check the fingerprint, then pin it: --fingerprint {anchor.fingerprint}")


# --- Secrets ---------------------------------------------------------------------------------


def load_secret_certs(path: str | Path) -> tuple[list[CertInfo], str]:
    """CA certificates from a Secret manifest (``ca.crt`` preferred, else ``tls.crt``), as
    ``kubectl get secret -o yaml`` writes it (idpbuilder's ``idpbuilder-cert``). Returns the
    certificates and the key they came from."""
    import yaml

    p = Path(path)
    export = "kubectl get secret -n NS NAME -o yaml > secret.yaml"
    try:
        docs = [d for d in yaml.safe_load_all(p.read_text(encoding="utf-8")) if d]
    except OSError as e:
        raise ConfigError(f"cannot read {p}: {e.strerror}", file=str(p), fix=export) from None
    except (yaml.YAMLError, ValueError, TypeError, AttributeError) as e:
        # Not UTF-8 (UnicodeDecodeError), or a value YAML cannot build (the date 2024-13-01).
        raise ConfigError(f"not valid YAML: {e}", file=str(p), fix=export) from None
    for doc in docs:
        if isinstance(doc, dict) and doc.get("kind") == "List":
            items = doc.get("items")
            if isinstance(items, list):
                docs.extend(i for i in items if isinstance(i, dict))
    secrets = [d for d in docs if isinstance(d, dict) and d.get("kind") == "Secret"]
    if not secrets:
        raise ConfigError("no Secret object in the file", file=str(p),
                          fix="export it with kubectl get secret -n NS NAME -o yaml")
    for secret in secrets:
        sections = [secret.get(s) or {} for s in ("data", "stringData")]
        if not all(isinstance(s, dict) for s in sections):
            raise ConfigError("the Secret's data and stringData must be mappings",
                              file=str(p), fix=export)
        data, string_data = ({str(k): v for k, v in s.items()} for s in sections)
        for key in (CA_KEY, "tls.crt"):
            if key in string_data:
                return parse_pem_bundle(str(string_data[key]), source=f"{p} {key}"), key
            if key in data:
                try:
                    raw = base64.b64decode(str(data[key]), validate=True)
                except ValueError:
                    raise ConfigError(f"Secret key {key} is not valid base64", file=str(p),
                                      fix=f"data values are base64; put PEM text under "
                                      f"stringData.{key}, or {export}") from None
                return parse_pem_bundle(raw, source=f"{p} {key}"), key
    raise ConfigError("the Secret has neither ca.crt nor tls.crt", file=str(p),
                      fix="point --from-secret at the Secret holding the registry's CA "
                      "(idpbuilder: idpbuilder-cert in namespace default)")


# --- emitters --------------------------------------------------------------------------------


class TrustNames(NamedTuple):
    """Names used in emitted configuration."""

    registry: str
    """``host[:port]`` as written in package references."""
    configmap: str = ""
    namespace: str = CROSSPLANE_NAMESPACE
    key: str = CA_KEY

    @property
    def cm(self) -> str:
        return self.configmap or object_name(self.registry, "ca")


def emit_text(kind: str, anchor: CertInfo, names: TrustNames) -> str:
    """The text of one emitter (every kind but ``certs-d``, which is a directory)."""
    reg = names.registry
    ca_dir = containerd_hosts_dir(reg)
    if kind == "pem":
        return anchor.pem
    if kind == "configmap":
        return configmap.ca_configmap_yaml(names.cm, anchor.pem, key=names.key,
                                           namespace=names.namespace)
    if kind == "helm-values":
        upgrade = helm.ca_upgrade_command(names.cm, key=names.key, namespace=names.namespace)
        return (f"# Crossplane Helm values: the package manager trusts this CA for every "
                f"registry.\n# {upgrade}"
                f"\n# (the ConfigMap {names.cm} must exist: crossfetch trust {reg} --emit "
                f"configmap)\n" + helm.ca_values(names.cm, key=names.key))
    if kind == "imageconfig":
        return (f"# {CROSSFETCH_ONLY}.\n# For Crossplane use --emit configmap --emit "
                f"helm-values (registryCaBundleConfig).\n"
                + imageconfig_yaml(f"{reg}/", name=object_name(reg, "tls"),
                                   tls=TLS(mode="Strict", ca_configmap=(names.cm, names.key))))
    if kind == "hosts-toml":
        return (f"# {ca_dir}/hosts.toml on every node; the CA goes next to it as {CA_KEY}.\n"
                f"# kind: docker exec NODE mkdir -p {ca_dir} && docker cp {CA_KEY} "
                f"NODE:{ca_dir}/{CA_KEY}\n#       && docker cp hosts.toml NODE:{ca_dir}/hosts.toml"
                f"\n# {hoststoml.CONFIG_PATH_NOTE}.\n" + hoststoml.for_registry(reg, ca=True))
    raise UsageError(f"unknown --emit kind {kind!r}", fix=f"use one of {', '.join(EMIT_KINDS)}")


def write_certs_d(directory: str | Path, anchor: CertInfo, registry: str) -> list[Path]:
    """Docker/containers ``certs.d`` layout: ``DIR/<host[:port]>/ca.crt``."""
    d = Path(directory)
    if d.exists() and not d.is_dir():
        raise UsageError(f"--emit certs-d writes a directory, and {d} is a file",
                         fix="give -o a directory, e.g. -o /etc/docker/certs.d")
    target = hoststoml.host_dir(d, registry)
    target.mkdir(parents=True, exist_ok=True)
    path = target / CA_KEY
    path.write_text(anchor.pem, encoding="utf-8")
    return [path]


def write_hosts_dir(directory: str | Path, anchor: CertInfo, names: TrustNames) -> list[Path]:
    """containerd ``certs.d`` layout: ``DIR/<host[:port]>/hosts.toml`` plus ``ca.crt``, with
    the CA path pointing at where that directory lives on a node
    (``/etc/containerd/certs.d``)."""
    target = hoststoml.host_dir(Path(directory), names.registry)
    target.mkdir(parents=True, exist_ok=True)
    (target / CA_KEY).write_text(anchor.pem, encoding="utf-8")
    (target / "hosts.toml").write_text(emit_text("hosts-toml", anchor, names), encoding="utf-8")
    return [target / "hosts.toml", target / CA_KEY]
