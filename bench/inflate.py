"""Inflaters on the same bytes (not a test): stdlib zlib, ISA-L (``isal``), zlib-ng (``zlib_ng``).

Usage: .venv/bin/python -m bench.inflate [--mb 100] [--runs 5]

Builds the big Provider (tests/support/packages.py ``big_provider``: a ~105 MB package.yaml in
a gzip layer, as ``crossplane xpkg build`` makes it) and inflates its base layer in one process
with each inflater the way crossfetch streams it (``decompressobj(31)``, 1 MiB output steps,
64 KiB input chunks). Every output is compared with the stdlib's. One process, one run: report
the ratios, not the absolute times (the machine may be shared).
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import statistics
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType
from typing import Any

_STEP = 1024 * 1024
_CHUNK = 65536


def _inflate(mod: ModuleType, blob: bytes) -> tuple[float, float, str]:
    pieces: list[bytes] = []
    d: Any = mod.decompressobj(31)
    t0, c0 = time.perf_counter(), time.thread_time()
    for i in range(0, len(blob), _CHUNK):
        data = blob[i:i + _CHUNK]
        while True:
            out = d.decompress(data, _STEP)
            pieces.append(out)
            data = d.unconsumed_tail
            if not data and len(out) < _STEP:
                break
    took, cpu = time.perf_counter() - t0, time.thread_time() - c0
    h = hashlib.sha256()
    for piece in pieces:  # checked outside the timed loop
        h.update(piece)
    return took, cpu, h.hexdigest()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mb", type=int, default=100)
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args(argv)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tests.support.packages import big_provider

    with tempfile.TemporaryDirectory() as tmp:
        pkg = big_provider(Path(tmp), args.mb)
    assert pkg.base_layer_digest is not None
    blob = pkg.blobs[pkg.base_layer_digest]
    names = {"zlib": "zlib", "isal": "isal.isal_zlib", "zlib-ng": "zlib_ng.zlib_ng"}
    mods: dict[str, ModuleType] = {}
    for label, name in names.items():
        try:
            mods[label] = importlib.import_module(name)
        except ImportError:
            print(f"{label}: not installed ({name})")
    times: dict[str, list[float]] = {k: [] for k in mods}
    cpus: dict[str, list[float]] = {k: [] for k in mods}
    ref = ""
    for r in range(args.runs + 1):  # round 0 is a warm-up
        order = list(mods) if r % 2 else list(reversed(mods))
        for label in order:
            t, cpu, digest = _inflate(mods[label], blob)
            ref = ref or digest
            if digest != ref:
                print(f"{label}: output differs from zlib's", file=sys.stderr)
                return 1
            if r:
                times[label].append(t)
                cpus[label].append(cpu)
    print(f"gzip layer {len(blob) / 1e6:.1f} MB -> package.yaml {len(pkg.package_yaml) / 1e6:.1f}"
          f" MB, {args.runs} runs, outputs identical")
    for kind, table in (("wall", times), ("cpu", cpus)):
        base = statistics.median(table["zlib"])
        for label, ts in table.items():
            med = statistics.median(ts)
            print(f"{kind:4} {label:8} median {med * 1000:7.1f} ms  (min {min(ts) * 1000:.1f}, "
                  f"max {max(ts) * 1000:.1f})  ratio to zlib {med / base:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
