"""A fault-injecting reverse proxy in front of a real registry, and a blob mirror on another host.

Faults are plain attributes, switched on and off between requests:
``reject_head`` (HEAD → 405), ``corrupt_blobs`` (one byte of every blob GET body flipped, length
kept), ``redirect_blobs_to`` (blob GETs → 307 to that base URL, same path and query),
``fail_next`` (answer the next requests with these statuses; 429 carries ``Retry-After: 0``),
``delay`` (seconds to wait before answering). ``.requests`` records what clients sent.

Anything else is a :class:`Fault` given to :meth:`FaultProxy.inject`: resets (before the
headers or mid-body), statuses (once or always, 429 with any ``Retry-After``), truncation, a
wrong ``Content-Length``, drip (slow bytes in the headers or the body), a stall (accept, never
answer), a redirect loop, a wrong ``Docker-Content-Digest``, an oversized manifest, a missing
manifest, corrupt bytes, and ignoring ``Range``.
"""

from __future__ import annotations

import contextlib
import http.client
import re
import select
import socket
import ssl
import struct
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from tests.support.certs import CertPair
from tests.support.httpserver import BaseHandler, RecordedRequest, TestServer

BLOB_PATH = re.compile(r"^/v2/.+/blobs/[a-z0-9]+:[a-f0-9]+$")
MANIFEST_PATH = re.compile(r"^/v2/.+/manifests/[^/]+$")
KINDS = frozenset({
    "reset",  # RST before any byte of the answer
    "reset-body",  # the headers and a part (``at``) of the body, then RST
    "truncate",  # the headers and a part (``at``) of the body, then a clean close
    "status",  # answer ``status`` (with ``retry_after``)
    "stall",  # accept and read the request, never answer
    "drip-headers",  # the status line and headers at ``rate`` bytes/s
    "drip-body",  # the headers at once, the body at ``rate`` bytes/s
    "length",  # Content-Length ``value`` (if set) or the true one plus ``delta``
    "loop",  # 307 to the same URL
    "digest",  # Docker-Content-Digest replaced by ``value``
    "oversize",  # a manifest of ``size`` bytes (``value`` "nolength": close-delimited)
    "corrupt",  # one body byte flipped, length kept
    "missing",  # 404 MANIFEST_UNKNOWN
    "no-range",  # Range dropped: the whole body, 200
    "range-off",  # a 206 whose Content-Range does not match the Range asked for
})


@dataclass
class Fault:
    """One injected fault for requests to ``where`` (``blob``, ``manifest`` or ``any``) with
    a method in ``methods``, whose path contains ``path``; the first ``times`` of them get it
    (``None``: all)."""

    kind: str
    where: str = "any"
    times: int | None = 1
    methods: tuple[str, ...] = ("GET",)
    path: str = ""
    status: int = 503
    retry_after: str | None = None
    at: float = 0.5
    rate: float = 1.0
    delta: int = 0
    value: str = ""
    size: int = 5 * 1024 * 1024
    hits: int = 0

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown fault {self.kind!r}")

    def matches(self, method: str, path: str) -> bool:
        if method not in self.methods or self.path not in path:
            return False
        if self.where == "blob":
            return bool(BLOB_PATH.match(path))
        if self.where == "manifest":
            return bool(MANIFEST_PATH.match(path))
        return True
# Headers that describe one hop, not the message (RFC 9110 §7.6.1).
HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
}
CHUNK = 256 * 1024


class _ProxyHandler(BaseHandler):
    def do_GET(self) -> None:
        self._handle()

    do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = do_GET

    def _handle(self) -> None:
        proxy: FaultProxy = self.server.owner
        body = self.read_body()
        rec = self.recorded(body)
        proxy.record(rec)
        if proxy.delay:
            time.sleep(proxy.delay)
        is_blob_get = self.command == "GET" and bool(BLOB_PATH.match(rec.path))

        fault = proxy.take_fault(self.command, rec.path)
        if fault is not None:
            rec.note = fault.kind
            return self._inject(proxy, rec, body, fault)
        with proxy.lock:
            injected = proxy.fail_next.pop(0) if proxy.fail_next else None
        if injected is not None:
            rec.status, rec.note = injected, "fail_next"
            headers = {"Retry-After": "0"} if injected == 429 else {}
            err = b'{"errors":[{"code":"UNAVAILABLE","message":"injected by FaultProxy"}]}'
            return self.reply(injected, err, headers)
        if self.command == "HEAD" and proxy.reject_head:
            rec.status, rec.note = 405, "reject_head"
            return self.reply(405)
        if is_blob_get and proxy.redirect_blobs_to:
            rec.status, rec.note = 307, "redirect_blobs_to"
            location = proxy.redirect_blobs_to.rstrip("/") + self.path
            return self.reply(307, headers={"Location": location})
        self._forward(proxy, rec, body, corrupt=is_blob_get and proxy.corrupt_blobs)

    # --- injected faults ---

    def _hang_up(self, rst: bool) -> None:
        """Close the client connection now: with a TCP RST, or cleanly."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.wfile.flush()
        if rst:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.rfile.close()
        self.wfile.close()
        self.connection.close()

    def _client_gone(self, wait: float) -> bool:
        """Wait up to ``wait`` seconds; whether the client hung up meanwhile."""
        readable, _, _ = select.select([self.connection], [], [], wait)
        if not readable:
            return False
        try:
            return bool(self.connection.recv(1, socket.MSG_PEEK) == b"")
        except OSError:
            return True

    def _drip(self, data: bytes, rate: float) -> None:
        for i in range(len(data)):
            if self._client_gone(1 / rate):
                return
            self.wfile.write(data[i : i + 1])
            self.wfile.flush()

    def _fetch(self, proxy: FaultProxy, body: bytes, drop: tuple[str, ...] = ()
               ) -> tuple[int, str, list[tuple[str, str]], bytes]:
        conn = proxy.upstream_connection()
        try:
            self._send_upstream(conn, proxy, body, drop)
            resp = conn.getresponse()
            data = b"" if self.command == "HEAD" else resp.read()
            headers = [(k, v) for k, v in resp.getheaders()
                       if k.lower() not in HOP_BY_HOP and k.lower() != "content-length"]
            length = resp.getheader("Content-Length")
            if self.command == "HEAD" and length is not None:
                headers.append(("Content-Length", length))
            return resp.status, resp.reason, headers, data
        finally:
            conn.close()

    def _inject(self, proxy: FaultProxy, rec: RecordedRequest, body: bytes, f: Fault) -> None:
        if f.kind == "reset":
            rec.status = -1
            return self._hang_up(rst=True)
        if f.kind == "stall":
            rec.status = -1
            deadline = time.monotonic() + 300
            while not self._client_gone(0.2) and time.monotonic() < deadline:
                pass
            return self._hang_up(rst=False)
        if f.kind == "status":
            rec.status = f.status
            extra = {"Retry-After": f.retry_after} if f.retry_after is not None else {}
            err = b'{"errors":[{"code":"UNAVAILABLE","message":"injected by FaultProxy"}]}'
            return self.reply(f.status, err, extra)
        if f.kind == "missing":
            rec.status = 404
            return self.reply(404, b'{"errors":[{"code":"MANIFEST_UNKNOWN","message":'
                              b'"manifest unknown"}]}')
        if f.kind == "loop":
            rec.status = 307
            return self.reply(307, headers={"Location": self.path})
        status, reason, headers, data = self._fetch(
            proxy, body, drop=("range",) if f.kind == "no-range" else ())
        rec.status = status
        length: str | None = str(len(data))
        close = False
        if self.command == "HEAD":
            length = None  # already among the headers
        if f.kind == "digest":
            headers = [(k, v) for k, v in headers if k.lower() != "docker-content-digest"]
            headers.append(("Docker-Content-Digest", f.value))
        elif f.kind == "range-off":
            headers = [(k, v) for k, v in headers if k.lower() != "content-range"]
            headers.append(("Content-Range", f"bytes 0-{max(len(data) - 1, 0)}/*"))
        elif f.kind == "corrupt" and data:
            data = data[:-1] + bytes([data[-1] ^ 0xFF])
        elif f.kind == "oversize":
            data = b'{"schemaVersion":2,"pad":"' + b"x" * f.size + b'"}'
            length = None if f.value == "nolength" else str(len(data))
            close = length is None
        elif f.kind == "length":
            headers = [(k, v) for k, v in headers if k.lower() != "content-length"]
            length = f.value or str(len(data) + f.delta)
            close = True
        head = f"HTTP/1.1 {status} {reason}\r\n".encode()
        for k, v in headers:
            head += f"{k}: {v}\r\n".encode()
        if length is not None:
            head += f"Content-Length: {length}\r\n".encode()
        if close or f.kind in ("reset-body", "truncate", "drip-headers", "drip-body"):
            head += b"Connection: close\r\n"
            self.close_connection = True
        head += b"\r\n"
        if self.command == "HEAD":
            data = b""
        cut = int(len(data) * f.at)
        try:
            if f.kind == "drip-headers":
                self._drip(head + data, f.rate)
            elif f.kind == "drip-body":
                self.wfile.write(head)
                self.wfile.flush()
                self._drip(data, f.rate)
            elif f.kind in ("reset-body", "truncate"):
                self.wfile.write(head + data[:cut])
                self.wfile.flush()
                if f.kind == "reset-body":
                    time.sleep(0.3)  # let the client read it: an RST drops unread data
                self._hang_up(rst=f.kind == "reset-body")
            else:
                self.wfile.write(head + data)
                if close:
                    self._hang_up(rst=False)
        except OSError:
            self.close_connection = True

    # --- forwarding ---

    def _send_upstream(self, conn: http.client.HTTPConnection, proxy: FaultProxy, body: bytes,
                       drop: tuple[str, ...] = ()) -> None:
        conn.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
        for k, v in self.headers.items():
            lk = k.lower()
            # The body is already read (and 100-continue answered), so no Expect upstream.
            if lk in HOP_BY_HOP or lk in ("content-length", "expect") or lk in drop:
                continue
            if lk == "authorization" and proxy.strip_authorization:
                continue
            conn.putheader(k, v)
        # The registry builds absolute Location URLs from Host and X-Forwarded-Proto:
        # keep the client's Host so follow-up requests come back through the proxy.
        if "Host" not in self.headers:
            conn.putheader("Host", proxy.host)
        conn.putheader("X-Forwarded-Proto", proxy.scheme)
        if body or self.command in ("POST", "PUT", "PATCH"):
            conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body or None)

    def _forward(self, proxy: FaultProxy, rec: RecordedRequest, body: bytes, corrupt: bool) -> None:
        conn = proxy.upstream_connection()
        try:
            self._send_upstream(conn, proxy, body)
            resp = conn.getresponse()
        except OSError as e:
            conn.close()
            rec.status, rec.note = 502, f"upstream error: {e}"
            return self.reply(502, str(e).encode(), content_type="text/plain")
        try:
            self._relay(resp, rec, corrupt)
        finally:
            conn.close()

    def _relay(self, resp: http.client.HTTPResponse, rec: RecordedRequest, corrupt: bool) -> None:
        rec.status = resp.status
        length_header = resp.getheader("Content-Length")
        corrupt = corrupt and resp.status in (200, 206)
        data: bytes | None = None
        if corrupt and length_header is None:
            data = resp.read()  # rare: unknown length, so buffer to find the byte to flip
            length_header = str(len(data))
        self.send_response(resp.status)
        for k, v in resp.getheaders():
            if k.lower() not in HOP_BY_HOP and k.lower() != "content-length":
                self.send_header(k, v)
        if length_header is not None:
            self.send_header("Content-Length", length_header)
        else:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        if self.command == "HEAD":
            return
        length = int(length_header) if length_header is not None else -1
        flip_at = length - 1 if corrupt and length > 0 else -1
        if corrupt:
            rec.note = "corrupt_blobs"
        sent = 0
        while True:
            if data is not None:
                chunk, data = data, b""
            else:
                chunk = resp.read1(CHUNK)
            if not chunk:
                break
            if 0 <= flip_at - sent < len(chunk):
                i = flip_at - sent
                chunk = chunk[:i] + bytes([chunk[i] ^ 0xFF]) + chunk[i + 1 :]
            self.wfile.write(chunk)
            sent += len(chunk)


class FaultProxy(TestServer):
    """Reverse proxy to ``upstream_url`` (http or https) with switchable faults.

    ``corrupt_blobs`` flips the last byte of the body: the length stays right, so only a digest
    check can notice.
    """

    handler = _ProxyHandler
    strip_authorization = False

    def __init__(
        self,
        upstream_url: str,
        *,
        upstream_ca: Path | None = None,
        tls: CertPair | None = None,
        host: str = "127.0.0.1",
    ) -> None:
        super().__init__(tls=tls, host=host)
        parts = urlsplit(upstream_url)
        self.upstream_url = upstream_url
        self._upstream_scheme = parts.scheme
        self._upstream_host = parts.hostname or "127.0.0.1"
        self._upstream_port = parts.port or (443 if parts.scheme == "https" else 80)
        self._upstream_ctx: ssl.SSLContext | None = None
        if parts.scheme == "https":
            self._upstream_ctx = ssl.create_default_context(
                cafile=str(upstream_ca) if upstream_ca else None
            )
        self.reject_head = False
        self.corrupt_blobs = False
        self.redirect_blobs_to: str | None = None
        self.fail_next: list[int] = []
        self.delay = 0.0
        self.faults: list[Fault] = []

    def inject(self, *faults: Fault) -> list[Fault]:
        """Arm ``faults`` (checked in order, before the plain attributes); returns them, so a
        test can read each one's ``hits``."""
        with self.lock:
            self.faults.extend(faults)
        return list(faults)

    def take_fault(self, method: str, path: str) -> Fault | None:
        with self.lock:
            for f in self.faults:
                if (f.times is None or f.hits < f.times) and f.matches(method, path):
                    f.hits += 1
                    return f
        return None

    def upstream_connection(self) -> http.client.HTTPConnection:
        if self._upstream_ctx is not None:
            return http.client.HTTPSConnection(
                self._upstream_host, self._upstream_port, context=self._upstream_ctx, timeout=60
            )
        return http.client.HTTPConnection(self._upstream_host, self._upstream_port, timeout=60)

    def reset(self) -> None:
        """Switch every fault off and forget recorded requests."""
        with self.lock:
            self.reject_head = self.corrupt_blobs = False
            self.redirect_blobs_to = None
            self.fail_next = []
            self.delay = 0.0
            self.faults = []
            self.requests.clear()

    def requests_for(self, method: str | None = None, blobs: bool = False) -> list[RecordedRequest]:
        """Recorded requests filtered by method and/or to blob paths only."""
        with self.lock:
            reqs = list(self.requests)
        return [
            r
            for r in reqs
            if (method is None or r.method == method) and (not blobs or BLOB_PATH.match(r.path))
        ]


class BlobMirror(FaultProxy):
    """A "second host" (default 127.0.0.2) serving the registry's content, like object storage.

    Point ``FaultProxy.redirect_blobs_to`` at ``mirror.url``; ``mirror.requests`` then shows
    what a client sent across the host boundary (it must carry no ``Authorization``). The
    mirror itself fetches upstream without the client's credentials, so its upstream should
    allow anonymous pulls.
    """

    strip_authorization = True

    def __init__(
        self,
        upstream_url: str,
        *,
        upstream_ca: Path | None = None,
        tls: CertPair | None = None,
        host: str = "127.0.0.2",
    ) -> None:
        super().__init__(upstream_url, upstream_ca=upstream_ca, tls=tls, host=host)
