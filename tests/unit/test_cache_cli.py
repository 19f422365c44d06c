"""``crossfetch cache ls|prune``: listing and bounding the package cache from the CLI."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from crossfetch.cache import Cache, parse_size
from crossfetch.oci import digest_of
from tests.support.cli import invoke

META = b"---\napiVersion: meta.pkg.crossplane.io/v1\nkind: Function\nmetadata:\n  name: f\n"


def fill(root: Path, n: int) -> list[str]:
    cache = Cache(root)
    digests = []
    for i in range(n):
        d = digest_of(b"m%d" % i)
        p = cache.begin()
        p.package_path.write_bytes(META + b"#" * 1000)
        e = cache.commit(p, d, "image", {
            "packageSha256": hashlib.sha256(META + b"#" * 1000).hexdigest(),
            "reference": f"reg.example/fns/f:v{i}", "kind": "Function", "name": "f"})
        os.utime(e.dir / "entry.json", (1000 + i, 1000 + i))
        e.release()
        digests.append(d)
    return digests


def test_ls_empty_and_full(tmp_path: Path) -> None:
    r = invoke(["cache", "ls", "--cache-dir", str(tmp_path)])
    assert r.exit_code == 0 and "no entries" in r.stdout
    digests = fill(tmp_path, 3)
    r = invoke(["cache", "ls", "--cache-dir", str(tmp_path)])
    assert r.exit_code == 0, r.output
    lines = r.stdout.splitlines()
    assert "reg.example/fns/f:v2" in lines[0] and "Function f" in lines[0]  # most recent first
    assert lines[-1].startswith("3 entries")
    d = json.loads(invoke(["cache", "ls", "--cache-dir", str(tmp_path), "-O", "json"]).stdout)
    assert d["ok"] is True and [e["digest"] for e in d["entries"]] == digests[::-1]
    assert d["size"] == sum(e["size"] for e in d["entries"])


def test_prune_to_a_size_and_to_zero(tmp_path: Path) -> None:
    digests = fill(tmp_path, 3)
    one = max(e.size for e in Cache(tmp_path).entries())
    r = invoke(["cache", "prune", "--max-size", str(one), "--cache-dir", str(tmp_path),
                "-O", "json"])
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout)
    assert [e["digest"] for e in d["removed"]] == digests[:2]  # least recently used first
    assert d["size"] == one and d["freed"] > 0
    r = invoke(["cache", "prune", "--max-size", "0", "--cache-dir", str(tmp_path)])
    assert r.exit_code == 0 and "freed" in r.stdout.splitlines()[-1]
    assert Cache(tmp_path).entries() == []


def test_prune_counts_crash_leftovers(tmp_path: Path) -> None:
    (tmp_path / "tmp" / "pull-999999999-ab").mkdir(parents=True)  # no such pid
    broken = tmp_path / "packages" / "sha256" / ("a" * 64) / "image"
    broken.mkdir(parents=True)  # an entry directory without its record
    d = json.loads(invoke(["cache", "prune", "--cache-dir", str(tmp_path), "-O", "json"]).stdout)
    assert d["leftovers"] == 2 and not broken.exists()
    assert os.listdir(tmp_path / "tmp") == []


def test_bad_size_is_a_usage_error(tmp_path: Path) -> None:
    r = invoke(["cache", "prune", "--max-size", "lots", "--cache-dir", str(tmp_path)])
    assert r.exit_code == 2 and "not a size" in r.stderr


def test_help_teaches(tmp_path: Path) -> None:
    for args in (["cache", "--help"], ["cache", "prune", "--help"], ["cache", "ls", "--help"]):
        r = invoke(args)
        assert r.exit_code == 0
        assert "crossfetch cache" in r.stdout
    assert "Examples:" in invoke(["cache", "prune", "--help"]).stdout
    assert "cache" in invoke(["--help"]).stdout


def test_parse_size() -> None:
    assert parse_size("0") == 0
    assert parse_size("500M") == 500_000_000
    assert parse_size("1.5GiB") == int(1.5 * 1024**3)
    assert parse_size("10 kib") == 10240
    for bad in ("", "-1", "1X", "1e9", "१"):
        try:
            parse_size(bad)
        except ValueError:
            continue
        raise AssertionError(bad)
