"""Timing and peak memory of whole processes, and the statistics the report uses.

Every tool is measured the same way: wall and CPU time by ``hyperfine`` (warm-up, several runs,
JSON export), and peak RSS by extra untimed runs under GNU time (``/usr/bin/time -f %M``)
wrapped around the command. Not ``wait4``'s ``ru_maxrss``: Linux folds the *parent's* high-water RSS
into a child at exec (the old mm's hiwater goes into the signal struct), so a benchmark parent
holding 300 MB of built packages would make every tool look 300 MB large. GNU time is a 1 MB
parent. For a shell pipeline, ``%M`` is that of its largest member.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Sequence
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
    """All runs of one tool in one scenario: hyperfine's times, GNU time's peak RSS."""

    tool: str
    argv: list[str]
    times: list[float] = field(default_factory=list)  # seconds, one per hyperfine run
    mean_cpu_s: float = 0.0  # hyperfine's mean user + system time
    rss: list[Sample] = field(default_factory=list)  # the untimed runs under GNU time

    @property
    def median_s(self) -> float:
        return statistics.median(self.times)

    @property
    def min_s(self) -> float:
        return min(self.times)

    @property
    def max_s(self) -> float:
        return max(self.times)

    @property
    def peak_rss_mib(self) -> float:
        return max(s.max_rss_kib for s in self.rss) / 1024

    def to_dict(self) -> dict[str, object]:
        return {
            "tool": self.tool,
            "argv": self.argv,
            "median_s": round(self.median_s, 4),
            "min_s": round(self.min_s, 4),
            "max_s": round(self.max_s, 4),
            "mean_cpu_s": round(self.mean_cpu_s, 4),
            "peak_rss_mib": round(self.peak_rss_mib, 1),
            "samples_s": [round(t, 4) for t in self.times],
        }


@dataclass(frozen=True)
class Tool:
    """A command to measure. ``reset`` is removed (``rm -rf``) before every run, untimed: fresh
    output directories and caches, so no tool gets a cache hit."""

    name: str
    argv: list[str]
    reset: Path | None = None
    stdout: Path | None = None
    env: dict[str, str] | None = None


def need_hyperfine() -> str:
    """The ``hyperfine`` binary, or exit naming the Debian package."""
    found = shutil.which("hyperfine")
    if found is None:
        raise SystemExit("bench: hyperfine is missing: apt-get install -y hyperfine "
                         "(scripts/bootstrap installs it)")
    return found


def measure(tools: Sequence[Tool], runs: int, warmup: int = 1, rss_runs: int = 1) -> list[Series]:
    """Time every tool with hyperfine (``warmup`` untimed runs, then ``runs`` timed ones, no
    shell in between, JSON export), then run each ``rss_runs`` more times under GNU time for
    peak RSS, which hyperfine does not measure. hyperfine runs one tool's runs back to back, so
    on a loaded machine compare ratios from one call only."""
    with tempfile.TemporaryDirectory(prefix="bench-hyperfine-") as tmp:
        export = Path(tmp) / "hyperfine.json"
        args = [need_hyperfine(), "-N", "--style", "none", "--warmup", str(warmup),
                "--runs", str(runs), "--export-json", str(export)]
        for t in tools:
            args += ["--prepare", shlex.join(["rm", "-rf", str(t.reset)]) if t.reset else "true"]
        for t in tools:
            args += ["-n", t.name, shlex.join(t.argv)]
        env = dict(os.environ)
        for t in tools:
            env.update(t.env or {})
        proc = subprocess.run(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True, env=env, check=False)
        if proc.returncode != 0:
            raise ToolFailed(f"hyperfine exited {proc.returncode}:\n{proc.stderr[-2000:]}")
        results = json.loads(export.read_text())["results"]
    series = []
    for t, r in zip(tools, results, strict=True):
        s = Series(t.name, t.argv, [float(x) for x in r["times"]],
                   float(r["user"]) + float(r["system"]))
        for _ in range(rss_runs):
            s.rss.append(_run_tool(t))
        series.append(s)
    return series


def _run_tool(tool: Tool) -> Sample:
    if tool.reset is not None:
        if tool.reset.is_dir():
            shutil.rmtree(tool.reset)
        else:
            tool.reset.unlink(missing_ok=True)
    return run_once(tool.argv, env=tool.env, stdout=tool.stdout)
