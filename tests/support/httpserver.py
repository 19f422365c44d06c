"""A small threaded stdlib HTTP(S) server base shared by the token server, proxy and mirror."""

from __future__ import annotations

import socket
import ssl
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self

from tests.support.certs import CertPair


@dataclass
class RecordedRequest:
    """One request a test server received. Header names are lower-cased."""

    method: str
    path: str  # without the query string
    query: str
    headers: dict[str, str]
    body: bytes = b""
    status: int = 0  # what the server answered (0 until answered)
    note: str = ""  # which fault, if any, answered it
    extra: dict[str, Any] = field(default_factory=dict)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # A few hundred parallel connections from a stress test must not be refused.
    request_queue_size = 128

    def __init__(
        self,
        address: tuple[str, int],
        handler: type[BaseHTTPRequestHandler],
        ssl_context: ssl.SSLContext | None,
        owner: Any,
    ) -> None:
        self.ssl_context = ssl_context
        self.owner = owner
        super().__init__(address, handler)

    def finish_request(self, request: Any, client_address: Any) -> None:
        # The TLS handshake happens here, in the worker thread, so one slow or broken
        # client cannot stall the accept loop.
        if self.ssl_context is not None:
            try:
                request = self.ssl_context.wrap_socket(request, server_side=True)
            except (ssl.SSLError, OSError):
                return
        super().finish_request(request, client_address)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients hanging up mid-response are normal in fault tests; stay quiet.
        pass


class _Server6(_Server):
    address_family = socket.AF_INET6


class TestServer:
    """Start/stop/context-manager plumbing around a handler class; subclasses set ``handler``."""

    __test__ = False  # not a pytest test class
    handler: type[BaseHTTPRequestHandler]

    def __init__(self, *, tls: CertPair | None = None, host: str = "127.0.0.1") -> None:
        self.tls = tls
        self.bind_host = host
        self.requests: list[RecordedRequest] = []
        self.lock = threading.Lock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def record(self, req: RecordedRequest) -> None:
        with self.lock:
            self.requests.append(req)

    @property
    def scheme(self) -> str:
        return "https" if self.tls else "http"

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError(f"{type(self).__name__} not started")
        return int(self._server.server_address[1])

    @property
    def host(self) -> str:
        h = f"[{self.bind_host}]" if ":" in self.bind_host else self.bind_host
        return f"{h}:{self.port}"

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.host}"

    def start(self) -> Self:
        if self._server is not None:
            return self
        ctx = None
        if self.tls:
            ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            ctx.load_cert_chain(self.tls.cert, self.tls.key)
        server_cls = _Server6 if ":" in self.bind_host else _Server
        self._server = server_cls((self.bind_host, 0), self.handler, ctx, self)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"{type(self).__name__}-{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None
        self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def serve(handler: type[BaseHTTPRequestHandler], *, tls: CertPair | None = None) -> TestServer:
    """A :class:`TestServer` for a plain handler class (``with serve(H) as s: ... s.host``)."""
    return type(f"Serving{handler.__name__}", (TestServer,), {"handler": handler})(tls=tls)


class BaseHandler(BaseHTTPRequestHandler):
    """HTTP/1.1 keep-alive handler with body reading and quiet logging."""

    protocol_version = "HTTP/1.1"
    timeout = 30
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def recorded(self, body: bytes = b"") -> RecordedRequest:
        path, _, query = self.path.partition("?")
        return RecordedRequest(
            method=self.command,
            path=path,
            query=query,
            headers={k.lower(): v for k, v in self.headers.items()},
            body=body,
        )

    def reply(
        self,
        status: int,
        body: bytes = b"",
        headers: dict[str, str] | None = None,
        content_type: str = "application/json",
    ) -> None:
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        if body or status not in (204, 304):
            self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
