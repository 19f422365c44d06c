"""A content-addressed package cache, safe for many processes and threads at once.

Layout under ``root``::

    packages/<algo>/<hex>/<variant>/   a committed entry: package.yaml + entry.json
    tmp/pull-<pid>-<random>/           a package being written
    tmp/old-<pid>-<random>/            an entry being removed
    tags/<sha256>.json                 tag -> digest, for --pull-policy Never with a tag

Entries are keyed by the *full* manifest digest the reference resolved to (plus the platform
when that digest is an index). The rules that make concurrent use safe:

- **Atomic, immutable entries.** A package is written into a private ``tmp/pull-*`` directory
  and committed by renaming the whole directory, ``entry.json`` included, into place; a
  committed entry is never modified. Readers verify the hash while they read
  (:func:`verify_and_scan`).
- **First commit wins.** A commit that finds an entry already in place verifies it and uses
  it; only a corrupt one is moved aside (a concurrent remover is tolerated) and replaced.
- **Leases.** Whoever hands out an entry's path holds a shared ``flock`` on its ``entry.json``
  (a :class:`Lease`); :meth:`Cache.prune` removes only entries nobody holds, so a path given to
  a caller stays valid until the caller releases it.
- **Leftovers of dead processes are swept.** The owner of a ``tmp/*`` directory holds an
  exclusive ``flock`` on it for its whole life. A directory whose lock is free and whose owner
  pid is gone (or that is older than a minute, in case the pid was reused) is a crash leftover.
- **Bounded size.** After each new entry the least recently used entries beyond
  ``max_size`` are removed (``CROSSFETCH_CACHE_MAX_SIZE``, default 5 GiB).
- **Read-only caches still work.** Reads come from ``root``; when ``root`` cannot be written,
  new entries go to a private temporary cache for this process, with one warning.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import re
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from .errors import ConfigError, DigestMismatch, UsageError
from .oci import check_digest

if TYPE_CHECKING:
    from .xpkg.meta import Package, PackageScanner

IMAGE_VARIANT = "image"
PACKAGE_FILE = "package.yaml"
ENTRY_FILE = "entry.json"
DEFAULT_MAX_SIZE = 5 * 1024**3
MAX_SIZE_ENV = "CROSSFETCH_CACHE_MAX_SIZE"
MAX_RECORD_BYTES = 1024 * 1024
LEFTOVER_GRACE = 60.0
"""A lock-free leftover whose owner pid is alive is swept only after this many seconds (the
pid may have been reused; a live owner takes its lock microseconds after creating it)."""
_TMP_NAME = re.compile(r"^(pull|old)-(\d+)-[0-9a-f]+$")
_COMMIT_ATTEMPTS = 16


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/crossfetch``, else ``~/.cache/crossfetch``."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "crossfetch"


def variant_name(platform: str | None) -> str:
    return platform.replace("/", "-") if platform else IMAGE_VARIANT


_UNITS = {"": 1, "b": 1, "k": 1000, "kb": 1000, "m": 1000**2, "mb": 1000**2, "g": 1000**3,
          "gb": 1000**3, "t": 1000**4, "tb": 1000**4, "ki": 1024, "kib": 1024, "mi": 1024**2,
          "mib": 1024**2, "gi": 1024**3, "gib": 1024**3, "ti": 1024**4, "tib": 1024**4}


def parse_size(text: str) -> int:
    """``500M``, ``2GiB``, ``1.5G``, ``0`` -> bytes (k/M/G are powers of 1000, Ki/Mi/Gi of
    1024); raises ValueError."""
    m = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([A-Za-z]*)\s*", text, re.ASCII)
    unit = m.group(2).lower() if m else ""
    if m is None or unit not in _UNITS:
        raise ValueError(f"{text!r} is not a size: use bytes or a number with k, M, G, T "
                         "(powers of 1000) or Ki, Mi, Gi, Ti (powers of 1024), e.g. 500M or 2GiB")
    return int(float(m.group(1)) * _UNITS[unit])


def format_size(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"  # pragma: no cover


def max_size_from_env() -> int:
    """The size bound from ``CROSSFETCH_CACHE_MAX_SIZE``, else :data:`DEFAULT_MAX_SIZE`."""
    text = os.environ.get(MAX_SIZE_ENV)
    if not text:
        return DEFAULT_MAX_SIZE
    try:
        return parse_size(text)
    except ValueError as e:
        raise UsageError(f"{MAX_SIZE_ENV}: {e}", fix=f"set {MAX_SIZE_ENV} to e.g. 5GiB, or "
                         "unset it") from None


class Lease:
    """A shared lock on a committed entry: while it is held, no prune removes the entry."""

    def __init__(self, fd: int) -> None:
        self._fd = fd

    @property
    def held(self) -> bool:
        return self._fd >= 0

    def inode(self) -> int | None:
        return os.fstat(self._fd).st_ino if self._fd >= 0 else None

    def release(self) -> None:
        fd, self._fd = self._fd, -1
        if fd >= 0:
            os.close(fd)

    def __del__(self) -> None:
        self.release()

    def __enter__(self) -> Lease:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


class CacheEntry(NamedTuple):
    dir: Path
    meta: dict[str, Any]
    lease: Lease | None = None
    """Held by whoever uses :attr:`package_path`; release it when done."""

    @property
    def package_path(self) -> Path:
        return self.dir / PACKAGE_FILE

    @property
    def sha256(self) -> str:
        return str(self.meta["packageSha256"])

    def release(self) -> None:
        if self.lease is not None:
            self.lease.release()


class EntryInfo(NamedTuple):
    """What ``cache ls`` shows about one entry."""

    dir: Path
    digest: str
    variant: str
    size: int
    last_used: float
    meta: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {"digest": self.digest, "variant": self.variant, "size": self.size,
                "lastUsed": int(self.last_used), "reference": self.meta.get("reference"),
                "kind": self.meta.get("kind"), "name": self.meta.get("name"),
                "storedAt": self.meta.get("storedAt"), "path": str(self.dir)}


class PruneResult(NamedTuple):
    removed: list[EntryInfo]
    in_use: list[EntryInfo]
    """Entries beyond the bound that were kept because someone holds them."""
    leftovers: int
    """Crash leftovers (tmp dirs of dead processes, broken entries) removed."""
    size: int
    """Total size of the entries left."""


class Pending:
    """A package being written into a private directory; commit or discard it.

    The directory stays locked (exclusive ``flock``) until then, so no sweep takes it."""

    def __init__(self, root: Path, dir: Path, fd: int) -> None:
        self.root = root
        self.dir = dir
        self._fd = fd

    @property
    def package_path(self) -> Path:
        return self.dir / PACKAGE_FILE

    def close(self) -> None:
        fd, self._fd = self._fd, -1
        if fd >= 0:
            os.close(fd)

    def __del__(self) -> None:
        self.close()


class Cache:
    """The on-disk cache under ``root`` (see the module docstring for its rules).

    ``ephemeral=True`` (``--no-cache``) uses a private temporary directory, removed by
    :meth:`close`. ``warn`` receives the one-line warning when ``root`` is not writable
    (default: printed to stderr).
    """

    def __init__(self, root: str | Path | None = None, *, max_size: int | None = None,
                 ephemeral: bool = False, warn: Callable[[str], None] | None = None) -> None:
        self.root = Path(root) if root else default_cache_dir()
        self._max_size = max_size
        self.warn = warn or _stderr_warning
        self._lock = threading.Lock()
        self._fallback: Path | None = None
        self._swept = False
        self.ephemeral = ephemeral
        if ephemeral:
            self.root = self._private_root()
            self._fallback = self.root

    @property
    def max_size(self) -> int:
        """The size bound: ``max_size``, else ``CROSSFETCH_CACHE_MAX_SIZE``, else 5 GiB
        (read when first needed, so commands that never write are not affected)."""
        if self._max_size is None:
            self._max_size = max_size_from_env()
        return self._max_size

    # --- roots ---

    def _private_root(self) -> Path:
        import tempfile

        try:
            return Path(tempfile.mkdtemp(prefix="crossfetch-cache-"))
        except OSError as e:
            raise ConfigError(
                f"no writable temporary directory for the package ({e.strerror}: "
                f"{e.filename or tempfile.gettempdir()})",
                fix="point TMPDIR or --cache-dir at a writable directory (in a Pod with "
                "readOnlyRootFilesystem, mount an emptyDir at /tmp)") from None

    def _write_root(self) -> Path:
        """``root`` if a package can be written there, else this process's private cache."""
        with self._lock:
            if self._fallback is not None:
                return self._fallback
            try:
                (self.root / "tmp").mkdir(parents=True, exist_ok=True)
                if not os.access(self.root / "tmp", os.W_OK | os.X_OK):
                    raise PermissionError(errno.EACCES, os.strerror(errno.EACCES))
            except OSError as e:
                self._fallback = self._private_root()
                self.warn(f"cache {self.root} is not writable ({e.strerror}); this run uses "
                          f"a private temporary cache (pass --cache-dir DIR, or --no-cache to "
                          "not use one)")
                return self._fallback
            return self.root

    def _read_roots(self) -> list[Path]:
        roots = [self.root]
        if self._fallback is not None and self._fallback != self.root:
            roots.append(self._fallback)
        return roots

    def close(self) -> None:
        """Remove the private temporary cache, if this cache made one."""
        with self._lock:
            fallback, self._fallback = self._fallback, None
        if fallback is not None:
            _rmtree(fallback)

    def __enter__(self) -> Cache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @staticmethod
    def _entry_dir(root: Path, digest: str, variant: str) -> Path:
        algo, _, hexpart = check_digest(digest).partition(":")
        return root / "packages" / algo / hexpart / variant

    # --- read ---

    def lookup(self, digest: str, platform: str | None = None) -> CacheEntry | None:
        """The entry for ``digest`` (as an image, else for ``platform`` of an index), with a
        lease held on it, unverified: callers check :attr:`CacheEntry.sha256` while reading
        the package, and release the lease when done."""
        for root in self._read_roots():
            for variant in (IMAGE_VARIANT, variant_name(platform or "linux/amd64")):
                entry = _open_entry(self._entry_dir(root, digest, variant))
                if isinstance(entry, CacheEntry):
                    _touch(entry.dir)
                    return entry
        return None

    def remove(self, entry: CacheEntry) -> None:
        """Drop a corrupt entry (moved aside first; a concurrent remover is fine)."""
        ino = entry.lease.inode() if entry.lease is not None else None
        entry.release()
        self._move_aside(entry.dir, expect_ino=ino)

    # --- write ---

    def begin(self) -> Pending:
        """A private directory to write a package into (see :meth:`commit`)."""
        root = self._write_root()
        if not self._swept:
            self._swept = True
            self.sweep(root)
        try:
            return _private_dir(root, "pull-")
        except OSError as e:
            raise ConfigError(f"cannot write to cache {root}: {e.strerror}",
                              fix="pass --cache-dir to a writable directory, or --no-cache"
                              ) from None

    def discard(self, pending: Pending) -> None:
        _rmtree(pending.dir)
        pending.close()

    def commit(self, pending: Pending, digest: str, variant: str, meta: dict[str, Any]
               ) -> CacheEntry:
        """Move a finished package into place atomically and return it, leased.

        If another writer committed the same entry first, that entry is verified and returned
        instead (the pending one is discarded); a corrupt one is replaced."""
        final = self._entry_dir(pending.root, digest, variant)
        meta = {**meta, "digest": digest, "variant": variant, "storedAt": int(time.time())}
        record = pending.dir / ENTRY_FILE
        record.write_text(json.dumps(meta, indent=1, sort_keys=True))
        # Lock before the rename, so no prune can take the entry between rename and lease.
        lease = Lease(_lock(record, fcntl.LOCK_SH))
        try:
            for _ in range(_COMMIT_ATTEMPTS):
                final.parent.mkdir(parents=True, exist_ok=True)
                try:
                    os.rename(pending.dir, final)
                except OSError as e:
                    if e.errno not in (errno.ENOTEMPTY, errno.EEXIST, errno.ENOENT):
                        raise
                    if e.errno == errno.ENOENT:  # a prune removed the parent meanwhile
                        continue
                else:
                    pending.close()
                    self._bound(pending.root)
                    return CacheEntry(final, meta, lease)
                existing = _open_entry(final)
                if existing is None:  # removed meanwhile: try again
                    continue
                if existing is _BROKEN:  # a directory without a usable record
                    self._move_aside(final)
                    continue
                assert isinstance(existing, CacheEntry)
                try:
                    verify_file(existing.package_path, existing.sha256)
                except (OSError, DigestMismatch):
                    self.remove(existing)  # corrupt: replace it
                    continue
                lease.release()
                self.discard(pending)
                _touch(existing.dir)
                return existing
            raise ConfigError(f"could not commit {final} after {_COMMIT_ATTEMPTS} attempts: "
                              "other processes keep replacing it",
                              fix="check what else writes to this cache directory")
        except BaseException:
            lease.release()
            raise

    def _move_aside(self, d: Path, *, expect_ino: int | None = None) -> bool:
        """Remove entry ``d``: rename it into a private tmp dir first, so no reader sees half
        an entry. Tolerates a concurrent remover, and a read-only cache (nothing happens)."""
        root = d.parents[3]
        try:
            trash = _private_dir(root, "old-")
        except OSError:
            return False
        try:
            if expect_ino is not None and os.stat(d / ENTRY_FILE).st_ino != expect_ino:
                return False  # someone already replaced it: that one is not ours to remove
            os.rename(d, trash.dir / "e")
            return True
        except OSError:
            return False
        finally:
            _rmtree(trash.dir)
            trash.close()

    # --- size bound, listing, sweeping ---

    def entries(self) -> list[EntryInfo]:
        """Every committed entry under ``root``, least recently used first."""
        out: list[EntryInfo] = []
        for d in _entry_dirs(self.root):
            try:
                rec = d / ENTRY_FILE
                st = os.stat(rec)
                with open(rec, "rb") as f:
                    meta = json.loads(f.read(MAX_RECORD_BYTES))
                size = st.st_size + os.stat(d / PACKAGE_FILE).st_size
            except (OSError, ValueError, RecursionError):
                continue
            if not isinstance(meta, dict):
                continue
            out.append(EntryInfo(d, f"{d.parent.parent.name}:{d.parent.name}", d.name, size,
                                 st.st_mtime, meta))
        out.sort(key=lambda e: e.last_used)
        return out

    def prune(self, max_size: int | None = None) -> PruneResult:
        """Sweep crash leftovers and broken entries, then remove least recently used entries
        until the cache holds at most ``max_size`` bytes (default :attr:`max_size`; ``0``
        removes every entry no one is using)."""
        limit = self.max_size if max_size is None else max_size
        leftovers = self.sweep(self.root)
        for d in _entry_dirs(self.root):
            if _open_entry(d) is _BROKEN:
                self._move_aside(d)
                leftovers += 1
        removed, in_use, stuck = self._evict(limit)
        size = sum(e.size for e in self.entries())
        if stuck:
            why = errno.EROFS if _read_only(self.root) else errno.EACCES
            raise ConfigError(f"cannot remove entries from cache {self.root}: "
                              f"{os.strerror(why)}",
                              fix="run as the cache's owner, or on a writable mount")
        return PruneResult(removed, in_use, leftovers, size)

    def _bound(self, root: Path) -> None:
        if root == self.root and not self.ephemeral:
            self._evict(self.max_size)

    def _evict(self, limit: int) -> tuple[list[EntryInfo], list[EntryInfo], bool]:
        """Remove the least recently used entries no one holds until at most ``limit`` bytes
        remain: those removed, those in use, and whether one could not be removed at all."""
        entries = self.entries()
        total = sum(e.size for e in entries)
        removed: list[EntryInfo] = []
        in_use: list[EntryInfo] = []
        stuck = False
        for e in entries:
            if total <= limit:
                break
            try:
                fd = os.open(e.dir / ENTRY_FILE, os.O_RDONLY | os.O_CLOEXEC)
            except OSError:
                continue
            try:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except OSError:
                    in_use.append(e)
                    continue
                ino = os.fstat(fd).st_ino
                gone = self._move_aside(e.dir, expect_ino=ino)
                if not gone and _inode(e.dir / ENTRY_FILE) == ino:  # still there: cannot remove
                    stuck = True
            finally:
                os.close(fd)
            if gone:
                removed.append(e)
                total -= e.size
        return removed, in_use, stuck

    def sweep(self, root: Path | None = None) -> int:
        """Remove the ``tmp/pull-*`` and ``tmp/old-*`` directories of dead processes; returns
        how many."""
        tmp = (root or self.root) / "tmp"
        n = 0
        try:
            names = os.listdir(tmp)
        except OSError:
            return 0
        for name in names:
            m = _TMP_NAME.match(name)
            if m and owner_gone(tmp / name, int(m.group(2)), directory=True):
                _rmtree(tmp / name)
                n += 1
        return n

    # --- tags (only for --pull-policy Never with a tag) ---

    @staticmethod
    def _tag_file(root: Path, name: str) -> Path:
        return root / "tags" / (hashlib.sha256(name.encode()).hexdigest() + ".json")

    def remember_tag(self, name: str, digest: str) -> None:
        path = self._tag_file(self._write_root(), name)
        tmp = path.parent / f".{path.name}.{os.getpid()}-{os.urandom(6).hex()}"
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_text(json.dumps({"reference": name, "digest": digest,
                                       "at": int(time.time())}))
            os.replace(tmp, path)
        except OSError:  # a convenience for later Never pulls: not worth failing a pull
            tmp.unlink(missing_ok=True)

    def recall_tag(self, name: str) -> str | None:
        for root in reversed(self._read_roots()):
            try:
                data = json.loads(self._tag_file(root, name).read_text())
                return check_digest(str(data["digest"]))
            except Exception:  # noqa: S112 - unreadable, not JSON, wrong shape, bad digest
                continue
        return None


_BROKEN = object()


def _open_entry(d: Path) -> CacheEntry | object | None:
    """Open the committed entry at ``d`` with a shared lock held: a :class:`CacheEntry`, None
    when there is none, or ``_BROKEN`` when ``d`` exists without a usable record."""
    rec = d / ENTRY_FILE
    for _ in range(8):
        try:
            fd = _lock(rec, fcntl.LOCK_SH)
        except FileNotFoundError:
            return _BROKEN if d.is_dir() else None
        except OSError:
            return None
        keep = False
        try:
            try:
                same = os.stat(rec).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if not same:  # removed or replaced between open and lock: look again
                continue
            with os.fdopen(os.dup(fd), "rb") as f:
                raw = f.read(MAX_RECORD_BYTES + 1)
            try:
                meta = json.loads(raw) if len(raw) <= MAX_RECORD_BYTES else None
            except (ValueError, RecursionError):
                meta = None
            # A record without the hash to verify against is as good as no record.
            if not isinstance(meta, dict) or not isinstance(meta.get("packageSha256"), str) \
                    or not (d / PACKAGE_FILE).is_file():
                return _BROKEN
            keep = True
            return CacheEntry(d, meta, Lease(fd))
        finally:
            if not keep:
                os.close(fd)
    return None


def _lock(path: Path, how: int) -> int:
    """Open ``path`` read-only and ``flock`` it (blocking); returns the descriptor."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        fcntl.flock(fd, how)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _private_dir(root: Path, prefix: str) -> Pending:
    """A new directory under ``root/tmp``, exclusively locked by this process."""
    tmp = root / "tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    path = tmp / f"{prefix}{os.getpid()}-{os.urandom(6).hex()}"
    path.mkdir(mode=0o700)
    fd = _lock(path, fcntl.LOCK_EX)
    return Pending(root, path, fd)


def owner_gone(path: Path, pid: int, *, directory: bool = False) -> bool:
    """Whether ``path``, created by process ``pid`` and locked by it for its life, is a
    leftover: its lock is free and ``pid`` is dead (or the file is older than
    :data:`LEFTOVER_GRACE`, in case ``pid`` now belongs to another process)."""
    flags = os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW | (os.O_DIRECTORY if directory else 0)
    try:
        fd = os.open(path, flags)
    except OSError:
        return False
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return False  # its owner holds it
        if not _pid_alive(pid):
            return True
        return time.time() - os.fstat(fd).st_mtime > LEFTOVER_GRACE
    finally:
        os.close(fd)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


def _entry_dirs(root: Path) -> Iterator[Path]:
    base = root / "packages"
    try:
        algos = sorted(os.listdir(base))
    except OSError:
        return
    for algo in algos:
        try:
            hexes = os.listdir(base / algo)
        except OSError:
            continue
        for h in hexes:
            try:
                variants = os.listdir(base / algo / h)
            except OSError:
                continue
            for v in variants:
                d = base / algo / h / v
                if d.is_dir() and not d.is_symlink():
                    yield d


def _inode(path: Path) -> int | None:
    try:
        return os.stat(path).st_ino
    except OSError:
        return None


def _read_only(path: Path) -> bool:
    try:
        return bool(os.statvfs(path).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def _touch(d: Path) -> None:
    """Record a use (``entry.json``'s mtime orders eviction); a read-only cache is fine."""
    with contextlib.suppress(OSError):
        os.utime(d / ENTRY_FILE)


def _stderr_warning(text: str) -> None:
    sys.stderr.write(f"warning: {text}\n")
    sys.stderr.flush()


def _rmtree(path: Path) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)


def verify_file(path: Path, sha256_hex: str, feed: Callable[[bytes], None] | None = None
                ) -> None:
    """Read a cached ``package.yaml`` once, hashing it (and handing each chunk to ``feed``);
    a hash that differs from the entry's recorded one is a
    :class:`~crossfetch.errors.DigestMismatch`."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1024 * 1024):
            h.update(chunk)
            if feed is not None:
                feed(chunk)
    if h.hexdigest() != sha256_hex.split(":")[-1]:
        raise DigestMismatch(f"cached package {path} does not match its recorded sha256",
                             fix="the cache entry was removed; pull again")


def verify_and_scan(path: Path, sha256_hex: str, scanner: PackageScanner) -> Package:
    """:func:`verify_file`, feeding ``scanner``, and the package it read."""
    verify_file(path, sha256_hex, scanner.feed)
    return scanner.finish()
