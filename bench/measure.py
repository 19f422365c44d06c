"""Timing and peak memory of whole processes, and the statistics the report uses.

Every tool is measured the same way: wall time around fork/exec/``os.wait4`` in this process,
CPU time from ``wait4``'s rusage, and peak RSS from GNU time (``/usr/bin/time -f %M``) wrapped
around the command. Not ``wait4``'s ``ru_maxrss``: Linux folds the *parent's* high-water RSS
into a child at exec (the old mm's hiwater goes into the signal struct), so a benchmark parent
holding 300 MB of built packages would make every tool look 300 MB large. GNU time is a 1 MB
parent. For a shell pipeline, ``%M`` is that of its largest member.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

GNU_TIME = "/usr/bin/time"


class ToolFailed(RuntimeError):
    """A measured command exited non-zero; the message carries its stderr."""


@dataclass(frozen=True)
class Sample:
    """One run of one tool."""

    seconds: float
    max_rss_kib: int
    user_s: float
    sys_s: float


def run_once(
    argv: Sequence[str],
    *,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    stdout: Path | None = None,
) -> Sample:
    """Run ``argv`` to completion and measure it; raise :class:`ToolFailed` on a non-zero exit."""
    out = open(stdout, "wb") if stdout else subprocess.DEVNULL  # noqa: SIM115 - closed below
    fd, rss_file = tempfile.mkstemp(prefix="bench-rss-")
    os.close(fd)
    try:
        start = time.perf_counter()
        proc = subprocess.Popen(
            [GNU_TIME, "-f", "%M", "-o", rss_file, *argv],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.PIPE,
            env=env,
            cwd=cwd,
        )
        # Read stderr (small) before reaping, so a chatty tool cannot block on a full pipe.
        assert proc.stderr is not None
        err = proc.stderr.read()
        _, status, usage = os.wait4(proc.pid, 0)
        elapsed = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        proc.stderr.close()
        rss_text = Path(rss_file).read_text()
    finally:
        if stdout:
            out.close()  # type: ignore[union-attr]
        os.unlink(rss_file)
    if proc.returncode != 0:
        raise ToolFailed(
            f"{' '.join(argv)} exited {proc.returncode}:\n{err.decode(errors='replace')[-2000:]}"
        )
    # The last line is %M; a line before it may be GNU time's own note.
    rss_kib = int(rss_text.strip().splitlines()[-1])
    return Sample(elapsed, rss_kib, usage.ru_utime, usage.ru_stime)


@dataclass
class Series:
    """All samples of one tool in one scenario."""

    tool: str
    argv: list[str]
    samples: list[Sample] = field(default_factory=list)

    @property
    def median_s(self) -> float:
        return statistics.median(s.seconds for s in self.samples)

    @property
    def min_s(self) -> float:
        return min(s.seconds for s in self.samples)

    @property
    def max_s(self) -> float:
        return max(s.seconds for s in self.samples)

    @property
    def peak_rss_mib(self) -> float:
        return max(s.max_rss_kib for s in self.samples) / 1024

    @property
    def median_cpu_s(self) -> float:
        return statistics.median(s.user_s + s.sys_s for s in self.samples)

    def to_dict(self) -> dict[str, object]:
        return {
            "tool": self.tool,
            "argv": self.argv,
            "median_s": round(self.median_s, 4),
            "min_s": round(self.min_s, 4),
            "max_s": round(self.max_s, 4),
            "median_cpu_s": round(self.median_cpu_s, 4),
            "peak_rss_mib": round(self.peak_rss_mib, 1),
            "samples_s": [round(s.seconds, 4) for s in self.samples],
        }


@dataclass(frozen=True)
class Tool:
    """A command to measure. ``prepare`` runs untimed before each run (fresh output dirs)."""

    name: str
    argv: list[str]
    prepare: Callable[[], None] | None = None
    stdout: Path | None = None
    env: dict[str, str] | None = None


def measure(tools: Sequence[Tool], runs: int, warmup: int = 1) -> list[Series]:
    """Run every tool ``warmup`` times untimed, then ``runs`` rounds, each round running every
    tool once, in an order rotated per round (no tool always runs first, or just after the
    same neighbour, so cache and CPU-frequency effects spread evenly)."""
    series = [Series(t.name, t.argv) for t in tools]
    for _ in range(warmup):
        for t in tools:
            _run_tool(t)
    for r in range(runs):
        order = list(range(len(tools)))
        order = order[r % len(order) :] + order[: r % len(order)]
        if r % 2:
            order.reverse()
        for i in order:
            series[i].samples.append(_run_tool(tools[i]))
    return series


def _run_tool(tool: Tool) -> Sample:
    if tool.prepare:
        tool.prepare()
    return run_once(tool.argv, env=tool.env, stdout=tool.stdout)
