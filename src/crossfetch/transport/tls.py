"""TLS contexts per endpoint, and the probes that tell plain HTTP from TLS on the wire."""

from __future__ import annotations

import contextlib
import functools
import socket
import ssl

from ..errors import ConfigError
from ..policy.model import TLSConfig, TLSMode


@functools.lru_cache(maxsize=64)
def ssl_context(tls: TLSConfig) -> ssl.SSLContext:
    """A client context for ``tls``: system roots plus extra CAs, TLS >= 1.2, optional client
    certificate. ``Insecure`` turns verification off; nothing else ever does."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # verifies certificates and host names
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if tls.mode is not TLSMode.INSECURE:
        _load_system_roots(ctx)
    for path in tls.ca_files:
        try:
            ctx.load_verify_locations(cafile=str(path))
        except (OSError, ssl.SSLError) as e:
            raise ConfigError(f"cannot load CA file {path}: {e}",
                              fix="give a readable PEM file of CA certificates") from None
    for pem in tls.ca_pem:
        try:
            ctx.load_verify_locations(cadata=pem)
        except ssl.SSLError as e:
            raise ConfigError(f"cannot load CA certificate from {tls.source}: {e}",
                              fix="put a valid PEM CA certificate in the ConfigMap") from None
    if tls.client is not None:
        try:
            ctx.load_cert_chain(str(tls.client.cert), str(tls.client.key))
        except (OSError, ssl.SSLError) as e:
            raise ConfigError(
                f"cannot load client certificate {tls.client.cert} with key {tls.client.key}: "
                f"{e}", fix="give a PEM certificate and its matching unencrypted key") from None
    if tls.mode is TLSMode.INSECURE:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


def _load_system_roots(ctx: ssl.SSLContext) -> None:
    """The system's trust anchors, as ``ssl.create_default_context`` would load them, but from
    the hashed certificate directory when there is one: OpenSSL then reads only the issuers a
    handshake needs, instead of parsing the whole bundle file up front (~20 ms).

    ``SSL_CERT_FILE`` / ``SSL_CERT_DIR`` are honoured as OpenSSL honours them; a
    ``SSL_CERT_FILE`` that is just the system bundle (the same certificates as the hashed
    directory) is read through the directory.
    """
    import os

    paths = ssl.get_default_verify_paths()
    cafile = os.environ.get(paths.openssl_cafile_env)
    capath = os.environ.get(paths.openssl_capath_env) or paths.capath
    system_files = {os.path.realpath(f) for f in (paths.cafile, paths.openssl_cafile) if f}
    custom_file = bool(cafile) and os.path.realpath(cafile or "") not in system_files
    if not custom_file and capath and _is_hashed_dir(capath):
        ctx.load_verify_locations(capath=capath)
        return
    ctx.load_default_certs(ssl.Purpose.SERVER_AUTH)
    if ctx.cert_store_stats().get("x509_ca", 0) == 0 and not (capath and _is_hashed_dir(capath)):
        # No system store at all (minimal images): certifi's bundle.
        import certifi

        ctx.load_verify_locations(cafile=certifi.where())


@functools.lru_cache(maxsize=4)
def _is_hashed_dir(path: str) -> bool:
    """A directory of ``<subject hash>.N`` links, as ``c_rehash``/``update-ca-certificates``
    make."""
    import os
    import re

    try:
        names = os.listdir(path)
    except OSError:
        return False
    return any(re.fullmatch(r"[0-9a-f]{8}\.\d+", n) for n in names)


@functools.lru_cache(maxsize=1)
def _probe_context() -> ssl.SSLContext:
    """The client context the probes say hello with. It loads no CA: the probe never gets past
    the server's first bytes, and loading the system roots costs ~40 ms per call."""
    return ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)


def _client_hello() -> bytes:
    """The bytes of a real TLS ClientHello (fresh random each time), made by the ssl module."""
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = _probe_context().wrap_bio(incoming, outgoing, server_hostname="probe.invalid")
    with contextlib.suppress(ssl.SSLWantReadError):
        obj.do_handshake()
    return outgoing.read()


def probe_first_bytes(host: str, port: int, timeout: float) -> bytes:
    """Send a TLS ClientHello and return the first bytes the server answers (may be empty)."""
    with socket.create_connection((host, port), timeout=timeout) as s:
        # The CRLFs after the ClientHello make a line-based HTTP server answer at once; a TLS
        # server answers the ClientHello record before it reads them.
        s.sendall(_client_hello() + b"\r\n\r\n")
        s.settimeout(timeout)
        data = b""
        try:
            while len(data) < 5:
                chunk = s.recv(5 - len(data))
                if not chunk:
                    break
                data += chunk
        except (TimeoutError, OSError):
            pass
        return data


def is_http_answer(first: bytes) -> bool:
    """Whether the first bytes answering a ClientHello are plain HTTP."""
    return first.startswith(b"HTTP/")


def is_tls_answer(first: bytes) -> bool:
    """Whether the first bytes answering a ClientHello are a TLS record (handshake or alert)."""
    return len(first) >= 3 and first[0] in (0x15, 0x16) and first[1] == 0x03


def speaks_plain_http(host: str, port: int, timeout: float = 3.0) -> bool:
    """True when the server answers a TLS handshake with plain HTTP (first bytes ``HTTP/``).

    This is containerd's rule for a safe fallback: only a server that demonstrably speaks
    HTTP is spoken to in HTTP, and a certificate problem is never a reason.
    """
    try:
        return is_http_answer(probe_first_bytes(host, port, timeout))
    except OSError:
        return False


def speaks_tls(host: str, port: int, timeout: float = 3.0) -> bool:
    """True when the server answers a ClientHello with a TLS record (handshake or alert)."""
    try:
        return is_tls_answer(probe_first_bytes(host, port, timeout))
    except OSError:
        return False


def is_cert_error(exc: BaseException) -> bool:
    """Does ``exc`` (or its cause chain) come from certificate verification?"""
    seen: set[int] = set()
    e: BaseException | None = exc
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, ssl.SSLCertVerificationError):
            return True
        if "CERTIFICATE_VERIFY_FAILED" in str(e) or "certificate verify failed" in str(e):
            return True
        e = e.__cause__ or e.__context__
    return False


def is_tls_error(exc: BaseException) -> bool:
    seen: set[int] = set()
    e: BaseException | None = exc
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, ssl.SSLError):
            return True
        if "SSL" in type(e).__name__ or "[SSL" in str(e):
            return True
        e = e.__cause__ or e.__context__
    return False
