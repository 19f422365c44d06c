"""What Python start-up costs crossfetch: ``-X importtime`` parsed into the biggest imports."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass

_LINE = re.compile(r"^import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)")


@dataclass(frozen=True)
class Import:
    """One line of ``-X importtime``: self and cumulative microseconds, nesting depth."""

    name: str
    self_us: int
    cumulative_us: int
    depth: int


def parse_importtime(stderr: str) -> list[Import]:
    """Every import line of ``python -X importtime`` output, in order."""
    out = []
    for line in stderr.splitlines():
        m = _LINE.match(line)
        if m:
            # The name is indented by two spaces per level after one leading space.
            depth = (len(m[3]) - 1) // 2
            out.append(Import(m[4], int(m[1]), int(m[2]), depth))
    return out


def importtime(argv: Sequence[str], env: dict[str, str] | None = None) -> list[Import]:
    """Run ``argv`` (a python command line; ``-X importtime`` is added after the interpreter)
    and return its imports."""
    cmd = [argv[0], "-X", "importtime", *argv[1:]]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False, timeout=120)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stderr[-2000:]}")
    return parse_importtime(proc.stderr)


def summarize(imports: list[Import], top: int = 12) -> dict[str, object]:
    """Total import time, the top-level imports by cumulative cost, and the heaviest modules by
    self cost (where the time is actually spent)."""
    roots = [i for i in imports if i.depth == 0]
    total = sum(i.cumulative_us for i in roots)
    # Group by distribution (first dotted component) for the self-cost view.
    by_pkg: dict[str, int] = {}
    for i in imports:
        key = i.name.split(".")[0]
        by_pkg[key] = by_pkg.get(key, 0) + i.self_us
    return {
        "total_ms": round(total / 1000, 1),
        "modules": len(imports),
        "top_level": [
            {"module": i.name, "cumulative_ms": round(i.cumulative_us / 1000, 1)}
            for i in sorted(roots, key=lambda i: -i.cumulative_us)[:top]
        ],
        "self_by_package": [
            {"package": k, "self_ms": round(v / 1000, 1)}
            for k, v in sorted(by_pkg.items(), key=lambda kv: -kv[1])[:top]
        ],
    }
