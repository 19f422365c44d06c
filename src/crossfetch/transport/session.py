"""The session: the :class:`Transport` that owns one connection pool per endpoint and sends
every request of a crossfetch run: retries, safe redirects, scheme fallback, error translation.

The rules this module enforces (each has a test that fails without it):
- HTTPS is never downgraded to HTTP unless the endpoint's policy allows plain HTTP *and* the
  server answered a TLS handshake with plain HTTP. A certificate error is never a reason.
- Redirects are followed by hand: never https -> http, never to link-local or metadata
  addresses, and a redirect to another host carries no credentials at all.
- Connection errors, 5xx and 429 are retried with backoff, honouring ``Retry-After`` up to a
  cap (:class:`~crossfetch.transport.retry.Retry`); a request that may have reached the server
  is resent only when its method is idempotent.
- Every request has an overall deadline, every blob body a floor rate
  (:mod:`crossfetch.transport.deadline`): a server that trickles bytes cannot hold a pull.
"""

from __future__ import annotations

import ipaddress
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from typing import NamedTuple
from urllib.parse import urljoin, urlsplit

from .. import __version__
from ..errors import (
    RETRY_SENT,
    RETRY_UNSENT,
    FetchError,
    PlainHTTPError,
    PolicyRefused,
    TLSError,
    TLSExpectedError,
    TransportError,
)
from ..policy.model import TLSMode
from .connection import Auth, Body, Pool, Request, Response, WireError, send_with_auth
from .deadline import Floor
from .retry import Retry, retry_after_seconds
from .route import Route, RouteLike
from .tls import is_cert_error, is_tls_error, speaks_plain_http, speaks_tls, ssl_context
from .tokens import TokenCache

MAX_REDIRECTS = 5
USER_AGENT = f"crossfetch/{__version__}"
DEADLINE = 30.0
"""Default overall deadline of one request, in seconds (``--deadline``)."""


class Timeouts(NamedTuple):
    connect: float = 10.0
    read: float = 60.0


def _cert_cause(exc: BaseException) -> str:
    e: BaseException | None = exc
    while e is not None:
        if isinstance(e, ssl.SSLCertVerificationError):
            code = getattr(e, "verify_code", None)
            if code == 10:
                return "expired-certificate"
            if code == 62 or "Hostname mismatch" in str(e) or "IP address mismatch" in str(e):
                return "hostname-mismatch"
            return "untrusted-certificate"
        e = e.__cause__ or e.__context__
    return "untrusted-certificate"


def _connect_cause(exc: BaseException) -> str:
    import http.client
    import socket

    for e in (exc, *_chain(exc)):
        if isinstance(e, TimeoutError):
            return "timeout"
        if isinstance(e, socket.gaierror):
            return "dns-failure"
        if isinstance(e, ConnectionRefusedError):
            return "connection-refused"
        if isinstance(e, ConnectionResetError | BrokenPipeError | http.client.RemoteDisconnected):
            return "connection-reset"
    return "timeout" if "timed out" in str(exc) else "connection-failed"


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    e = exc.__cause__ or exc.__context__
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        yield e
        e = e.__cause__ or e.__context__


def unsafe_target(host: str) -> str | None:
    """Why ``host`` must not be a redirect or token-realm target, or ``None``."""
    h = host.strip("[]")
    try:
        ip = ipaddress.ip_address(h)
    except ValueError:
        if h.lower() in ("metadata.google.internal", "metadata"):
            return "a cloud metadata host"
        return None
    if ip.is_link_local or (ip.version == 4 and ip in ipaddress.ip_network("169.254.0.0/16")):
        return "a link-local (cloud metadata) address"
    if ip.version == 6 and ip in ipaddress.ip_network("fd00:ec2::/32"):
        return "a cloud metadata address"
    return None


def _invalid_redirect(src: str, target: str, why: str) -> FetchError:
    return FetchError(f"refusing redirect from {src} to {target!r}: not a valid URL ({why})",
                      url=src, cause="unsafe-redirect",
                      fix="the registry (or a proxy in front of it) sends a malformed Location "
                      "header: check its redirect settings")


class Transport:
    """Owns HTTP connections for every endpoint a session talks to."""

    def __init__(self, *, timeouts: Timeouts | None = None, retries: int | Retry = 3,
                 backoff: float | None = None, sleep: Callable[[float], None] = time.sleep,
                 deadline: float = DEADLINE, floor: Floor | None = None,
                 trace: Callable[[str], None] | None = None) -> None:
        """``deadline``: seconds one request may take in all (a blob: until its headers);
        ``floor``: the slowest a blob body may arrive (default 1 KiB/s over 30 s; rate 0
        turns it off); ``retries``: a count, or a :class:`Retry`; ``trace``: told of every
        request (method, URL, status, time; never a header value or a credential)."""
        self.trace = trace
        self.timeouts = timeouts or Timeouts()
        retry = retries if isinstance(retries, Retry) else Retry(total=retries)
        if backoff is not None:
            retry = retry._replace(backoff=backoff)
        self.retry = retry
        self.deadline = deadline
        self.floor = floor if floor is not None else Floor()
        self._sleep = sleep
        self._clients: dict[tuple[object, ...], Pool] = {}
        self._clients_lock = threading.Lock()  # resolve shares one Transport across threads
        self._fallback: set[str] = set()
        """Route URLs proven to speak plain HTTP and allowed to."""
        self.tokens = TokenCache()
        """Bearer tokens and challenges, shared by every auth flow of this transport."""

    # --- clients ---

    def effective_url(self, ep: RouteLike) -> str:
        """``scheme://host[:port]`` of the endpoint (no path), after a proven, allowed
        fallback to plain HTTP."""
        # The proof is the server's, the permission each endpoint's own: one transport serves
        # several decisions, and the same URL may be Strict under another one.
        http = ep.tls.allow_http_fallback and ep.url in self._fallback
        return f"{'http' if http else ep.scheme}://{ep.host}"

    def _client(self, ep: RouteLike, scheme: str) -> Pool:
        key: tuple[object, ...] = (scheme, ep.tls if scheme == "https" else None, ep.headers)
        with self._clients_lock:
            return self._clients.get(key) or self._new_client(key, ep, scheme)

    def _new_client(self, key: tuple[object, ...], ep: RouteLike, scheme: str) -> Pool:
        # A plain-HTTP pool gets no TLS context at all (and loads no CA bundle): an https
        # redirect target is sent through an https pool of its own.
        client = Pool(ssl_context=ssl_context(ep.tls) if scheme == "https" else None,
                      connect_timeout=self.timeouts.connect,
                      read_timeout=self.timeouts.read,
                      headers={"User-Agent": USER_AGENT, **dict(ep.headers)},
                      trace=self.trace)
        self._clients[key] = client
        return client

    def close(self) -> None:
        with self._clients_lock:
            clients, self._clients = list(self._clients.values()), {}
        for c in clients:
            c.close()

    def __enter__(self) -> Transport:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- requests ---

    def sleep(self, seconds: float) -> None:
        """Wait between tries (replaceable in tests)."""
        self._sleep(seconds)

    def request(self, ep: RouteLike, method: str, url: str, *,
                headers: dict[str, str] | None = None, auth: Auth | None = None,
                stream: bool = False, follow_redirects: bool = False,
                retries: int | None = None, content: bytes | Body | None = None,
                blob: bool = False) -> Response:
        """Send one request to ``ep`` (``url`` is absolute, built from :meth:`effective_url`).

        Redirects, when followed, obey the rules in this module's docstring. With
        ``stream=True`` the caller must close the response. ``blob=True``: the deadline ends
        at the headers and the body is held to the floor rate instead.
        """
        resp = self._send_retrying(ep, method, url, headers, auth, stream, retries,
                                   content=content, blob=blob)
        hops = 0
        while follow_redirects and resp.is_redirect:
            hops += 1
            location = resp.headers.get("location", "")
            resp.close()
            if hops > MAX_REDIRECTS:
                raise TransportError(f"more than {MAX_REDIRECTS} redirects from {url}", url=url,
                                     cause="too-many-redirects",
                                     fix="the registry (or its storage redirect) sends requests "
                                     "in a loop: check its redirect settings")
            try:
                target = urljoin(str(resp.request.url), location)
            except ValueError as e:  # e.g. an unclosed IPv6 bracket
                raise _invalid_redirect(str(resp.request.url), location, str(e)) from None
            self.check_redirect(str(resp.request.url), target)
            same_host = urlsplit(target).netloc == urlsplit(str(resp.request.url)).netloc
            # Credentials stay with the registry: another host gets a bare request (only a
            # Range, which is no credential, goes along).
            bare = {k: v for k, v in (headers or {}).items() if k.lower() == "range"}
            resp = self._send_retrying(ep, method, target, headers if same_host else bare,
                                       auth if same_host else None, stream, retries,
                                       foreign=not same_host, blob=blob)
        return resp

    @staticmethod
    def check_redirect(src: str, target: str) -> None:
        if not (target.isascii() and target.isprintable()) or " " in target:
            # http.client cannot send it (UnicodeEncodeError, InvalidURL): refuse it here
            raise _invalid_redirect(src, target, "non-ASCII, control or space characters")
        try:
            s, t = urlsplit(src), urlsplit(target)
            t.port  # noqa: B018 - raises for a port out of range or not a number
        except ValueError as e:
            raise _invalid_redirect(src, target, str(e)) from None
        if t.scheme not in ("http", "https"):
            raise PolicyRefused(f"refusing redirect from {src} to {target}: scheme {t.scheme!r}",
                                url=src, cause="unsafe-redirect")
        if s.scheme == "https" and t.scheme == "http":
            raise PolicyRefused(
                f"refusing redirect from {src} to {target}: an HTTPS request is never "
                "redirected to plain HTTP", url=src, cause="unsafe-redirect",
                fix="have the registry redirect to an https:// URL (check its storage "
                "redirect settings)")
        why = unsafe_target(t.hostname or "")
        if why:
            raise PolicyRefused(f"refusing redirect from {src} to {target}: {why}", url=src,
                                cause="unsafe-redirect")

    def _send_retrying(self, ep: RouteLike, method: str, url: str,
                       headers: dict[str, str] | None, auth: Auth | None, stream: bool,
                       retries: int | None, foreign: bool = False,
                       content: bytes | Body | None = None, blob: bool = False) -> Response:
        retry = self.retry if retries is None else self.retry.with_total(retries)
        resend = retry.may_resend(method)
        for attempt in range(1 + retry.total):
            last = attempt == retry.total
            try:
                resp = self._send_once(ep, method, url, headers, auth, stream, foreign, content,
                                       blob)
            except TransportError as e:
                sent = e.detail.get("phase") != "connect"
                if last or e.cause not in (RETRY_SENT if sent else RETRY_UNSENT) or (
                        sent and not resend):
                    raise
                self._sleep(retry.backoff_delay(attempt))
                continue
            if resp.status_code in retry.statuses and resend and not last:
                wait = retry_after_seconds(resp.headers.get("retry-after"))
                if wait is not None and wait > retry.retry_after_max:
                    return resp  # the caller's error says how long the server asked for
                resp.close()
                self._sleep(retry.backoff_delay(attempt) if wait is None else wait)
                continue
            return resp
        raise AssertionError("unreachable")

    def _send_once(self, ep: RouteLike, method: str, url: str, headers: dict[str, str] | None,
                   auth: Auth | None, stream: bool, foreign: bool,
                   content: bytes | Body | None = None, blob: bool = False) -> Response:
        scheme = urlsplit(url).scheme
        pool = self._client(ep, scheme) if not foreign else self._foreign_client(ep, scheme)
        req = Request(method, url, headers=headers, content=content)
        try:
            resp = send_with_auth(pool, req, auth, deadline=self.deadline,
                                  floor=self.floor if blob else None)
        except WireError as e:
            raise self.explain(ep, url, e) from None
        if scheme == "http" and resp.status_code == 400:
            try:
                body = resp.read_some()[:200]
            except WireError:
                body = b""
            if b"HTTPS server" in body:
                raise self._tls_expected(ep, url)
        if not stream:
            try:
                resp.read()
            except WireError as e:
                raise self.explain(ep, url, e) from None
            finally:
                resp.close()
        return resp

    def _foreign_client(self, ep: RouteLike, scheme: str) -> Pool:
        """For another host (blob storage): verified TLS with system trust plus the endpoint's
        extra CAs, but never the endpoint's client certificate, headers or ``Insecure`` (that
        was allowed for the registry, not for wherever it redirects)."""
        from ..policy.model import TLSConfig

        tls = TLSConfig(mode=TLSMode.STRICT, ca_files=ep.tls.ca_files, ca_pem=ep.tls.ca_pem,
                        source=ep.tls.source)
        return self._client(Route(url=ep.url, tls=tls), scheme)

    # --- error translation ---

    def explain(self, ep: RouteLike, url: str, e: WireError) -> TransportError:
        """The crossfetch error for a failure below HTTP on ``url`` (``detail.phase`` says
        whether anything was sent: ``connect`` means no)."""
        err = self._translate(ep, url, e)
        err.detail.setdefault("phase", e.phase)
        return err

    def _translate(self, ep: RouteLike, url: str, e: WireError) -> TransportError:
        parts = urlsplit(url)
        if e.phase in ("stalled", "truncated", "body") or (
                e.phase != "connect" and _connect_cause(e) == "timeout"):
            return self._after_connect(url, e)
        host = parts.hostname or ""
        port = parts.port or (443 if parts.scheme == "https" else 80)
        mode = ep.tls.mode.value if parts.scheme == "https" else TLSMode.DISABLED.value
        if parts.scheme == "https" and is_tls_error(e):
            if is_cert_error(e):
                # The cause is the fact; the fix is written at the edge (crossfetch.fixes).
                return TLSError(f"TLS certificate verification failed for {parts.netloc}: "
                                f"{_innermost(e)}", url=url, host=host, mode=mode,
                                cause=_cert_cause(e))
            alert = _innermost(e).upper()
            if "CERTIFICATE_REQUIRED" in alert or "BAD_CERTIFICATE" in alert or \
                    ("UNKNOWN_CA" in alert and ep.tls.client is not None):
                sent = f"the client certificate {ep.tls.client.cert} was refused" \
                    if ep.tls.client else "no client certificate was sent"
                return TLSError(
                    f"{parts.netloc} requires a client certificate (mutual TLS) and {sent}: "
                    f"{_innermost(e)}", url=url, host=host, mode=mode,
                    cause="client-certificate-required")
            if speaks_plain_http(host, port, self.timeouts.connect):
                if ep.tls.allow_http_fallback:
                    return _FallbackToHTTP(url)
                return PlainHTTPError(
                    f"{parts.netloc} answered the TLS handshake in plain HTTP, and policy "
                    f"requires TLS ({mode})", url=url, host=host, mode=mode)
            return TLSError(f"TLS handshake with {parts.netloc} failed: {_innermost(e)}",
                            url=url, host=host, mode=mode, cause="tls-error",
                            fix="check that the port speaks TLS and supports TLS 1.2 or newer")
        if e.phase == "proxy":
            return TransportError(
                f"cannot reach {parts.netloc} through the forward proxy: {e}", url=url,
                host=host, mode=mode, cause="proxy-error",
                fix="check HTTPS_PROXY / HTTP_PROXY: an http://host:port URL, with "
                "user:password@ when the proxy asks for credentials (407); or exempt the "
                f"registry with NO_PROXY={host}")
        cause = _connect_cause(e)
        if parts.scheme == "http" and (e.phase == "protocol" or cause in (
                "connection-reset", "connection-failed")) and \
                speaks_tls(host, port, self.timeouts.connect):
            return self._tls_expected(ep, url)
        hint = {
            "dns-failure": f"check that {host} resolves from here (inside a pod: cluster DNS)",
            "connection-refused": f"nothing listens on {host}:{port}; check the port, and "
            "whether a NetworkPolicy or firewall blocks it",
            "timeout": "the host did not answer in time: a firewall or NetworkPolicy dropping "
            "packets is likely; raise --timeout if the link is just slow",
        }.get(cause, "check the network path to the registry")
        return TransportError(f"cannot reach {parts.netloc} ({cause}): {_innermost(e)}",
                              url=url, host=host, mode=mode, cause=cause, fix=hint)

    def _after_connect(self, url: str, e: WireError) -> TransportError:
        """A server that accepted the TCP connection, then stalled, broke off or cut the
        body short: no firewall is to blame."""
        parts = urlsplit(url)
        slow = ("if the link is only slow, raise --deadline (a whole request, now "
                f"{self.deadline:g} s) or lower --min-rate (a blob's floor, now "
                f"{self.floor.rate:g} B/s over {self.floor.window:g} s)")
        if e.phase == "truncated":
            return TransportError(f"{parts.netloc} cut the response short: {e}", url=url,
                                  host=parts.hostname, cause="truncated",
                                  fix="the connection to the registry (or a proxy in front of "
                                  "it) closed before the whole body arrived; nothing was kept. "
                                  "Try again; if it persists, check the registry and proxies")
        if e.phase == "body":
            return TransportError(f"{parts.netloc} broke off the response ({_connect_cause(e)}): "
                                  f"{e}", url=url, host=parts.hostname,
                                  cause=_connect_cause(e),
                                  fix="the registry (or a proxy in front of it) closed the "
                                  "connection mid-body; nothing was kept. Try again; if it "
                                  "persists, check the registry and proxies")
        what = str(e) if e.phase == "stalled" else (
            f"{e}: no byte arrived for {self.timeouts.read:g} s (read timeout)")
        return TransportError(f"{parts.netloc} accepted the connection (TCP connected), then "
                              f"stalled: {what}", url=url, host=parts.hostname, cause="stalled",
                              fix="the registry or a proxy in front of it is stuck: check its "
                              f"health and logs; {slow}")

    def _tls_expected(self, ep: RouteLike, url: str) -> TLSExpectedError:
        netloc = urlsplit(url).netloc
        return TLSExpectedError(
            f"{netloc} speaks TLS, but policy says plain HTTP (Disabled)", url=url,
            host=urlsplit(url).hostname, mode="Disabled")

    # --- fallback ---

    def send(self, ep: RouteLike, method: str, path: str, **kw: object) -> Response:
        """:meth:`request` with an absolute path on the endpoint's host, applying the safe
        fallback to plain HTTP where the endpoint allows it."""
        for _ in range(2):
            url = self.effective_url(ep) + path
            try:
                return self.request(ep, method, url, **kw)  # type: ignore[arg-type]
            except _FallbackToHTTP:
                self._fallback.add(ep.url)
        raise AssertionError("unreachable")


class _FallbackToHTTP(TransportError):
    """Internal signal: the endpoint may and does speak plain HTTP."""

    def __init__(self, url: str) -> None:
        super().__init__(f"{url} speaks plain HTTP", url=url, cause="fallback")


def _innermost(e: BaseException) -> str:
    inner = e
    for c in _chain(e):
        inner = c
    text = str(inner) or type(inner).__name__
    return text.replace("\n", " ")[:300]
