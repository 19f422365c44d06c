"""Connections: HTTP/1.1 messages on the standard library, streamed responses, kept-alive
connection pools, forward proxies.

Why not httpx: importing httpx and building its client (httpcore, h11, anyio, cookie jars)
costs ~50-60 ms before the first byte, more than the whole transfer of a package's base layer,
and ``crossfetch pull`` must stay well under ``skopeo copy`` (see docs/benchmarks.md).
``http.client`` does the protocol work; this module adds only what the registry client needs:
case-insensitive headers, URL handling, connection reuse, environment proxies, auth *flows*
(generators that yield requests and receive responses, the shape httpx made popular, so auth
logic stays testable without a network) and a cap on every in-memory read.
"""

from __future__ import annotations

import base64
import http.client
import io
import json
import os
import ssl
import threading
import time
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping
from typing import Any, overload
from urllib.parse import unquote, urlencode, urljoin, urlsplit

from .deadline import Deadline, Floor, Pace, Stalled

MAX_BODY = 4 * 1024 * 1024
"""Cap for responses read into memory (error bodies, manifests, tokens, tag lists)."""
CHUNK = 256 * 1024
REDIRECTS = frozenset({301, 302, 303, 307, 308})


class InvalidURL(ValueError):
    pass


class WireError(Exception):
    """A request failed below HTTP. ``phase``: ``connect`` (nothing was sent), ``proxy`` (the
    forward proxy refused or failed the connection), ``read`` or ``protocol`` (before the
    headers were in), ``body`` (while the body streamed), ``truncated`` (the body ended before
    its Content-Length) or ``stalled`` (a deadline or the floor rate was spent after TCP
    connected). The original exception, if any, is the
    ``__cause__``."""

    def __init__(self, phase: str, message: str) -> None:
        super().__init__(message)
        self.phase = phase


class URL:
    """An absolute http(s) URL."""

    __slots__ = ("host", "path", "port", "query", "scheme")

    def __init__(self, url: str | URL) -> None:
        if isinstance(url, URL):
            url = str(url)
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError as e:
            raise InvalidURL(f"invalid URL {url!r}: {e}") from None
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise InvalidURL(f"not an absolute http(s) URL: {url!r}")
        self.scheme = parts.scheme
        self.host = parts.hostname
        self.port = port
        self.path = parts.path or "/"
        self.query = parts.query

    @property
    def effective_port(self) -> int:
        return self.port or (443 if self.scheme == "https" else 80)

    @property
    def netloc(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}" if self.port else host

    @property
    def target(self) -> str:
        """Path and query, as sent on the request line."""
        return f"{self.path}?{self.query}" if self.query else self.path

    def join(self, location: str) -> URL:
        return URL(urljoin(str(self), location))

    def with_params(self, params: list[tuple[str, str]]) -> URL:
        extra = urlencode(params)
        query = f"{self.query}&{extra}" if self.query and extra else (self.query or extra)
        return URL(f"{self.scheme}://{self.netloc}{self.path}" + (f"?{query}" if query else ""))

    def __str__(self) -> str:
        return f"{self.scheme}://{self.netloc}{self.target}"

    def __repr__(self) -> str:
        return f"URL({str(self)!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, URL) and str(self) == str(other)

    def __hash__(self) -> int:
        return hash(str(self))


class Headers:
    """Case-insensitive headers that keep repeated fields."""

    def __init__(self, items: Mapping[str, str] | list[tuple[str, str]] | None = None) -> None:
        self._items: list[tuple[str, str]] = []
        if items:
            for k, v in (items.items() if isinstance(items, Mapping) else items):
                self._items.append((k, v))

    @overload
    def get(self, key: str) -> str | None: ...

    @overload
    def get(self, key: str, default: str) -> str: ...

    def get(self, key: str, default: str | None = None) -> str | None:
        k = key.lower()
        for name, value in self._items:
            if name.lower() == k:
                return value
        return default

    def get_list(self, key: str) -> list[str]:
        k = key.lower()
        return [v for n, v in self._items if n.lower() == k]

    def __getitem__(self, key: str) -> str:
        value = self.get(key)
        if value is None:
            raise KeyError(key)
        return value

    def __setitem__(self, key: str, value: str) -> None:
        k = key.lower()
        self._items = [(n, v) for n, v in self._items if n.lower() != k]
        self._items.append((key, value))

    def __delitem__(self, key: str) -> None:
        k = key.lower()
        self._items = [(n, v) for n, v in self._items if n.lower() != k]

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self.get(key) is not None

    def items(self) -> list[tuple[str, str]]:
        return list(self._items)

    def __iter__(self) -> Iterator[str]:
        return iter(n for n, _ in self._items)

    def __repr__(self) -> str:
        return f"Headers({[n for n, _ in self._items]})"


class Body:
    """A request body streamed from a source that can be opened again: every send (a retry, a
    resend after an auth challenge) calls ``open`` for a fresh iterator of chunks, so a large
    upload never sits in memory."""

    def __init__(self, length: int, open: Callable[[], Iterable[bytes]]) -> None:
        self.length = length
        self.open = open


class Request:
    def __init__(self, method: str, url: str | URL, *,
                 headers: Mapping[str, str] | Headers | None = None,
                 content: bytes | Body | None = None) -> None:
        self.method = method.upper()
        self.url = URL(url)
        self.headers = headers if isinstance(headers, Headers) else Headers(headers)
        self.content: bytes | Body = content or b""

    def __repr__(self) -> str:
        return f"<Request {self.method} {self.url}>"


class Response:
    """A response; the body is streamed from ``raw`` until read or closed."""

    def __init__(self, status_code: int, *, request: Request, headers: Headers | None = None,
                 reason: str = "", content: bytes | None = None,
                 raw: http.client.HTTPResponse | None = None,
                 release: Any = None) -> None:
        self.status_code = status_code
        self.request = request
        self.headers = headers or Headers()
        self.reason_phrase = reason or http.client.responses.get(status_code, "")
        self._raw = raw
        self._content = content
        self._release = release
        self._closed = raw is None

    @property
    def url(self) -> URL:
        return self.request.url

    @property
    def is_redirect(self) -> bool:
        return self.status_code in REDIRECTS and "location" in self.headers

    @property
    def content_length(self) -> int | None:
        """The declared body size; ``None`` when absent or not a number (``²`` passes
        ``isdigit()`` but not ``int()``)."""
        value = (self.headers.get("content-length") or "").strip()
        if not (value.isascii() and value.isdigit()):
            return None
        try:
            return int(value)
        except ValueError:  # more digits than int() converts (4300)
            return None

    @property
    def content(self) -> bytes:
        if self._content is None:
            raise RuntimeError("the response body has not been read")
        return self._content

    def read(self, cap: int = MAX_BODY) -> bytes:
        """The whole body (at most ``cap`` bytes are kept; more is an error)."""
        if self._content is None:
            from ..capped import read_capped

            try:
                self._content = read_capped(self.iter_raw(), cap, f"response from {self.url}",
                                            url=str(self.url))
            except Exception:
                self.close()
                raise
        return self._content

    def read_some(self, cap: int = 64 * 1024) -> bytes:
        """At most ``cap`` bytes of the body, the rest dropped: for error bodies, whose size
        must not turn a status error into a size error."""
        if self._content is None:
            buf = bytearray()
            chunks = self.iter_raw()
            for chunk in chunks:
                buf += chunk
                if len(buf) >= cap:
                    break
            chunks.close()
            self.close()
            self._content = bytes(buf[:cap])
        return self._content

    def iter_raw(self, chunk_size: int = CHUNK) -> Generator[bytes, None, None]:
        if self._content is not None:
            if self._content:
                yield self._content
            return
        raw = self._raw
        if raw is None:
            return
        got = 0
        try:
            while True:
                try:
                    chunk = raw.read1(chunk_size) if raw.chunked else raw.read(chunk_size)
                except (OSError, http.client.HTTPException) as e:
                    raise WireError("body", f"reading the body of {self.url} (after {got} "
                                    f"bytes): {e}") from e
                if not chunk:
                    if raw.length:  # http.client ends a short Content-Length body silently
                        raise WireError("truncated", f"the body of {self.url} was cut short: "
                                        f"{got} of {got + raw.length} bytes "
                                        "(Content-Length) arrived")
                    break
                got += len(chunk)
                yield chunk
        finally:
            self.close()

    iter_bytes = iter_raw  # no content codings: requests ask for identity

    def json(self) -> Any:
        return json.loads(self.read())

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        raw, self._raw = self._raw, None
        if raw is not None and self._release is not None:
            self._release(raw)


class Auth:
    """An authentication flow: yields requests, receives each response."""

    requires_response_body = False

    def auth_flow(self, request: Request) -> Generator[Request, Response, None]:
        yield request


class BasicAuth(Auth):
    def __init__(self, username: str, password: str) -> None:
        token = base64.b64encode(f"{username}:{password}".encode()).decode()
        self._header = f"Basic {token}"

    def auth_flow(self, request: Request) -> Generator[Request, Response, None]:
        request.headers["Authorization"] = self._header
        yield request


# --- connections ----------------------------------------------------------------------------


def _proxy_for(url: URL) -> str | None:
    """The proxy from HTTP(S)_PROXY / NO_PROXY for ``url``, as Crossplane honours them."""
    if not any(k.lower() in ("http_proxy", "https_proxy", "all_proxy") for k in os.environ):
        return None
    import urllib.request

    if urllib.request.proxy_bypass(url.netloc) or urllib.request.proxy_bypass(url.host):
        return None
    proxies = urllib.request.getproxies()
    return proxies.get(url.scheme) or proxies.get("all")


def _proxy_parts(proxy: str) -> tuple[str, int, dict[str, str]]:
    """Host, port and the ``Proxy-Authorization`` header (when the proxy URL carries
    ``user:password@``) of an ``http://`` forward proxy."""
    parts = urlsplit(proxy if "://" in proxy else f"http://{proxy}")
    try:
        port = parts.port or 80
    except ValueError:
        port = -1
    if parts.scheme != "http" or not parts.hostname or port < 0:
        shown = f"{parts.scheme}://{parts.hostname or '?'}"  # never the credentials
        raise WireError("proxy", f"unsupported proxy {shown} (from HTTP_PROXY/HTTPS_PROXY): "
                        "only http://[user:password@]host:port forward proxies are supported")
    headers = {}
    if parts.username is not None:
        pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
        headers["Proxy-Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
    return parts.hostname, port, headers


class _PacedRaw(io.RawIOBase):
    """The socket reads of one response, each bounded by its :class:`Pace`."""

    def __init__(self, sockio: io.RawIOBase, sock: Any, pace: Pace, label: str) -> None:
        self._sockio = sockio  # holds the socket's io reference until the response is closed
        self._sock = sock
        self._timeout: float = sock.gettimeout() or 0.0
        self._last = time.monotonic()
        self.pace = pace
        self.label = label

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        while True:
            try:
                limit = self.pace.wait()
            except Stalled as e:
                raise WireError("stalled", f"{self.label}: {e}") from None
            # Never wait past a bound, but re-arm the socket's timeout rarely: a second early
            # costs one more lap of this loop, a settimeout per read costs a syscall each.
            if self._timeout > limit or self._timeout < limit / 2:
                self._timeout = limit - 1.0 if limit > 2.0 else limit
                self._sock.settimeout(self._timeout)
            try:
                n: int = self._sock.recv_into(b)
            except TimeoutError:
                if time.monotonic() - self._last >= self.pace.read_timeout:
                    raise  # the plain per-read timeout
                continue  # woke early for a bound: wait() decides
            self._last = time.monotonic()
            self.pace.got(n)
            return n

    def close(self) -> None:
        if not self.closed:
            self._sockio.close()
        super().close()


_PACE: threading.local = threading.local()


class _PacedResponse(http.client.HTTPResponse):
    """An ``HTTPResponse`` whose reads go through the :class:`Pace` of the request in flight
    (``Pool.send`` sets it just around ``getresponse``)."""

    def __init__(self, sock: Any, debuglevel: int = 0, method: str | None = None,
                 url: str | None = None) -> None:
        super().__init__(sock, debuglevel, method, url)
        pace: tuple[Pace, str] | None = getattr(_PACE, "current", None)
        if pace is not None:
            sockio = self.fp.detach()  # the socket's io reference, now owned by _PacedRaw
            self.fp = io.BufferedReader(_PacedRaw(sockio, sock, *pace))


class Pool:
    """Kept-alive connections per (scheme, host, port, proxy), for one TLS context."""

    def __init__(self, *, ssl_context: ssl.SSLContext | None, connect_timeout: float,
                 read_timeout: float, headers: Mapping[str, str] | None = None,
                 trace: Callable[[str], None] | None = None) -> None:
        """``trace`` is told of every request: method, URL, status (or error) and the time to
        the response headers. Header values, bodies and credentials are never passed."""
        self.trace = trace
        self.ssl_context = ssl_context
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.headers = dict(headers or {})
        self._idle: dict[tuple[str, str, int, str | None], list[http.client.HTTPConnection]] = {}
        self._lock = threading.Lock()

    def _new(self, url: URL, proxy: str | None, pace: Pace) -> http.client.HTTPConnection:
        conn: http.client.HTTPConnection
        host, port = url.host, url.effective_port
        timeout = min(self.connect_timeout, self._left(pace, f"connecting to {url.netloc}"))
        if proxy:
            host, port, _ = _proxy_parts(proxy)
        if url.scheme == "https":
            if self.ssl_context is None:
                raise WireError("connect", f"no TLS context for {url}")
            conn = http.client.HTTPSConnection(host, port, timeout=timeout,
                                               context=self.ssl_context)
            if proxy:
                # CONNECT carries the proxy's credentials; the tunnelled TLS never sees them.
                conn.set_tunnel(url.host, url.effective_port, headers=_proxy_parts(proxy)[2])
        else:
            conn = http.client.HTTPConnection(host, port, timeout=timeout)
        conn.response_class = _PacedResponse
        try:
            conn.connect()
        except (OSError, http.client.HTTPException) as e:
            conn.close()
            if proxy:
                raise WireError("proxy", f"connecting to {url.netloc} through the proxy "
                                f"{host}:{port}: {e}") from e
            raise WireError("connect", f"connecting to {url.netloc}: {e}") from e
        return conn

    def _checkout(self, key: tuple[str, str, int, str | None]
                  ) -> http.client.HTTPConnection | None:
        with self._lock:
            idle = self._idle.get(key)
            return idle.pop() if idle else None

    def _checkin(self, key: tuple[str, str, int, str | None],
                 conn: http.client.HTTPConnection) -> None:
        with self._lock:
            self._idle.setdefault(key, []).append(conn)

    @staticmethod
    def _left(pace: Pace, label: str) -> float:
        """How long the next socket operation may block (raises once a deadline is spent)."""
        try:
            return pace.wait()
        except Stalled as e:
            raise WireError("stalled", f"{label}: {e}") from None

    def send(self, request: Request, *, deadline: float | None = None,
             floor: Floor | None = None) -> Response:
        """Send ``request``; the response body is left to stream (see :meth:`_send`)."""
        if self.trace is None:
            return self._send(request, deadline=deadline, floor=floor)
        start = time.perf_counter()
        what = f"{request.method} {request.url}"
        try:
            resp = self._send(request, deadline=deadline, floor=floor)
        except Exception as e:
            self.trace(f"{what} -> {e} ({(time.perf_counter() - start) * 1000:.1f} ms)")
            raise
        self.trace(f"{what} -> {resp.status_code} {resp.reason_phrase} "
                   f"({(time.perf_counter() - start) * 1000:.1f} ms)")
        return resp

    def _send(self, request: Request, *, deadline: float | None = None,
              floor: Floor | None = None) -> Response:
        """Send ``request``; the response body is left to stream.

        ``deadline`` (seconds) bounds the whole request: connecting, sending, the headers and
        the body. With ``floor`` the deadline ends at the headers and the body must instead
        arrive at the floor's rate (for blobs, whose size has no useful deadline).
        """
        url = request.url
        label = f"{request.method} {url}"
        pace = Pace(self.read_timeout,
                    Deadline(deadline, label) if deadline else None, floor)
        proxy = _proxy_for(url)
        key = (url.scheme, url.host, url.effective_port, proxy)
        target = str(url) if proxy and url.scheme == "http" else url.target
        headers = {**self.headers, **dict(request.headers.items())}
        if proxy and url.scheme == "http":
            headers.update(_proxy_parts(proxy)[2])  # forwarded in the clear, as with any proxy
        body: bytes | Iterable[bytes] | None = None
        if isinstance(request.content, Body):
            headers["Content-Length"] = str(request.content.length)
        elif request.content:
            headers["Content-Length"] = str(len(request.content))
            body = request.content
        reused = self._checkout(key)
        # A kept-alive connection the server has since closed gets one retry on a new one
        # (only for requests that are safe to repeat).
        retry_stale = reused is not None and request.method in ("GET", "HEAD")
        conn = reused or self._new(url, proxy, pace)
        while True:
            _PACE.current = (pace, label)
            try:
                if conn.sock is not None:
                    conn.sock.settimeout(self._left(pace, label))
                if isinstance(request.content, Body):
                    body = request.content.open()  # afresh for each send
                conn.request(request.method, target, body=body, headers=headers)
                if isinstance(request.content, Body) and deadline:
                    # An upload takes as long as its size: the deadline bounds the answer.
                    pace.deadline = Deadline(deadline, label)
                raw = conn.getresponse()
            except WireError:
                conn.close()
                raise
            except (OSError, http.client.HTTPException) as e:
                conn.close()
                if retry_stale and isinstance(
                        e, http.client.RemoteDisconnected | BrokenPipeError | ConnectionResetError):
                    retry_stale = False
                    conn = self._new(url, proxy, pace)
                    continue
                phase = "protocol" if isinstance(e, http.client.HTTPException) and not isinstance(
                    e, http.client.RemoteDisconnected) else "read"
                raise WireError(phase, f"{request.method} {url}: {e}") from e
            finally:
                _PACE.current = None
            pace.body()
            return self._wrap(request, raw, conn, key)

    def _wrap(self, request: Request, raw: http.client.HTTPResponse,
              conn: http.client.HTTPConnection, key: tuple[str, str, int, str | None]
              ) -> Response:
        def release(r: http.client.HTTPResponse) -> None:
            # Reuse only a connection whose response was read to the end.
            if r.isclosed() and not r.will_close and conn.sock is not None:
                self._checkin(key, conn)
            else:
                conn.close()

        headers = Headers(raw.getheaders())
        if request.method == "HEAD":
            raw.read()
        return Response(raw.status, request=request, headers=headers, reason=raw.reason,
                        raw=raw, release=release)

    def close(self) -> None:
        with self._lock:
            conns = [c for lst in self._idle.values() for c in lst]
            self._idle.clear()
        for c in conns:
            c.close()


def send_with_auth(pool: Pool, request: Request, auth: Auth | None, *,
                   deadline: float | None = None, floor: Floor | None = None) -> Response:
    """Drive ``auth``'s flow: send each request it yields, hand back each response
    (``deadline`` and ``floor`` as in :meth:`Pool.send`, for each of them)."""
    if auth is None:
        return pool.send(request, deadline=deadline, floor=floor)
    flow = auth.auth_flow(request)
    req = next(flow)
    while True:
        resp = pool.send(req, deadline=deadline, floor=floor)
        if auth.requires_response_body:
            resp.read()
        try:
            nxt = flow.send(resp)
        except StopIteration:
            return resp
        except BaseException:
            resp.close()
            raise
        resp.read()
        resp.close()
        req = nxt
