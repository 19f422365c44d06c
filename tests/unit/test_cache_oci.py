"""The cache (atomic, content-addressed, verified) and OCI parsing caps."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from crossfetch.cache import Cache
from crossfetch.client import verify_and_scan
from crossfetch.errors import DigestMismatch, LimitExceeded, PackageError
from crossfetch.oci import (
    DOCKER_MANIFEST,
    MAX_LAYERS,
    MAX_MANIFEST_BYTES,
    OCI_INDEX,
    OCI_MANIFEST,
    Index,
    Manifest,
    digest_of,
    parse_manifest,
    verify_bytes,
)
from crossfetch.xpkg import PackageScanner

META = b"---\napiVersion: meta.pkg.crossplane.io/v1\nkind: Function\nmetadata:\n  name: f\n"
D = digest_of(b"manifest")


def desc(data: bytes = b"x", mt: str = "application/vnd.oci.image.layer.v1.tar+gzip") -> dict:
    return {"mediaType": mt, "digest": digest_of(data), "size": len(data)}


def manifest(layers: int = 1) -> bytes:
    return json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": desc(b"{}"),
                       "layers": [desc(bytes([i % 256])) for i in range(layers)]}).encode()


def commit(cache: Cache, data: bytes = META, digest: str = D) -> Path:
    pending = cache.begin()
    pending.package_path.write_bytes(data)
    import hashlib

    entry = cache.commit(pending, digest, "image",
                         {"packageSha256": hashlib.sha256(data).hexdigest()})
    return entry.package_path


def test_commit_then_lookup_and_verify(tmp_path: Path) -> None:
    cache = Cache(tmp_path)
    path = commit(cache)
    assert D.split(":")[1] in str(path)
    entry = cache.lookup(D)
    assert entry is not None
    pkg = verify_and_scan(entry.package_path, entry.sha256, PackageScanner())
    assert pkg.kind == "Function"
    assert not list((tmp_path / "tmp").iterdir())  # nothing left half-written


def test_tampered_entry_fails_verification(tmp_path: Path) -> None:
    cache = Cache(tmp_path)
    path = commit(cache)
    path.write_bytes(META + b"# tampered\n")
    entry = cache.lookup(D)
    assert entry is not None
    with pytest.raises(DigestMismatch):
        verify_and_scan(entry.package_path, entry.sha256, PackageScanner())


def test_entry_without_its_record_does_not_exist(tmp_path: Path) -> None:
    cache = Cache(tmp_path)
    commit(cache)
    entry = cache.lookup(D)
    assert entry is not None
    (entry.dir / "entry.json").unlink()  # as if the writer died before the final rename
    assert cache.lookup(D) is None


@pytest.mark.parametrize("record", ["[]", "{}", '{"packageSha256": 5}'])
def test_entry_whose_record_has_no_hash_is_a_miss(tmp_path: Path, record: str) -> None:
    cache = Cache(tmp_path)
    commit(cache)
    entry = cache.lookup(D)
    assert entry is not None
    (entry.dir / "entry.json").write_text(record)  # valid JSON, but nothing to verify with
    assert cache.lookup(D) is None


def test_discarded_pending_leaves_nothing(tmp_path: Path) -> None:
    cache = Cache(tmp_path)
    pending = cache.begin()
    pending.package_path.write_bytes(b"partial")
    cache.discard(pending)
    assert cache.lookup(D) is None
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []


def test_recommit_keeps_the_verified_entry_and_replaces_a_corrupt_one(tmp_path: Path) -> None:
    cache = Cache(tmp_path)
    first = commit(cache, META)
    # Another writer of the same digest finds the entry in place: it is verified and used,
    # never replaced under a reader.
    assert commit(cache, META + b"# v2\n") == first
    assert first.read_bytes() == META
    first.write_bytes(META + b"# tampered\n")
    commit(cache, META + b"# v2\n")
    entry = cache.lookup(D)
    assert entry is not None and entry.package_path.read_bytes().endswith(b"# v2\n")
    assert not list((tmp_path / "tmp").iterdir())


def test_tags_are_remembered_for_never(tmp_path: Path) -> None:
    cache = Cache(tmp_path)
    assert cache.recall_tag("r.io/a:v1") is None
    cache.remember_tag("r.io/a:v1", D)
    assert cache.recall_tag("r.io/a:v1") == D


def test_cache_dir_defaults_to_xdg(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert Cache().root == tmp_path / "crossfetch"


# --- OCI ----------------------------------------------------------------------------------


def test_manifest_parses() -> None:
    m = parse_manifest(manifest(2))
    assert isinstance(m, Manifest) and len(m.layers) == 2


def test_layer_cap() -> None:
    parse_manifest(manifest(MAX_LAYERS))
    with pytest.raises(LimitExceeded):
        parse_manifest(manifest(MAX_LAYERS + 1))


def test_manifest_size_cap() -> None:
    with pytest.raises(LimitExceeded):
        parse_manifest(b" " * (MAX_MANIFEST_BYTES + 1))


@pytest.mark.parametrize("raw,needle", [
    (b"not json", "not valid JSON"),
    (b"[]", "not a JSON object"),
    (json.dumps({"mediaType": "application/vnd.unknown"}).encode(), "unsupported"),
    (json.dumps({"mediaType": DOCKER_MANIFEST, "config": desc(), "layers": [
        {"digest": "md5:abc", "size": 1}]}).encode(), "digest"),
    (json.dumps({"mediaType": DOCKER_MANIFEST, "config": desc(), "layers": [
        {"digest": digest_of(b"x"), "size": -1}]}).encode(), "negative"),
])
def test_malformed_manifests(raw: bytes, needle: str) -> None:
    with pytest.raises(PackageError) as ei:
        parse_manifest(raw)
    assert needle in str(ei.value)


def test_index_platform_choice() -> None:
    idx = parse_manifest(json.dumps({"mediaType": OCI_INDEX, "manifests": [
        {**desc(b"a"), "platform": {"os": "linux", "architecture": "arm64"}},
        {**desc(b"b"), "platform": {"os": "linux", "architecture": "amd64"}},
    ]}).encode())
    assert isinstance(idx, Index)
    assert idx.select().digest == digest_of(b"b")
    assert idx.select("linux/arm64").digest == digest_of(b"a")
    with pytest.raises(PackageError) as ei:
        idx.select("windows/amd64")
    assert "linux/arm64" in str(ei.value)


@pytest.mark.parametrize("platform", ["linux", "linux//arm64", "a/b/c/d"])
def test_client_refuses_a_malformed_platform_as_usage(tmp_path: Path, platform: str) -> None:
    from crossfetch.client import Client
    from crossfetch.errors import UsageError

    with pytest.raises(UsageError, match="invalid platform") as ei:
        Client(cache=Cache(tmp_path), platform=platform)
    assert ei.value.exit_code == 2 and ei.value.fix


def test_verify_bytes() -> None:
    verify_bytes(b"abc", digest_of(b"abc"), "x")
    with pytest.raises(DigestMismatch):
        verify_bytes(b"abd", digest_of(b"abc"), "x")
    verify_bytes(b"abc", digest_of(b"abc", "sha512"), "x")
