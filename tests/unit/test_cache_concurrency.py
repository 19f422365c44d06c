"""The cache under concurrent writers, readers, removers and crashes (real processes, threads
and flocks; no registry: the network side is in tests/integration/test_cache_concurrency.py)."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from crossfetch.cache import Cache, CacheEntry
from crossfetch.client import verify_and_scan
from crossfetch.oci import digest_of
from crossfetch.xpkg import PackageScanner

META = b"---\napiVersion: meta.pkg.crossplane.io/v1\nkind: Function\nmetadata:\n  name: f\n"
D = digest_of(b"manifest")


def commit(cache: Cache, data: bytes = META, digest: str = D) -> CacheEntry:
    pending = cache.begin()
    pending.package_path.write_bytes(data)
    return cache.commit(pending, digest, "image",
                        {"packageSha256": hashlib.sha256(data).hexdigest()})


def leftovers(root: Path) -> list[str]:
    tmp = root / "tmp"
    return sorted(os.listdir(tmp)) if tmp.exists() else []


def valid(entry: CacheEntry | None) -> bool:
    if entry is None:
        return False
    verify_and_scan(entry.package_path, entry.sha256, PackageScanner())
    return True


def test_threads_committing_and_reading_one_digest_never_fail(tmp_path: Path) -> None:
    cache = Cache(tmp_path)

    def work(i: int) -> bytes:
        entry = commit(cache) if i % 2 else (cache.lookup(D) or commit(cache))
        try:
            return entry.package_path.read_bytes()
        finally:
            entry.release()

    with ThreadPoolExecutor(64) as pool:
        got = list(pool.map(work, range(300)))
    assert got == [META] * 300
    assert leftovers(tmp_path) == []
    assert len(cache.entries()) == 1


WORKER = """
import hashlib, sys
from crossfetch.cache import Cache
root, rounds = sys.argv[1], int(sys.argv[2])
meta = b"---\\napiVersion: meta.pkg.crossplane.io/v1\\nkind: Function\\nmetadata:\\n  name: f\\n"
for r in range(rounds):
    digest = "sha256:" + hashlib.sha256(b"round %d" % r).hexdigest()
    cache = Cache(root)
    p = cache.begin()
    p.package_path.write_bytes(meta)
    e = cache.commit(p, digest, "image", {"packageSha256": hashlib.sha256(meta).hexdigest()})
    if r % 3 == 0:  # a concurrent remover: prune everything no one holds
        Cache(root).prune(0)
    assert e.package_path.read_bytes() == meta  # held: still there
    e.release()
print("ok")
"""


def test_processes_committing_and_pruning_the_same_entries(tmp_path: Path) -> None:
    procs = [subprocess.Popen([sys.executable, "-c", WORKER, str(tmp_path), "20"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(8)]
    results = [p.communicate(timeout=120) for p in procs]
    failures = [err for p, (out, err) in zip(procs, results, strict=True)
                if p.returncode != 0 or out.strip() != "ok"]
    assert failures == []
    assert leftovers(tmp_path) == []


def test_a_leased_entry_survives_prune_and_concurrent_commits(tmp_path: Path) -> None:
    cache = Cache(tmp_path)
    held = commit(cache)
    stop = threading.Event()
    errors: list[BaseException] = []

    def churn() -> None:
        other = Cache(tmp_path)
        while not stop.is_set():
            try:
                commit(other).release()
                other.prune(0)
            except BaseException as e:  # collected for the assertion
                errors.append(e)
                return

    threads = [threading.Thread(target=churn) for _ in range(4)]
    for t in threads:
        t.start()
    for _ in range(200):
        assert held.package_path.read_bytes() == META
    stop.set()
    for t in threads:
        t.join()
    assert errors == []
    r = cache.prune(0)
    assert [e.dir for e in r.in_use] == [held.dir]
    held.release()
    r = cache.prune(0)
    assert [e.dir for e in r.removed] == [held.dir] and cache.entries() == []
    assert leftovers(tmp_path) == []


def test_corrupt_entry_is_replaced_and_remove_tolerates_a_concurrent_remover(tmp_path: Path
                                                                              ) -> None:
    cache = Cache(tmp_path)
    first = commit(cache)
    first.package_path.write_bytes(b"garbage")
    again = cache.lookup(D)
    assert again is not None
    cache.remove(again)
    cache.remove(again)  # already gone: fine
    assert cache.lookup(D) is None
    fresh = commit(cache)
    assert valid(fresh)
    cache.remove(first)  # a stale handle must not remove the fresh entry
    assert valid(cache.lookup(D))


# -- crash leftovers -------------------------------------------------------------------------


def dead_pid() -> int:
    r = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                       capture_output=True, text=True, check=True)
    return int(r.stdout)


def test_leftovers_of_dead_processes_are_swept_live_ones_kept(tmp_path: Path) -> None:
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    pid = dead_pid()
    for name in (f"pull-{pid}-aa", f"old-{pid}-bb"):
        (tmp / name).mkdir()
        (tmp / name / "package.yaml").write_bytes(b"partial")
    # A live process holding its pending directory's lock.
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys\nfrom crossfetch.cache import Cache\n"
         f"p = Cache({str(tmp_path)!r}).begin()\nprint(p.dir.name, flush=True)\n"
         "sys.stdin.read()"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None
        live = holder.stdout.readline().strip()
        assert leftovers(tmp_path) == sorted([live, f"pull-{pid}-aa", f"old-{pid}-bb"]) or \
            live in leftovers(tmp_path)
        commit(Cache(tmp_path)).release()  # the next run sweeps
        assert leftovers(tmp_path) == [live]
    finally:
        holder.communicate("")
    # Now its owner is dead (it never cleaned up: as after a kill -9).
    assert Cache(tmp_path).sweep() == 1 and leftovers(tmp_path) == []


def test_pid_reuse_does_not_keep_a_leftover_forever(tmp_path: Path) -> None:
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    d = tmp / f"pull-{os.getpid()}-cc"  # "our" pid, but no one holds the lock
    d.mkdir()
    assert Cache(tmp_path).sweep() == 0  # young: may be a writer between mkdir and flock
    os.utime(d, (0, 0))
    assert Cache(tmp_path).sweep() == 1


# -- size bound ------------------------------------------------------------------------------


def test_lru_eviction_keeps_the_recently_used(tmp_path: Path) -> None:
    cache = Cache(tmp_path)
    entries = []
    for i in range(3):
        e = commit(cache, META + b"#" * 1000, digest_of(b"m%d" % i))
        e.release()
        os.utime(e.dir / "entry.json", (1000 + i, 1000 + i))
        entries.append(e)
    hit = cache.lookup(entries[0].meta["digest"])  # a use makes it the most recent
    assert hit is not None
    hit.release()
    r = cache.prune(max(e.size for e in cache.entries()))  # room for one
    assert sorted(e.dir for e in r.removed) == sorted([entries[1].dir, entries[2].dir])
    assert [e.dir for e in cache.entries()] == [entries[0].dir]


def test_commit_bounds_the_cache(tmp_path: Path) -> None:
    cache = Cache(tmp_path, max_size=1500)
    for i in range(4):
        commit(cache, META + b"#" * 1000, digest_of(b"n%d" % i)).release()
    assert len(cache.entries()) == 1


def test_max_size_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CROSSFETCH_CACHE_MAX_SIZE", "2GiB")
    assert Cache(tmp_path).max_size == 2 * 1024**3
    monkeypatch.setenv("CROSSFETCH_CACHE_MAX_SIZE", "lots")
    from crossfetch.errors import UsageError

    cache = Cache(tmp_path)  # only what needs the bound fails
    with pytest.raises(UsageError, match="CROSSFETCH_CACHE_MAX_SIZE"):
        cache.prune()


# -- read-only caches ------------------------------------------------------------------------


@pytest.fixture
def readonly_cache(tmp_path: Path) -> object:
    """A cache directory holding one entry, bind-mounted read-only (root only)."""
    src, ro = tmp_path / "src", tmp_path / "ro"
    src.mkdir()
    ro.mkdir()
    commit(Cache(src), META, digest_of(b"present")).release()
    r = subprocess.run(["mount", "--bind", str(src), str(ro)], capture_output=True, check=False)
    if r.returncode != 0:
        pytest.skip(f"cannot bind-mount here: {r.stderr.decode().strip()}")
    try:
        subprocess.run(["mount", "-o", "remount,ro,bind", str(ro)], check=True)
        yield ro
    finally:
        subprocess.run(["umount", str(ro)], check=False)


def test_readonly_cache_is_read_and_falls_back_for_writes(readonly_cache: Path) -> None:
    warnings: list[str] = []
    cache = Cache(readonly_cache, warn=warnings.append)
    hit = cache.lookup(digest_of(b"present"))
    assert valid(hit)
    assert hit is not None
    hit.release()
    e1 = commit(cache, META, digest_of(b"new1"))
    e2 = commit(cache, META, digest_of(b"new2"))
    assert valid(e1) and valid(e2)
    assert readonly_cache not in e1.dir.parents
    assert len(warnings) == 1 and str(readonly_cache) in warnings[0]
    assert "not writable" in warnings[0]
    assert cache.lookup(digest_of(b"new1")) is not None
    private = e1.dir.parents[3]
    e1.release()
    e2.release()
    cache.close()
    assert not private.exists()


def test_no_cache_is_private_and_removed_on_close(tmp_path: Path) -> None:
    cache = Cache(tmp_path / "unused", ephemeral=True)
    e = commit(cache)
    assert valid(e) and tmp_path not in e.dir.parents
    root = cache.root
    e.release()
    cache.close()
    assert not root.exists() and not (tmp_path / "unused").exists()


def test_prune_of_a_readonly_cache_is_an_error(readonly_cache: Path) -> None:
    from crossfetch.errors import ConfigError

    with pytest.raises(ConfigError, match="Read-only file system") as e:
        Cache(readonly_cache).prune(0)
    assert e.value.fix and str(readonly_cache) in e.value.message
    assert len(Cache(readonly_cache).entries()) == 1


def test_client_holds_what_it_handed_out_until_released(tmp_path: Path) -> None:
    from crossfetch.client import Client

    client = Client(cache=Cache(tmp_path))
    entry = commit(Cache(tmp_path))
    client._hold(entry)  # what pull does with the entry behind PullResult.path
    assert Cache(tmp_path).prune(0).removed == [] and entry.package_path.exists()
    client.release(entry.package_path)
    assert len(Cache(tmp_path).prune(0).removed) == 1
    again = commit(Cache(tmp_path))
    client._hold(again)
    client.close()
    assert len(Cache(tmp_path).prune(0).removed) == 1
