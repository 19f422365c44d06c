"""The one status-to-error mapping (registry.status_error) and the HEAD-fallback error."""

from __future__ import annotations

import json

from crossfetch.errors import HTTPStatusError, NotFound, PlainHTTPError, Unauthorized
from crossfetch.registry import HEAD_FALLBACK, head_fallback_error, status_error
from crossfetch.transport.connection import Headers, Request, Response

URL = "https://reg.example:5000/v2/fns/f/manifests/v1"


def answer(status: int, body: object = None, **headers: str) -> Response:
    content = json.dumps(body).encode() if body is not None else b""
    return Response(status, request=Request("GET", URL), headers=Headers(headers),
                    content=content)


def test_every_registry_diagnostic_is_kept() -> None:
    errors = [{"code": "MANIFEST_UNKNOWN", "message": "manifest unknown", "detail": {"Tag": "v1"}},
              {"code": "NAME_UNKNOWN", "message": "repository name not known"}]
    err = status_error(answer(404, {"errors": errors}), "GET manifest")
    assert isinstance(err, NotFound) and err.cause == "not-found"
    assert err.diagnostics == errors
    assert err.to_dict()["detail"]["errors"] == errors
    assert "(MANIFEST_UNKNOWN: manifest unknown)" in err.message


def test_causes_by_status() -> None:
    assert isinstance(status_error(answer(401, WWW_Authenticate='Basic realm="r"'), "x"),
                      Unauthorized)
    assert status_error(answer(405), "x").cause == "method-not-allowed"
    assert status_error(answer(407), "x").cause == "proxy-error"
    assert status_error(answer(429, **{"Retry-After": "7"}), "x").cause == "rate-limited"
    assert status_error(answer(500), "x").cause == "http-error"


def test_temporary_by_status_and_by_code() -> None:
    assert status_error(answer(503), "x").temporary
    assert status_error(answer(502), "x").temporary
    assert not status_error(answer(404), "x").temporary
    assert not status_error(answer(400), "x").temporary
    # A 400 whose body says TOOMANYREQUESTS is worth asking again (as ggcr reads it).
    busy = status_error(answer(400, {"errors": [{"code": "TOOMANYREQUESTS"}]}), "x")
    assert isinstance(busy, HTTPStatusError) and busy.temporary


def test_head_fallback_error_leaves_the_caught_errors_alone() -> None:
    head = status_error(answer(405), "HEAD manifest")
    get = PlainHTTPError("reg.example:5000 answered the TLS handshake in plain HTTP", url=URL)
    before = (head.message, dict(head.detail), get.message, dict(get.detail))
    out = head_fallback_error(head, get)
    assert (head.message, head.detail, get.message, get.detail) == before
    assert isinstance(out, PlainHTTPError) and out is not get
    assert out.message.startswith(HEAD_FALLBACK) and "the GET failed too" in out.message
    assert str(out).startswith(HEAD_FALLBACK)
    assert out.detail["headError"]["cause"] == "method-not-allowed"


def test_head_fallback_error_copies_any_error_class() -> None:
    head = status_error(answer(405), "HEAD manifest")
    get = status_error(answer(401, {"errors": [{"code": "UNAUTHORIZED"}]}), "GET manifest")
    out = head_fallback_error(head, get)
    assert isinstance(out, Unauthorized) and out.status == 401 and out is not get
    assert out.diagnostics == get.diagnostics and out.cause == "unauthorized"
    assert get.message.startswith("GET manifest")
