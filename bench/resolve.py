"""Whole-graph resolution vs Crossplane's one-node-at-a-time walk, behind 20 ms per request.

Run from the repository root: ``.venv/bin/python -m bench.resolve [--runs 3] [--delay 0.02]``.

It starts a real ``docker-registry`` on loopback, puts the test graph of
tests/support/resolve_graph.py in it (26 packages under ``cfg/platform``, three levels below
the root), and fronts it with the fault proxy (tests/support/proxy.py) adding ``--delay``
seconds to every request. The packages name the proxy, so every request pays the delay.

Measured in one process with the same :class:`crossfetch.Client` code, a fresh cache each run
(no cache hits), alternating order:

* ``walk``: ``resolve(..., crawl=False)``: packages fetched one at a time in Crossplane's order
  (list tags, pick, pull; then the next implied node), which is what a cluster does;
* ``graph --jobs N``: ``resolve(...)``: the whole graph crawled concurrently.

The critical path is the longest chain of dependent requests: the root's pull, then per level
the tag list and the dependency's pull, times the median round trip of one request measured
through the same proxy. Targets (issue 13): walk / graph >= 5, graph / critical path <= 1.5.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from crossfetch import Cache, Client
from crossfetch.cli.common import build_policy
from crossfetch.resolve import resolve
from tests.support import resolve_graph as g
from tests.support.proxy import FaultProxy, _ProxyHandler
from tests.support.registry import Registry

RESULTS = Path(__file__).resolve().parent / "results"
CPU: dict[str, list[float]] = {}


class _NoDelayHandler(_ProxyHandler):
    # http.server writes headers and body in separate sends: with Nagle on, every GET with a
    # body stalls ~40 ms on the client's delayed ACK (measured: 71 ms vs 35 ms per request),
    # which no real registry does (Go sets TCP_NODELAY). Off, the proxy adds only ``delay``.
    disable_nagle_algorithm = True


class DelayProxy(FaultProxy):
    handler = _NoDelayHandler


@contextmanager
def proxy_process(upstream: str, delay: float) -> Iterator[str]:
    """The delaying proxy in its own process (its threads must not share our GIL); yields
    its ``host:port``; stops when the block ends."""
    proc = subprocess.Popen([sys.executable, "-m", "bench.resolve", "--serve-proxy", upstream,
                             "--delay", str(delay)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        yield proc.stdout.readline().strip()
    finally:
        if proc.stdin:
            proc.stdin.close()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _serve_proxy(upstream: str, delay: float) -> int:
    with DelayProxy(upstream).start() as proxy:
        proxy.delay = delay
        print(proxy.host, flush=True)
        sys.stdin.read()  # until the parent closes our stdin
    return 0


def _client(policy_file: Path, cache: Path) -> Client:
    policy = build_policy({"config_files": [str(policy_file)], "no_node_config": True})
    return Client(policy, cache=Cache(cache))


def _once(policy_file: Path, root: str, tmp: Path, *, crawl: bool, jobs: int
          ) -> tuple[float, int, int]:
    with tempfile.TemporaryDirectory(dir=tmp) as cache, _client(policy_file, Path(cache)) as c:
        start, cpu = time.perf_counter(), time.process_time()
        res = resolve(c, root, crawl=crawl, jobs=jobs)
        elapsed = time.perf_counter() - start
        CPU.setdefault(f"{crawl}-{jobs}", []).append(time.process_time() - cpu)
    assert res.crossplane.ok and res.solution.ok, res.crossplane.messages()
    return elapsed, len(res.crossplane.installs), res.requests


def _round_trip(policy_file: Path, ref: str, tmp: Path, n: int = 15) -> float:
    """Median time of one manifest HEAD through the proxy, on a warm connection."""
    with _client(policy_file, tmp / "rt-cache") as c:
        c.head(ref)
        times = []
        for _ in range(n):
            start = time.perf_counter()
            c.head(ref)
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def _depth(res_doc: dict[str, Any]) -> int:
    return max(p["depth"] for p in res_doc["packages"])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--delay", type=float, default=0.020, help="seconds added per request")
    ap.add_argument("--jobs", type=int, nargs="*", default=[8, 32])
    ap.add_argument("--serve-proxy", metavar="UPSTREAM", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.serve_proxy:
        return _serve_proxy(args.serve_proxy, args.delay)

    with tempfile.TemporaryDirectory(prefix="crossfetch-bench-resolve-") as tmp_s:
        tmp = Path(tmp_s)
        with Registry(tmp / "registry").start() as registry, \
                proxy_process(registry.url, args.delay) as proxy_host:
            specs = [s for s in g.SPECS if "{P}" not in s.repo]
            g.publish(proxy_host, "unused.invalid", private_auth=("", ""), specs=specs,
                      push_to=registry.host)
            policy_file = tmp / "policy.yaml"
            policy_file.write_text(g.rewrite_policy(proxy_host))
            root = g.PLATFORM_ROOT.replace("{R}", proxy_host)
            rt = _round_trip(policy_file, root, tmp)

            with _client(policy_file, tmp / "probe") as c:
                doc = resolve(c, root).to_dict()
            depth = _depth(doc)
            # root pull (HEAD, GET manifest, GET base layer) + per level: tag list + pull
            path_requests = 3 + 4 * depth
            critical = path_requests * rt

            times: dict[str, list[float]] = {"walk": []}
            times.update({f"graph-j{j}": [] for j in args.jobs})
            info: dict[str, tuple[int, int]] = {}
            for r in range(args.runs):
                order = list(times)
                if r % 2:
                    order.reverse()
                for name in order:
                    crawl = name != "walk"
                    jobs = int(name.split("-j")[1]) if crawl else 1
                    elapsed, packages, requests = _once(policy_file, root, tmp, crawl=crawl,
                                                        jobs=jobs)
                    times[name].append(elapsed)
                    info[name] = (packages, requests)

    med = {k: statistics.median(v) for k, v in times.items()}
    cpu = {k: statistics.median(v) for k, v in CPU.items()}
    out: dict[str, Any] = {
        "delay_s": args.delay, "round_trip_s": rt, "depth": depth,
        "packages": info["walk"][0], "critical_path_requests": path_requests,
        "critical_path_s": critical, "runs": args.runs,
        "median_s": med, "all_s": times,
        "requests": {k: v[1] for k, v in info.items()},
        "client_cpu_s": cpu,
    }
    ok = True
    print(f"graph: {out['packages']} packages, depth {depth}; one request through the proxy: "
          f"{rt * 1000:.1f} ms; critical path {path_requests} requests = {critical:.3f} s; "
          f"client CPU per resolve {max(cpu.values()):.2f} s")
    print(f"{'mode':<12} {'median s':>9} {'walk/x':>7} {'x/critical':>10} {'fetches':>8}")
    for name, m in med.items():
        speedup = med["walk"] / m
        vs_crit = m / critical
        print(f"{name:<12} {m:9.3f} {speedup:7.2f} {vs_crit:10.2f} {info[name][1]:8d}")
        if name != "walk":
            out.setdefault("ratios", {})[name] = {"walk_over_graph": speedup,
                                                  "graph_over_critical": vs_crit}
    default = out["ratios"].get("graph-j8")
    if default:
        ok = default["walk_over_graph"] >= 5 and default["graph_over_critical"] <= 1.5
        print(f"targets at --jobs 8: walk/graph >= 5: {default['walk_over_graph']:.2f}; "
              f"graph/critical <= 1.5: {default['graph_over_critical']:.2f} -> "
              f"{'held' if ok else 'NOT held'}")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "resolve-latest.json").write_text(json.dumps(out, indent=2))
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
