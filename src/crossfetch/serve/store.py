"""The bridge's content-addressed store: blobs and manifests by digest, which repositories
each digest was fetched for, and the last digest of each tag.

Layout under ``root``::

    blobs/sha256/<hex>            blob bytes (written to tmp/ first, renamed in when verified)
    manifests/sha256/<hex>        manifest bytes; <hex>.type holds the media type
    links/<repo-key>/<hex>        empty: this digest was fetched for that upstream repository
    tags/<tag-key>.json           {"name", "tag", "digest", "at"}: last resolution of a tag
    tmp/                          blobs being fetched

A digest is served for a repository only once the upstream served it *for that repository*
(a link), so one repository's cached content never leaks to a client asking through another.
``max_size`` bounds the blobs by least-recent use; a blob being served is pinned and never
evicted.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import time
from collections import Counter
from pathlib import Path
from typing import Any, NamedTuple

from ..errors import ConfigError


def _key(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()


class CachedManifest(NamedTuple):
    raw: bytes
    media_type: str
    digest: str


class Store:
    """Blobs, manifests, links and tags on disk. Several processes (``--workers``) may share
    one store: a blob's file mtime is its LRU clock, a process serving a blob holds a shared
    ``flock`` on it, and eviction only removes blobs it can lock exclusively."""

    def __init__(self, root: Path, max_size: int | None = None, *, sweep: bool = True) -> None:
        self.root = root
        self.max_size = max_size
        self.evictions = 0
        try:
            for sub in ("blobs/sha256", "manifests/sha256", "links", "tags", "tmp"):
                (root / sub).mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError as e:
            raise ConfigError(f"cannot create the cache directory {root}: {e.strerror}",
                              fix="pass --cache-dir to a writable directory") from None
        if sweep:  # partial fetches and locks of a previous run (before any worker starts)
            for stale in (root / "tmp").iterdir():
                stale.unlink(missing_ok=True)
        self._pins: Counter[str] = Counter()
        self.total = self._scan()[1]

    # --- paths ---

    def blob_path(self, digest: str) -> Path:
        return self.root / "blobs" / "sha256" / digest.split(":", 1)[1]

    def tmp_path(self) -> Path:
        return self.root / "tmp" / f"blob-{os.getpid()}-{os.urandom(8).hex()}"

    def lock_path(self, digest: str) -> Path:
        """Held (``flock``) by the one process fetching ``digest`` from upstream."""
        return self.root / "tmp" / f"{digest.split(':', 1)[1]}.lock"

    # --- links ---

    def _link(self, name: str, digest: str) -> Path:
        return self.root / "links" / _key(name) / digest.split(":", 1)[1]

    def linked(self, name: str, digest: str) -> bool:
        return self._link(name, digest).exists()

    def link(self, name: str, digest: str) -> None:
        path = self._link(name, digest)
        path.parent.mkdir(exist_ok=True)
        path.touch()

    # --- blobs ---

    def has_blob(self, digest: str) -> int | None:
        """The blob's size if it is stored."""
        try:
            return self.blob_path(digest).stat().st_size
        except OSError:
            return None

    def touch(self, digest: str) -> None:
        """Mark ``digest`` as just used (its mtime is the LRU clock)."""
        with contextlib.suppress(OSError):
            os.utime(self.blob_path(digest))

    def open_shared(self, digest: str) -> int | None:
        """An fd on the stored blob holding a shared lock (eviction skips it), or None when
        it is gone. Close the fd to release."""
        path = self.blob_path(digest)
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError:
            return None
        fcntl.flock(fd, fcntl.LOCK_SH)
        try:
            st = os.fstat(fd)
            if st.st_nlink == 0 or st.st_ino != path.stat().st_ino:
                raise FileNotFoundError(path)
        except OSError:
            os.close(fd)
            return None
        return fd

    def pin(self, digest: str) -> None:
        self._pins[digest.split(":", 1)[1]] += 1

    def unpin(self, digest: str) -> None:
        hexd = digest.split(":", 1)[1]
        self._pins[hexd] -= 1
        if self._pins[hexd] <= 0:
            del self._pins[hexd]

    def commit_blob(self, tmp: Path, digest: str, size: int) -> Path:
        """Move a verified blob into place (thread-safe: a rename)."""
        final = self.blob_path(digest)
        os.replace(tmp, final)
        return final

    def _scan(self) -> tuple[list[tuple[float, str, int]], int]:
        entries = []
        with os.scandir(self.root / "blobs" / "sha256") as it:
            for e in it:
                with contextlib.suppress(OSError):
                    st = e.stat()
                    entries.append((st.st_mtime, e.name, st.st_size))
        return sorted(entries), sum(x[2] for x in entries)

    def evict(self) -> list[str]:
        """Remove least-recently used blobs that nobody serves until the store fits
        ``max_size``."""
        if self.max_size is None or self.total <= self.max_size:
            return []
        entries, self.total = self._scan()
        removed = []
        for _, hexd, size in entries:
            if self.total <= self.max_size:
                break
            if self._pins.get(hexd):
                continue
            path = self.root / "blobs" / "sha256" / hexd
            try:
                fd = os.open(path, os.O_RDONLY)
            except OSError:
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:  # served by another process right now
                os.close(fd)
                continue
            try:
                path.unlink(missing_ok=True)
            finally:
                os.close(fd)
            self.total -= size
            self.evictions += 1
            removed.append(f"sha256:{hexd}")
        return removed

    # --- manifests ---

    def manifest(self, digest: str) -> CachedManifest | None:
        base = self.root / "manifests" / "sha256" / digest.split(":", 1)[1]
        try:
            raw = base.read_bytes()
            media_type = base.with_suffix(".type").read_text().strip()
        except OSError:
            return None
        if "sha256:" + hashlib.sha256(raw).hexdigest() != digest:
            base.unlink(missing_ok=True)  # corrupt on disk: a miss, fetched again
            return None
        return CachedManifest(raw, media_type, digest)

    def put_manifest(self, m: CachedManifest) -> None:
        base = self.root / "manifests" / "sha256" / m.digest.split(":", 1)[1]
        _atomic_write(base.with_suffix(".type"), m.media_type.encode())
        _atomic_write(base, m.raw)

    # --- tags ---

    def _tag_file(self, name: str, key: str) -> Path:
        return self.root / "tags" / f"{_key(name, key)}.json"

    def tag(self, name: str, tag: str) -> tuple[str, float] | None:
        """(digest, wall-clock time of resolution) last seen for ``name:tag``."""
        data = self._read_json(self._tag_file(name, "tag:" + tag))
        if data and isinstance(data.get("digest"), str) and isinstance(data.get("at"), float):
            return data["digest"], data["at"]
        return None

    def put_tag(self, name: str, tag: str, digest: str) -> None:
        body = {"name": name, "tag": tag, "digest": digest, "at": time.time()}
        _atomic_write(self._tag_file(name, "tag:" + tag), json.dumps(body).encode())

    def tag_list(self, name: str) -> list[str] | None:
        data = self._read_json(self._tag_file(name, "list"))
        tags = data.get("tags") if data else None
        return [str(t) for t in tags] if isinstance(tags, list) else None

    def put_tag_list(self, name: str, tags: list[str]) -> None:
        body = {"name": name, "tags": tags, "at": time.time()}
        _atomic_write(self._tag_file(name, "list"), json.dumps(body).encode())

    @staticmethod
    def _read_json(path: Path) -> dict[str, Any] | None:
        try:
            data = json.loads(path.read_bytes())
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.parent / f".{path.name}.{os.urandom(6).hex()}"
    try:
        with open(tmp, "xb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
