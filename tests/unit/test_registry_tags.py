"""Tag listing follows ``Link`` pagination. Registry 2.8 never sends Link (it ignores ``n``),
so this is the one place an in-process fake stands in for a registry."""

from __future__ import annotations

import http.server
import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from crossfetch.errors import PolicyRefused
from tests.support.httpserver import serve
from tests.support.registry import direct_client as client

TAGS = [f"v{i}" for i in range(25)]


class Paginating(http.server.BaseHTTPRequestHandler):
    page = 10
    next_host: str | None = None

    def do_GET(self) -> None:
        q = parse_qs(urlsplit(self.path).query)
        last = q.get("last", [None])[0]
        start = TAGS.index(last) + 1 if last else 0
        chunk = TAGS[start:start + self.page]
        body = json.dumps({"name": "a/b", "tags": chunk}).encode()
        self.send_response(200)
        if start + self.page < len(TAGS):
            host = f"http://{self.next_host}" if self.next_host else ""
            self.send_header("Link", f'<{host}/v2/a/b/tags/list?n={self.page}&last={chunk[-1]}>; '
                             'rel="next"')
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def server() -> Iterator[tuple[str, type[Paginating]]]:
    handler = type("H", (Paginating,), {})
    with serve(handler) as s:
        yield s.host, handler


def test_follows_link_pagination(server: tuple[str, type[Paginating]]) -> None:
    host, _ = server
    assert client(host).tags() == TAGS


def test_refuses_pagination_links_to_another_host(
        server: tuple[str, type[Paginating]]) -> None:
    host, handler = server
    handler.next_host = "127.0.0.2:9"
    with pytest.raises(PolicyRefused):
        client(host).tags()


class HugeErrors(http.server.BaseHTTPRequestHandler):
    """Answers every request 404 with a 5 MiB body."""

    def do_GET(self) -> None:
        body = b"x" * (5 * 1024 * 1024)
        self.send_response(404)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


def test_a_huge_error_body_is_still_the_status_error() -> None:
    from crossfetch.errors import NotFound
    from crossfetch.oci import Descriptor

    with serve(HugeErrors) as s:
        rc = client(s.host)
        with pytest.raises(NotFound):
            rc.fetch_manifest("sha256:" + "a" * 64)
        with pytest.raises(NotFound):
            list(rc.open_blob(Descriptor("x", "sha256:" + "b" * 64, 10)))
