"""Fuzz the manifest/index/config parsers: arbitrary bytes, arbitrary JSON, and valid documents
with one field replaced by arbitrary JSON. Only PackageError and LimitExceeded may escape."""

from __future__ import annotations

import contextlib
import json
import os
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crossfetch.errors import LimitExceeded, PackageError
from crossfetch.oci import OCI_INDEX, OCI_MANIFEST, Index, Manifest, check_config, digest_of
from crossfetch.oci import parse_manifest as parse

EXAMPLES = int(os.environ.get("CROSSFETCH_FUZZ_EXAMPLES", "0")) or 400  # per test, per run
DOCUMENTED = (PackageError, LimitExceeded)
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70),
                    st.floats(allow_nan=False), st.text(max_size=30))
JSON = st.recursive(SCALARS, lambda kids: st.one_of(
    st.lists(kids, max_size=4), st.dictionaries(st.text(max_size=12), kids, max_size=4)),
    max_leaves=20)
DESC = {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
        "digest": digest_of(b"x"), "size": 1, "annotations": {"a": "b"}, "urls": ["u"],
        "platform": {"os": "linux", "architecture": "amd64", "variant": "v8",
                     "os.features": ["f"]}}
VALID: list[dict[str, Any]] = [
    {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": dict(DESC), "layers": [dict(DESC)],
     "annotations": {"k": "v"}},
    {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [dict(DESC)]},
]
PATHS = [("config",), ("layers",), ("layers", 0), ("layers", 0, "size"), ("layers", 0, "urls"),
         ("layers", 0, "digest"), ("layers", 0, "annotations"), ("layers", 0, "platform"),
         ("layers", 0, "platform", "variant"), ("annotations",), ("mediaType",),
         ("schemaVersion",), ("config", "size"), ("manifests",), ("manifests", 0),
         ("manifests", 0, "platform"), ("manifests", 0, "platform", "os.features"),
         ("subject",), ("artifactType",)]


def replace(doc: Any, path: tuple[Any, ...], value: Any) -> Any:
    doc = json.loads(json.dumps(doc))
    cur = doc
    for key in path[:-1]:
        try:
            cur = cur[key]
        except (KeyError, IndexError, TypeError):
            return doc
    with contextlib.suppress(IndexError, TypeError):
        cur[path[-1]] = value
    return doc


def check(raw: bytes) -> None:
    try:
        result = parse(raw)
    except DOCUMENTED:
        return
    assert isinstance(result, Manifest | Index)
    for d in (result.manifests if isinstance(result, Index) else (result.config, *result.layers)):
        assert isinstance(d.size, int) and d.size >= 0 and isinstance(d.digest, str)
        assert all(isinstance(u, str) for u in d.urls)
        assert d.platform is None or all(isinstance(p, str | None) for p in d.platform)


SETTINGS = settings(max_examples=EXAMPLES, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(raw=st.binary(max_size=300))
def test_arbitrary_bytes(raw: bytes) -> None:
    check(raw)


@SETTINGS
@given(doc=JSON)
def test_arbitrary_json(doc: Any) -> None:
    check(json.dumps(doc).encode())


@SETTINGS
@given(which=st.sampled_from(VALID), path=st.sampled_from(PATHS), value=JSON,
       depth=st.integers(0, 3000))
def test_one_field_replaced(which: dict[str, Any], path: tuple[Any, ...], value: Any,
                            depth: int) -> None:
    raw = json.dumps(replace(which, path, value)).encode()
    if depth > 1500:  # nest the replacement deeply: RecursionError must not escape
        raw = raw.replace(b'"schemaVersion"', b'"x": ' + b"[" * depth + b"]" * depth
                          + b', "schemaVersion"', 1)
    check(raw)
    check(raw.replace(b"1,", b"1e999,", 1))


@SETTINGS
@given(doc=JSON)
def test_config_checker(doc: Any) -> None:
    for value in (doc, {"config": doc}, {"config": {"Labels": doc}}, {"rootfs": doc},
                  {"history": doc}):
        with contextlib.suppress(PackageError):
            check_config(value)
