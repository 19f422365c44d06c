"""Malformed registry answers a real registry cannot be made to send (a non-numeric
Content-Length, a tag list that is not an object) end as crossfetch errors, not tracebacks."""

from __future__ import annotations

import hashlib
import http.server
from collections.abc import Iterator
from typing import Any, ClassVar

import pytest

from crossfetch.errors import FetchError
from tests.support.httpserver import serve
from tests.support.registry import direct_client as client

MANIFEST = b'{"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json"}'
DIGEST = "sha256:" + hashlib.sha256(MANIFEST).hexdigest()


class Canned(http.server.BaseHTTPRequestHandler):
    """Answers every request with ``body`` and ``headers`` (set per test)."""

    body: ClassVar[bytes] = b""
    headers_out: ClassVar[dict[str, str]] = {}

    def _answer(self, with_body: bool) -> None:
        self.send_response(200)
        for k, v in self.headers_out.items():
            self.send_header(k, v)
        self.end_headers()
        if with_body:
            self.wfile.write(self.body)
        self.close_connection = True

    def do_GET(self) -> None:
        self._answer(True)

    def do_HEAD(self) -> None:
        self._answer(False)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def canned() -> Iterator[tuple[str, type[Canned]]]:
    handler = type("H", (Canned,), {"headers_out": {}})
    with serve(handler) as s:
        yield s.host, handler


@pytest.mark.parametrize("body", [b"[]", b'{"tags": 5}', b'{"tags": "v1"}', b"not json"])
def test_a_tag_list_that_is_not_an_object_with_a_list_is_a_fetch_error(
        canned: tuple[str, type[Canned]], body: bytes) -> None:
    host, handler = canned
    handler.body = body
    handler.headers_out = {"Content-Type": "application/json"}
    with pytest.raises(FetchError, match="tag list"):
        client(host).tags()


def test_a_null_tag_list_is_empty(canned: tuple[str, type[Canned]]) -> None:
    host, handler = canned
    handler.body = b'{"name": "a/b", "tags": null}'
    assert client(host).tags() == []


# "9" * 5000: ASCII digits, but more than int() converts (ValueError past 4300 digits)
@pytest.mark.parametrize("length", ["lots", "9" * 5000])
def test_a_non_numeric_content_length_falls_back_to_get(
        canned: tuple[str, type[Canned]], length: str) -> None:
    host, handler = canned
    handler.body = MANIFEST
    handler.headers_out = {"Content-Type": "application/vnd.oci.image.manifest.v1+json",
                           "Docker-Content-Digest": DIGEST, "Content-Length": length}
    desc = client(host).head()
    assert desc.digest == DIGEST and desc.size == len(MANIFEST)
    raw, _, digest = client(host).fetch_manifest("v1")
    assert raw == MANIFEST and digest == DIGEST


@pytest.mark.parametrize(("content_range", "ok"), [
    ("bytes 5-9/10", True), ("bytes 5-9/*", True), ("bytes 4-9/10", False),
    ("bytes " + "9" * 5000 + "-9/10", False),  # too many digits for int(): no traceback
])
def test_a_resumed_range_must_be_the_one_asked_for(content_range: str, ok: bool) -> None:
    from crossfetch.registry import _resumes_at
    from crossfetch.transport.connection import Request, Response

    resp = Response(206, request=Request("GET", "http://registry.example/"),
                    headers={"content-range": content_range})
    assert _resumes_at(resp, 5, 10) is ok
