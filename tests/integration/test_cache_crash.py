"""``kill -9`` at many points of a 100 MB pull (a test, not a benchmark): never a partial
output, never an entry that reads as valid but is not, and the next run sweeps every leftover
(the cache's ``tmp/pull-*`` directory and the hidden file beside the ``-o`` target)."""

from __future__ import annotations

import glob
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from crossfetch import Cache
from crossfetch.client import verify_and_scan
from crossfetch.xpkg import PackageScanner
from tests.integration.conftest import PushedPackage
from tests.support.certs import PKI
from tests.support.registry import Registry

CLI = [sys.executable, "-m", "crossfetch.cli.main"]
# Where to kill: a fraction of package.yaml written into the cache's pending directory, or
# "start" (before any byte), or "committed" (the entry is in place, -o not yet written).
POINTS: list[float | str] = ["start", 0.0, 0.05, 0.2, 0.4, 0.6, 0.8, 0.95, "committed"]


def pending_size(cache: Path) -> int:
    sizes = []
    for f in glob.glob(str(cache / "tmp" / "pull-*" / "package.yaml")):
        try:
            sizes.append(os.stat(f).st_size)
        except FileNotFoundError:
            continue
    return max(sizes, default=-1)


def committed(cache: Path) -> bool:
    return bool(glob.glob(str(cache / "packages" / "*" / "*" / "*" / "entry.json")))


def test_kill_9_at_many_points_of_a_100mb_pull(tmp_path: Path, https_registry: Registry,
                                               pki: PKI, big_package: PushedPackage) -> None:
    want = big_package.built.package_yaml
    digest = big_package.built.manifest_digest
    cache, out = tmp_path / "cache", tmp_path / "package.yaml"
    out.write_bytes(b"the previous package.yaml\n")
    argv = [*CLI, "pull", https_registry.ref(big_package.ref), "--ca-bundle", str(pki.ca_cert),
            "--cache-dir", str(cache), "--no-node-config", "-o", str(out)]
    killed: list[str] = []
    swept_something = False
    for point in POINTS:
        if point == "committed":  # start from an empty cache so the commit happens again
            Cache(cache).prune(0)
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 120
        while proc.poll() is None and time.monotonic() < deadline:
            if point == "start":
                time.sleep(0.05)
                break
            if point == "committed" and committed(cache):
                break
            if isinstance(point, float) and pending_size(cache) >= point * len(want):
                break
            time.sleep(0.002)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert proc.stderr is not None
        proc.stderr.close()
        if proc.returncode == -signal.SIGKILL:
            killed.append(str(point))
        # Never a partial output: the old file, or (once committed) the whole new one.
        assert out.read_bytes() in (b"the previous package.yaml\n", want), point
        # Never an entry that reads as valid but is not.
        entry = Cache(cache).lookup(digest)
        if entry is not None:
            pkg = verify_and_scan(entry.package_path, entry.sha256, PackageScanner())
            assert pkg.size == len(want)
            entry.release()
        # Each run swept the leftovers of the runs killed before it: at most its own remains.
        left = os.listdir(cache / "tmp") if (cache / "tmp").exists() else []
        assert len(left) <= 1, (point, left)
        swept_something = swept_something or bool(left)
        hidden = [n for n in os.listdir(tmp_path) if n.startswith(".package.yaml.")]
        assert len(hidden) <= 1, (point, hidden)
        if point == "committed":
            out.write_bytes(b"the previous package.yaml\n")
    assert len(killed) >= 7, killed  # (a point the pull outran is not a kill)
    assert swept_something, "the kills left nothing to sweep: the test is not testing the sweep"
    assert hidden, "the last kill left no temp file beside -o: the sweep of those is untested"

    r = subprocess.run(argv, capture_output=True, text=True, timeout=300, check=False)
    assert r.returncode == 0, r.stderr
    assert out.read_bytes() == want
    assert os.listdir(cache / "tmp") == []
    assert not [n for n in os.listdir(tmp_path) if n.startswith(".package.yaml.")]
    assert [e.digest for e in Cache(cache).entries()] == [digest]
