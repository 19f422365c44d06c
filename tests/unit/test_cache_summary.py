"""A cache hit on an entry validated under the current rules is hash-only: the stream was
parsed and linted when it was stored; the hash proves the bytes are the same."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from crossfetch.cache import PACKAGE_FILE, CacheEntry
from crossfetch.client import SUMMARY_VERSION, entry_package, package_summary
from crossfetch.errors import DigestMismatch
from crossfetch.xpkg import meta as xmeta
from tests.support.packages import package_stream
from tests.support.testdata import TESTDATA


def _entry(tmp_path: Path, data: bytes, summary: object) -> CacheEntry:
    (tmp_path / PACKAGE_FILE).write_bytes(data)
    meta = {"packageSha256": hashlib.sha256(data).hexdigest(), "packageSummary": summary}
    return CacheEntry(tmp_path, meta)


@pytest.fixture
def stream() -> bytes:
    return package_stream((TESTDATA / "configuration-platform-ref-aws/crossplane.yaml").read_text(),
                          ["apiVersion: apiextensions.crossplane.io/v1\nkind: Composition\n"
                           "metadata: {name: c}\n"])


def _scan(data: bytes) -> xmeta.Package:
    s = xmeta.PackageScanner()
    s.feed(data)
    return s.finish()


def test_a_hit_rebuilds_the_package_without_parsing_the_stream(
        tmp_path: Path, stream: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    pkg = _scan(stream)
    summary = package_summary(pkg)
    assert summary is not None and summary["version"] == SUMMARY_VERSION
    entry = _entry(tmp_path, stream, summary)

    def no_scan(*_: object) -> None:
        raise AssertionError("the stream was parsed again")

    monkeypatch.setattr(xmeta.PackageScanner, "feed", no_scan)
    got = entry_package(entry)
    assert got == pkg and got.depends_on == pkg.depends_on and got.meta == pkg.meta


def test_a_changed_byte_is_still_caught(tmp_path: Path, stream: bytes) -> None:
    entry = _entry(tmp_path, stream, package_summary(_scan(stream)))
    (tmp_path / PACKAGE_FILE).write_bytes(stream.replace(b"kind", b"kinD", 1))
    with pytest.raises(DigestMismatch):
        entry_package(entry)


@pytest.mark.parametrize("summary", [None, {"version": SUMMARY_VERSION - 1}, "junk",
                                     {"version": SUMMARY_VERSION, "objects": {}, "size": 1,
                                      "meta": {"kind": "NotAMeta"}}])
def test_other_entries_are_parsed_again(tmp_path: Path, stream: bytes, summary: object,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    pkg = _scan(stream)
    fed: list[int] = []
    real = xmeta.PackageScanner.feed

    def counting(self: xmeta.PackageScanner, chunk: bytes) -> None:
        fed.append(len(chunk))
        real(self, chunk)

    monkeypatch.setattr(xmeta.PackageScanner, "feed", counting)
    assert entry_package(_entry(tmp_path, stream, summary)) == pkg
    assert sum(fed) == len(stream)


def test_a_big_meta_object_is_not_summarised_so_its_entry_stays_readable(
        tmp_path: Path) -> None:
    """900 KB of CJK text is under the 1 MiB meta cap, but twice that as JSON: summarised, the
    record would be over the cache's record cap and every lookup would miss it as broken."""
    from crossfetch.cache import Cache

    readme = "文" * 300_000
    data = package_stream("apiVersion: meta.pkg.crossplane.io/v1\nkind: Configuration\n"
                          "metadata:\n  name: c\n  annotations:\n"
                          f"    meta.crossplane.io/readme: \"{readme}\"\n", [])
    pkg = _scan(data)
    summary = package_summary(pkg)
    assert summary is None
    cache = Cache(tmp_path)
    pending = cache.begin()
    (pending.dir / PACKAGE_FILE).write_bytes(data)
    top = "sha256:" + "a" * 64
    cache.commit(pending, top, "image", {"packageSha256": pkg.sha256,
                                         "packageSummary": summary}).release()
    entry = cache.lookup(top)
    assert entry is not None
    assert entry_package(entry) == pkg
    entry.release()
