"""Hostile manifests, indexes and image configs: each is a PackageError naming the field,
never a RecursionError, OverflowError, TypeError or AttributeError."""

from __future__ import annotations

import http.server
import json
from typing import Any

import pytest

from crossfetch.errors import PackageError
from crossfetch.oci import (
    DOCKER_MANIFEST,
    OCI_INDEX,
    OCI_MANIFEST,
    Descriptor,
    Manifest,
    check_config,
    digest_of,
    load_json,
    parse_manifest,
)
from crossfetch.xpkg import read_config


def desc(**over: Any) -> dict[str, Any]:
    d: dict[str, Any] = {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                         "digest": digest_of(b"x"), "size": 1}
    d.update(over)
    return d


def manifest(**over: Any) -> dict[str, Any]:
    m: dict[str, Any] = {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": desc(),
                         "layers": [desc()]}
    m.update(over)
    return m


def index(**over: Any) -> dict[str, Any]:
    entry = desc(mediaType=OCI_MANIFEST, platform={"os": "linux", "architecture": "amd64"})
    i: dict[str, Any] = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [entry]}
    i.update(over)
    return i


def deep(n: int) -> bytes:
    return b'{"a":' * n + b"1" + b"}" * n


def test_deep_nesting_is_refused_not_a_recursion_error() -> None:
    for raw in (deep(100_000), b"[" * 100_000 + b"]" * 100_000):
        with pytest.raises(PackageError, match="nests JSON too deeply") as e:
            parse_manifest(raw)
        assert e.value.fix


def test_deep_nesting_inside_a_valid_manifest_field() -> None:
    raw = json.dumps(manifest()).encode()[:-1] + b',"x":' + deep(50_000) + b"}"
    with pytest.raises(PackageError, match="too deeply"):
        parse_manifest(raw)


BAD_MANIFESTS: dict[str, tuple[dict[str, Any], str]] = {
    "size 1e999": (manifest(layers=[desc(size=float("inf"))]), "layer 0.size"),
    "size a float": (manifest(layers=[desc(size=1.5)]), "layer 0.size"),
    "size a string": (manifest(layers=[desc(size="12")]), "layer 0.size"),
    "size a boolean": (manifest(config=desc(size=True)), "manifest config.size"),
    "size above int64": (manifest(layers=[desc(size=2**64)]), "above the int64"),
    "urls a number": (manifest(layers=[desc(urls=5)]), "layer 0.urls is a number"),
    "urls holding a list": (manifest(layers=[desc(urls=[["x"]])]), "layer 0.urls[0]"),
    "digest a number": (manifest(config=desc(digest=5)), "manifest config.digest"),
    "digest with a newline": (manifest(config=desc(digest=digest_of(b"x") + "\n")),
                              "manifest config.digest"),
    "annotations a list": (manifest(annotations=["a"]), "annotations is an array"),
    "annotation value a number": (manifest(layers=[desc(annotations={"a": 1})]),
                                  "layer 0.annotations['a']"),
    "mediaType a list": (manifest(mediaType=[OCI_MANIFEST]), "mediaType is an array"),
    "layers an object": (manifest(layers={"a": 1}), "layers is an object"),
    "layer a string": (manifest(layers=["sha256:x"]), "layer 0 is a string"),
    "config missing": (manifest(config=None), "no config"),
    "schemaVersion a string": (manifest(schemaVersion="2"), "schemaVersion"),
    "subject a number": (manifest(subject=3), "subject is a number"),
    "variant a list": (index(manifests=[desc(platform={"os": "linux", "architecture": "amd64",
                                                      "variant": ["v8"]})]),
                       "platform.variant is an array"),
    "platform a string": (index(manifests=[desc(platform="linux/amd64")]),
                          "platform is a string"),
    "os.features a string": (index(manifests=[desc(platform={
        "os": "linux", "architecture": "amd64", "os.features": "x"})]), "os.features"),
    "manifests an object": (index(manifests={}), "manifests is an object"),
}


@pytest.mark.parametrize("case", list(BAD_MANIFESTS), ids=list(BAD_MANIFESTS))
def test_wrong_types_name_the_field(case: str) -> None:
    doc, needle = BAD_MANIFESTS[case]
    raw = json.dumps(doc).encode().replace(b"Infinity", b"1e999")
    with pytest.raises(PackageError) as e:
        parse_manifest(raw)
    assert needle in str(e.value)
    assert e.value.cause == "invalid-manifest" and e.value.fix


@pytest.mark.parametrize("literal", [b"NaN", b"Infinity", b"-Infinity"])
def test_non_json_constants_are_refused(literal: bytes) -> None:
    raw = json.dumps(manifest()).encode().replace(b'"size": 1', b'"size": ' + literal, 1)
    with pytest.raises(PackageError, match="not valid JSON"):
        parse_manifest(raw)


def test_nulls_are_absent_fields() -> None:
    m = parse_manifest(json.dumps(manifest(annotations=None, layers=[desc(urls=None)])).encode())
    assert isinstance(m, Manifest) and m.layers[0].urls == ()


def test_valid_platform_fields_are_kept() -> None:
    d = Descriptor.from_dict(desc(platform={"os": "linux", "architecture": "arm64",
                                            "variant": "v8", "os.features": ["a"]}))
    assert str(d.platform) == "linux/arm64/v8"


BAD_CONFIGS: dict[str, tuple[Any, str]] = {
    "labels a list": ({"config": {"Labels": ["a"]}}, "config.Labels is an array"),
    "label value a number": ({"config": {"Labels": {"a": 1}}}, "config.Labels['a']"),
    "config a string": ({"config": "x"}, "config is a string"),
    "container_config labels a string": ({"container_config": {"Labels": "x"}},
                                         "container_config.Labels"),
    "rootfs diff_ids a number": ({"rootfs": {"type": "layers", "diff_ids": 1}}, "diff_ids"),
    "history entry a number": ({"history": [1]}, "history[0]"),
    "os a list": ({"os": ["linux"]}, "os is an array"),
    "not an object": ([], "not a JSON object"),
}


@pytest.mark.parametrize("case", list(BAD_CONFIGS), ids=list(BAD_CONFIGS))
def test_config_field_types(case: str) -> None:
    doc, needle = BAD_CONFIGS[case]
    with pytest.raises(PackageError) as e:
        check_config(doc)
    assert needle in str(e.value)


class _Source:
    def __init__(self, blob: bytes) -> None:
        self.blob = blob

    def fetch_manifest(self, identifier: str) -> tuple[bytes, str, str]:
        raise AssertionError(identifier)

    def open_blob(self, d: Descriptor) -> Any:
        return iter([self.blob])


@pytest.mark.parametrize("blob", [deep(100_000), b'{"config": {"Labels": 5}}',
                                  b'{"size": 1e999, "rootfs": {"diff_ids": [1]}}'])
def test_read_config_refuses_hostile_configs(blob: bytes) -> None:
    m = parse_manifest(json.dumps(manifest(
        mediaType=DOCKER_MANIFEST, config=desc(digest=digest_of(blob), size=len(blob)))).encode())
    assert isinstance(m, Manifest)
    with pytest.raises(PackageError, match="image config"):
        read_config(_Source(blob), m)  # type: ignore[arg-type]


def test_load_json_names_what_it_read() -> None:
    with pytest.raises(PackageError, match="tag list"):
        load_json(b"{", "tag list")


class _DeepTags(http.server.BaseHTTPRequestHandler):
    """A tag list nested 100,000 levels deep (an in-process fake: a real registry would not)."""

    def do_GET(self) -> None:
        body = b'{"name": "a/b", "tags": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


def test_a_deeply_nested_tag_list_is_a_fetch_error_not_a_recursion_error() -> None:
    from crossfetch.errors import FetchError
    from tests.support.httpserver import serve
    from tests.support.registry import direct_client

    with serve(_DeepTags) as s, pytest.raises(FetchError, match="tag list"):
        direct_client(s.host).tags()


def test_a_deeply_nested_token_response_is_an_auth_error() -> None:
    from crossfetch.errors import AuthError
    from crossfetch.transport.auth import _parse_token

    with pytest.raises(AuthError, match="without a JSON object"):
        _parse_token(b"[" * 100_000 + b"]" * 100_000, "https://auth.example/token")


def test_a_token_lifetime_past_float_range_is_the_default() -> None:
    from crossfetch.transport.auth import DEFAULT_EXPIRES_IN, _parse_token

    body = b'{"token": "t", "expires_in": 1' + b"0" * 400 + b"}"  # float() overflows
    token, expires = _parse_token(body, "https://auth.example/token")
    assert token == "t" and expires == DEFAULT_EXPIRES_IN
