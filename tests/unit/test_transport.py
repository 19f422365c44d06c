"""Transport security rules, each against real sockets on loopback:
no silent downgrade, no credentials across hosts, no unsafe redirects, retries honour
Retry-After. Each test fails if its rule is removed."""

from __future__ import annotations

import http.server
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trustme

from crossfetch.errors import (
    FetchError,
    PlainHTTPError,
    PolicyRefused,
    TLSError,
    TLSExpectedError,
)
from crossfetch.fixes import for_error
from crossfetch.policy.model import Endpoint, TLSConfig, TLSMode
from crossfetch.transport.connection import BasicAuth
from crossfetch.transport.retry import Retry, retry_after_seconds
from crossfetch.transport.session import Transport, unsafe_target


class Recorder(http.server.BaseHTTPRequestHandler):
    # Answer garbage (a TLS ClientHello) with a status line, as real HTTP servers (Go's
    # registry included) do; Python's default would answer it HTTP/0.9-style, bare.
    default_request_version = "HTTP/1.0"
    routes: dict[str, tuple[int, dict[str, str], bytes]] = {}
    seen: list[tuple[str, str, dict[str, str]]] = []

    def do_GET(self) -> None:
        self.seen.append(("GET", self.path, dict(self.headers)))
        status, headers, body = self.routes.get(self.path, (200, {}, b"ok"))
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.do_GET()

    def log_message(self, *args: Any) -> None:
        pass


class Server:
    def __init__(self, host: str = "127.0.0.1", tls: ssl.SSLContext | None = None) -> None:
        handler = type("H", (Recorder,), {"routes": {}, "seen": []})
        self.handler = handler
        self.httpd = http.server.ThreadingHTTPServer((host, 0), handler)
        if tls:
            self.httpd.socket = tls.wrap_socket(self.httpd.socket, server_side=True)
        self.host = f"{host}:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    @property
    def seen(self) -> list[tuple[str, str, dict[str, str]]]:
        return self.handler.seen

    def route(self, path: str, status: int, headers: dict[str, str] | None = None,
              body: bytes = b"") -> None:
        self.handler.routes[path] = (status, headers or {}, body)

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def plain() -> Iterator[Server]:
    s = Server()
    yield s
    s.close()


@pytest.fixture
def other_host() -> Iterator[Server]:
    s = Server("127.0.0.2")
    yield s
    s.close()


@pytest.fixture
def tls_server(ca: trustme.CA) -> Iterator[Server]:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(ctx)
    s = Server(tls=ctx)
    yield s
    s.close()


def ep(url: str, mode: TLSMode = TLSMode.STRICT, *, fallback: bool = False,
       ca_file: Path | None = None) -> Endpoint:
    return Endpoint(url=url, tls=TLSConfig(mode=mode, allow_http_fallback=fallback,
                                           ca_files=(ca_file,) if ca_file else ()))


def transport() -> Transport:
    return Transport(retries=0)


# --- no silent downgrade -------------------------------------------------------------------


def test_strict_never_falls_back_to_plain_http(plain: Server) -> None:
    with transport() as t, pytest.raises(PlainHTTPError) as ei:
        t.send(ep(f"https://{plain.host}"), "GET", "/v2/")
    # The transport states facts (issue 11 §3); the fix is written at the edge from them.
    assert ei.value.cause == "plain-http" and ei.value.fix is None
    assert ei.value.host == "127.0.0.1" and ei.value.mode == "Strict"
    assert "mode: Disabled" in str(for_error(ei.value))
    assert plain.seen == []  # not one plain-HTTP request was made


def test_allowed_endpoint_falls_back_when_server_speaks_http(plain: Server) -> None:
    with transport() as t:
        resp = t.send(ep(f"https://{plain.host}", fallback=True), "GET", "/v2/")
    assert resp.status_code == 200 and resp.request.url.scheme == "http"
    assert [p for _, p, _ in plain.seen] == ["/v2/"]


def test_a_proven_fallback_is_not_used_by_an_endpoint_that_disallows_it(plain: Server) -> None:
    """One transport serves several decisions (resolve): the same URL may allow the fallback
    under one policy (daemon.json insecure-registries) and not under another (an ImageConfig
    for another prefix). The proof is the server's; the permission stays each endpoint's."""
    with transport() as t:
        t.send(ep(f"https://{plain.host}", fallback=True), "GET", "/v2/")
        with pytest.raises(PlainHTTPError):
            t.send(ep(f"https://{plain.host}"), "GET", "/v2/")
    assert [p for _, p, _ in plain.seen] == ["/v2/"]


def test_certificate_error_is_never_a_reason_to_fall_back(tls_server: Server) -> None:
    with transport() as t, pytest.raises(TLSError) as ei:
        t.send(ep(f"https://{tls_server.host}", fallback=True), "GET", "/v2/")
    assert ei.value.cause == "untrusted-certificate"
    assert t._fallback == set()


def test_trusted_ca_file_works(tls_server: Server, ca: trustme.CA, tmp_path: Path) -> None:
    pem = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(pem))
    with transport() as t:
        assert t.send(ep(f"https://{tls_server.host}", ca_file=pem), "GET", "/v2/").status_code \
            == 200


def test_insecure_skips_verification_only_when_asked(tls_server: Server) -> None:
    with transport() as t:
        assert t.send(ep(f"https://{tls_server.host}", TLSMode.INSECURE), "GET", "/v2/") \
            .status_code == 200


def test_disabled_against_a_tls_server_says_tls_expected(tls_server: Server) -> None:
    with transport() as t, pytest.raises(TLSExpectedError):
        t.send(ep(f"http://{tls_server.host}", TLSMode.DISABLED), "GET", "/v2/")


# --- redirects -----------------------------------------------------------------------------


def test_cross_host_redirect_carries_no_credentials(plain: Server, other_host: Server) -> None:
    plain.route("/v2/r/blobs/x", 307, {"Location": f"http://{other_host.host}/storage/x"})
    with transport() as t:
        resp = t.send(ep(f"http://{plain.host}", TLSMode.DISABLED), "GET", "/v2/r/blobs/x",
                      auth=BasicAuth("alice", "s3cret"), follow_redirects=True)
    assert resp.status_code == 200
    assert "Authorization" in plain.seen[0][2]
    (_, path, headers), = other_host.seen
    assert path == "/storage/x"
    assert not any(k.lower() == "authorization" for k in headers)


def test_same_host_redirect_keeps_credentials(plain: Server) -> None:
    plain.route("/a", 302, {"Location": "/b"})
    with transport() as t:
        t.send(ep(f"http://{plain.host}", TLSMode.DISABLED), "GET", "/a",
               auth=BasicAuth("alice", "s3cret"), follow_redirects=True)
    assert [p for _, p, _ in plain.seen] == ["/a", "/b"]
    assert "Authorization" in plain.seen[1][2]


@pytest.mark.parametrize("src,target,needle", [
    ("https://reg.io/a", "http://reg.io/b", "never redirected to plain HTTP"),
    ("http://reg.io/a", "http://169.254.169.254/latest/meta-data", "link-local"),
    ("https://reg.io/a", "https://[fe80::1]/x", "link-local"),
    ("https://reg.io/a", "file:///etc/passwd", "scheme"),
])
def test_unsafe_redirects_refused(src: str, target: str, needle: str) -> None:
    with pytest.raises(PolicyRefused) as ei:
        Transport.check_redirect(src, target)
    assert needle in str(ei.value)


@pytest.mark.parametrize("location", [
    "http://[::1/x",  # urljoin/urlsplit raise ValueError
    "http://127.0.0.1:99999/x", "http://127.0.0.1:abc/x",  # no port
    "/\xe9", "http://ex ample/x", "/a\x00b",  # http.client cannot send these
])
def test_a_malformed_redirect_is_a_fetch_error(plain: Server, location: str) -> None:
    plain.route("/a", 302, {"Location": location})
    with transport() as t, pytest.raises(FetchError, match="not a valid URL"):
        t.send(ep(f"http://{plain.host}", TLSMode.DISABLED), "GET", "/a", follow_redirects=True)


def test_https_to_http_redirect_refused_end_to_end(tls_server: Server, plain: Server,
                                                   ca: trustme.CA, tmp_path: Path) -> None:
    pem = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(pem))
    tls_server.route("/v2/r/blobs/x", 307, {"Location": f"http://{plain.host}/x"})
    with transport() as t, pytest.raises(PolicyRefused):
        t.send(ep(f"https://{tls_server.host}", ca_file=pem), "GET", "/v2/r/blobs/x",
               follow_redirects=True)
    assert plain.seen == []


@pytest.mark.parametrize("host,unsafe", [
    ("169.254.169.254", True), ("[fe80::1]", True), ("metadata.google.internal", True),
    ("10.0.0.1", False), ("registry.example", False), ("127.0.0.1", False),
])
def test_unsafe_target(host: str, unsafe: bool) -> None:
    assert (unsafe_target(host) is not None) is unsafe


# --- retries -------------------------------------------------------------------------------


def test_retry_after_is_honoured(plain: Server) -> None:
    calls: list[float] = []
    plain.route("/busy", 429, {"Retry-After": "2"})
    with Transport(retries=2, sleep=calls.append) as t:
        resp = t.send(ep(f"http://{plain.host}", TLSMode.DISABLED), "GET", "/busy")
    assert resp.status_code == 429  # still busy after the retries: returned, not hidden
    assert calls == [2.0, 2.0] and len(plain.seen) == 3


def test_retry_after_parsing() -> None:
    assert retry_after_seconds("7") == 7.0
    assert retry_after_seconds("100000") == 100000.0  # the cap is the Transport's decision
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0
    assert retry_after_seconds("soon") is None
    assert retry_after_seconds("²") is None  # isdigit() accepts it, float() does not
    # a year past datetime's range: parsedate_to_datetime raises OverflowError, not ValueError
    assert retry_after_seconds("Fri, 31 Dec 99999999999 23:59:59 GMT") is None
    assert retry_after_seconds("9" * 400) is None  # float() says inf; the error said "inf s"


def test_huge_retry_after_is_not_slept(plain: Server) -> None:
    """A Retry-After above the cap ends the retries at once: no hour-long sleep."""
    calls: list[float] = []
    plain.route("/busy", 429, {"Retry-After": "3600"})
    with Transport(retries=3, sleep=calls.append) as t:
        resp = t.send(ep(f"http://{plain.host}", TLSMode.DISABLED), "GET", "/busy")
    assert resp.status_code == 429 and calls == [] and len(plain.seen) == 1


def test_post_is_not_resent_after_a_5xx(plain: Server) -> None:
    calls: list[float] = []
    plain.route("/token", 503)
    with Transport(retries=3, sleep=calls.append) as t:
        resp = t.send(ep(f"http://{plain.host}", TLSMode.DISABLED), "POST", "/token",
                      content=b"grant_type=refresh_token")
    assert resp.status_code == 503 and calls == [] and len(plain.seen) == 1


@pytest.mark.parametrize("method,sent", [("POST", 1), ("GET", 3)])
def test_reset_after_sending_resends_only_idempotent(method: str, sent: int) -> None:
    """A server that reads the request and resets the connection: a GET is retried, a POST
    (the token request) is not, since the server may have acted on it."""
    import socket
    import struct

    from crossfetch.errors import TransportError

    srv = socket.create_server(("127.0.0.1", 0))
    seen: list[bytes] = []

    def serve() -> None:
        while True:
            try:
                conn, _ = srv.accept()
            except OSError:
                return
            seen.append(conn.recv(65536))
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            conn.close()

    threading.Thread(target=serve, daemon=True).start()
    host = f"127.0.0.1:{srv.getsockname()[1]}"
    try:
        with Transport(retries=2, sleep=lambda _: None) as t, \
                pytest.raises(TransportError) as e:
            t.send(ep(f"http://{host}", TLSMode.DISABLED), method, "/token", content=b"x=1")
    finally:
        srv.close()
    requests = [r for r in seen if r.startswith(method.encode())]  # not the TLS probes
    assert e.value.cause == "connection-reset" and len(requests) == sent


def test_retry_value() -> None:
    r = Retry()
    assert r.may_resend("GET") and r.may_resend("head") and not r.may_resend("POST")
    assert not r.may_resend("PATCH")
    assert r.with_total(0).total == 0 and r.total == 3
    assert all(0 < r.backoff_delay(a) <= r.backoff_max for a in range(20))


# --- system trust anchors ------------------------------------------------------------------


@pytest.fixture
def fresh_contexts() -> Iterator[None]:
    from crossfetch.transport import tls

    tls.ssl_context.cache_clear()
    tls._is_hashed_dir.cache_clear()
    yield
    tls.ssl_context.cache_clear()
    tls._is_hashed_dir.cache_clear()


def test_system_roots_from_a_hashed_directory(tls_server: Server, ca: trustme.CA,
                                              tmp_path: Path, fresh_contexts: None,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    import subprocess

    certs = tmp_path / "certs"
    certs.mkdir()
    ca.cert_pem.write_to_path(str(certs / "test-ca.pem"))
    subprocess.run(["openssl", "rehash", str(certs)], check=True, capture_output=True)
    monkeypatch.setenv("SSL_CERT_DIR", str(certs))
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    with transport() as t:  # no --ca-bundle: the CA is a "system" root here
        assert t.send(ep(f"https://{tls_server.host}"), "GET", "/v2/").status_code == 200


def test_a_custom_ssl_cert_file_is_honoured(tls_server: Server, ca: trustme.CA, tmp_path: Path,
                                            fresh_contexts: None,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    bundle = tmp_path / "corporate.pem"
    ca.cert_pem.write_to_path(str(bundle))
    monkeypatch.setenv("SSL_CERT_FILE", str(bundle))
    monkeypatch.setenv("SSL_CERT_DIR", str(tmp_path / "empty"))
    with transport() as t:
        assert t.send(ep(f"https://{tls_server.host}"), "GET", "/v2/").status_code == 200


def test_insecure_is_not_extended_to_a_redirect_target(tls_server: Server, ca: trustme.CA,
                                                      tmp_path: Path) -> None:
    """Insecure was allowed for the registry; blob storage it redirects to is still verified."""
    other_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    trustme.CA().issue_cert("127.0.0.2").configure_cert(other_ctx)  # a CA nobody trusts
    storage = Server("127.0.0.2", tls=other_ctx)
    try:
        tls_server.route("/v2/r/blobs/x", 307, {"Location": f"https://{storage.host}/x"})
        with transport() as t, pytest.raises(TLSError):
            t.send(ep(f"https://{tls_server.host}", TLSMode.INSECURE), "GET", "/v2/r/blobs/x",
                   follow_redirects=True)
        assert storage.seen == []
    finally:
        storage.close()
