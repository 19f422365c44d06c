"""Connection reuse in the stdlib transport: a kept-alive connection the server closed while
idle is replaced once, for requests that are safe to repeat."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest

from crossfetch.transport.connection import Pool, Request, WireError


@pytest.fixture
def one_shot_server() -> Iterator[tuple[str, list[str]]]:
    """Answers one request per connection, claims keep-alive, then hangs up."""
    srv = socket.create_server(("127.0.0.1", 0))
    srv.settimeout(0.1)  # so the loop sees ``stop`` (close() does not wake accept())
    seen: list[str] = []
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            conn.settimeout(5)
            with conn:
                data = b""
                while b"\r\n\r\n" not in data:
                    chunk = conn.recv(4096)
                    if not chunk:
                        break
                    data += chunk
                if data:
                    seen.append(data.split(b" ", 1)[0].decode())
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{srv.getsockname()[1]}/", seen
    stop.set()
    t.join(timeout=5)
    srv.close()


def test_a_stale_kept_alive_connection_is_replaced_for_get(
        one_shot_server: tuple[str, list[str]]) -> None:
    url, seen = one_shot_server
    pool = Pool(ssl_context=None, connect_timeout=5, read_timeout=5)
    try:
        for _ in range(3):
            resp = pool.send(Request("GET", url))
            assert resp.read() == b"ok"
        assert seen == ["GET", "GET", "GET"]
    finally:
        pool.close()


def test_a_stale_connection_is_not_retried_for_a_post(
        one_shot_server: tuple[str, list[str]]) -> None:
    url, seen = one_shot_server
    pool = Pool(ssl_context=None, connect_timeout=5, read_timeout=5)
    try:
        assert pool.send(Request("GET", url)).read() == b"ok"
        with pytest.raises(WireError):
            pool.send(Request("POST", url, content=b"x"))
        assert seen == ["GET"]
    finally:
        pool.close()
