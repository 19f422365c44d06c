"""A fault-injecting reverse proxy in front of a real registry, and a blob mirror on another host.

Faults are plain attributes, switched on and off between requests:
``reject_head`` (HEAD → 405), ``corrupt_blobs`` (one byte of every blob GET body flipped, length
kept), ``redirect_blobs_to`` (blob GETs → 307 to that base URL, same path and query),
``fail_next`` (answer the next requests with these statuses; 429 carries ``Retry-After: 0``),
``delay`` (seconds to wait before answering). ``.requests`` records what clients sent.
"""

from __future__ import annotations

import http.client
import re
import ssl
import time
from pathlib import Path
from urllib.parse import urlsplit

from tests.support.certs import CertPair
from tests.support.httpserver import BaseHandler, RecordedRequest, TestServer

BLOB_PATH = re.compile(r"^/v2/.+/blobs/[a-z0-9]+:[a-f0-9]+$")
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

    def _forward(self, proxy: FaultProxy, rec: RecordedRequest, body: bytes, corrupt: bool) -> None:
        conn = proxy.upstream_connection()
        try:
            conn.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
            for k, v in self.headers.items():
                lk = k.lower()
                # The body is already read (and 100-continue answered), so no Expect upstream.
                if lk in HOP_BY_HOP or lk in ("content-length", "expect"):
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
