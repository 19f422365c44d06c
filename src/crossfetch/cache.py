"""A content-addressed package cache.

Entries are keyed by the *full* manifest digest the reference resolved to (plus the platform
when that digest is an index), hold the ``package.yaml`` stream and an ``entry.json`` with its
sha256, and are written atomically: ``entry.json`` is renamed into place last, so an entry
without it never existed. Readers verify the hash while they read
(:func:`crossfetch.client.verify_and_scan`); a corrupt entry is removed and treated as a miss.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any, NamedTuple

from .errors import ConfigError
from .oci import check_digest

IMAGE_VARIANT = "image"
PACKAGE_FILE = "package.yaml"
ENTRY_FILE = "entry.json"


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/crossfetch``, else ``~/.cache/crossfetch``."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "crossfetch"


def variant_name(platform: str | None) -> str:
    return platform.replace("/", "-") if platform else IMAGE_VARIANT


class CacheEntry(NamedTuple):
    dir: Path
    meta: dict[str, Any]

    @property
    def package_path(self) -> Path:
        return self.dir / PACKAGE_FILE

    @property
    def sha256(self) -> str:
        return str(self.meta["packageSha256"])


class Pending(NamedTuple):
    """A package being written; commit or discard it."""

    dir: Path

    @property
    def package_path(self) -> Path:
        return self.dir / PACKAGE_FILE


class Cache:
    """The on-disk cache under ``root``."""

    def __init__(self, root: str | Path | None = None) -> None:
        self.root = Path(root) if root else default_cache_dir()

    def _entry_dir(self, digest: str, variant: str) -> Path:
        algo, _, hexpart = check_digest(digest).partition(":")
        return self.root / "packages" / algo / hexpart / variant

    def _tmp_root(self) -> Path:
        tmp = self.root / "tmp"
        try:
            tmp.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise ConfigError(f"cannot create cache directory {tmp}: {e.strerror}",
                              fix="pass --cache-dir to a writable directory") from None
        return tmp

    # --- read ---

    def lookup(self, digest: str, platform: str | None = None) -> CacheEntry | None:
        """The entry for ``digest`` (as an image, else for ``platform`` of an index), unverified:
        callers check :attr:`CacheEntry.sha256` while reading the package."""
        for variant in (IMAGE_VARIANT, variant_name(platform or "linux/amd64")):
            d = self._entry_dir(digest, variant)
            try:
                meta = json.loads((d / ENTRY_FILE).read_text())
            except (OSError, ValueError):
                continue
            # A record without the hash to verify against is as good as no record.
            if not isinstance(meta, dict) or not isinstance(meta.get("packageSha256"), str):
                continue
            if (d / PACKAGE_FILE).is_file():
                return CacheEntry(d, meta)
        return None

    def remove(self, entry: CacheEntry) -> None:
        _rmtree(entry.dir)

    # --- write ---

    def begin(self) -> Pending:
        return Pending(_mkdtemp(self._tmp_root(), "pull-"))

    def discard(self, pending: Pending) -> None:
        _rmtree(pending.dir)

    def commit(self, pending: Pending, digest: str, variant: str, meta: dict[str, Any]
               ) -> CacheEntry:
        """Move a finished package into place atomically."""
        final = self._entry_dir(digest, variant)
        final.parent.mkdir(parents=True, exist_ok=True)
        meta = {**meta, "digest": digest, "variant": variant, "storedAt": int(time.time())}
        (pending.dir / ENTRY_FILE).write_text(json.dumps(meta, indent=1, sort_keys=True))
        if final.exists():
            # Replace: move the old one aside first so readers never see a half entry.
            trash = _mkdtemp(self._tmp_root(), "old-")
            os.replace(final, trash / "e")
            _rmtree(trash)
        os.replace(pending.dir, final)
        return CacheEntry(final, meta)

    # --- tags (only for --pull-policy Never with a tag) ---

    def _tag_file(self, name: str) -> Path:
        return self.root / "tags" / (hashlib.sha256(name.encode()).hexdigest() + ".json")

    def remember_tag(self, name: str, digest: str) -> None:
        path = self._tag_file(name)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.parent / f".{path.name}.{os.urandom(6).hex()}"
        tmp.write_text(json.dumps({"reference": name, "digest": digest, "at": int(time.time())}))
        os.replace(tmp, path)

    def recall_tag(self, name: str) -> str | None:
        try:
            data = json.loads(self._tag_file(name).read_text())
            return check_digest(str(data["digest"]))
        except Exception:  # unreadable, not JSON, wrong shape, bad digest: nothing remembered
            return None


def _mkdtemp(parent: Path, prefix: str) -> Path:
    """A new private directory (``tempfile`` and its imports are not worth the start-up)."""
    path = parent / f"{prefix}{os.getpid()}-{os.urandom(6).hex()}"
    path.mkdir(mode=0o700)
    return path


def _rmtree(path: Path) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)
