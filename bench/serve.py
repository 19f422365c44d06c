"""``crossfetch serve`` against distribution's proxy mode (``proxy.remoteurl``), same upstream,
same machine, one run. ``bench/serve [--clients 100] [--mb 50] [--head-seconds 10]``.

Both bridges serve TLS with the same certificate (the bridge's generated one) in front of one
plain-HTTP ``docker-registry`` holding a random 50 MB blob. Scenarios:

1. warm: each bridge has the blob cached; N concurrent ``curl`` processes each read it whole;
   aggregate throughput = bytes / wall time (median of the rounds);
2. manifest HEAD by tag at C concurrent connections (``ab -k -i``): requests/s and p99;
3. cold: a fresh blob, N/10 concurrent clients on an empty cache: wall time, upstream GETs;
4. peak memory of each server (all its processes): PSS sampled every 50 ms (shared pages
   split between the processes mapping them), and the sum of the processes' VmHWM (an upper
   bound that counts pages forked workers share with their parent once per process).

The loaders (curl, ab) are C programs shared by both sides; on a 2-core machine they compete
with the servers for CPU, equally for both.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from tests.support.certs import CertPair
from tests.support.registry import Registry
from tests.support.serve import BridgeProcess, push_image

ACCEPT = "application/vnd.oci.image.manifest.v1+json"
RESULTS = Path(__file__).parent / "results"


class ProxyRegistry(Registry):
    """``docker-registry`` in pull-through cache mode for ``remoteurl``."""

    def __init__(self, workdir: Path, remoteurl: str, tls: CertPair) -> None:
        super().__init__(workdir, tls=tls)
        self.remoteurl = remoteurl

    def _config(self) -> dict[str, object]:
        cfg = super()._config()
        cfg["proxy"] = {"remoteurl": self.remoteurl}
        cfg["log"] = {"level": "error", "formatter": "json", "accesslog": {"disabled": True}}
        return cfg

    def _wait_listening(self) -> int:
        # With access and info logs off, "listening on" is not logged: take the port from
        # the socket table of the process instead.
        assert self._proc is not None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            port = _listen_port(self._proc.pid)
            if port:
                return port
            time.sleep(0.05)
        raise self._fail("did not listen")


def _listen_port(pid: int) -> int | None:
    out = subprocess.run(["ss", "-Hltnp"], capture_output=True, text=True, check=False).stdout
    for line in out.splitlines():
        if f"pid={pid}," in line:
            return int(line.split()[3].rsplit(":", 1)[1])
    return None


def vm_hwm(pid: int) -> int:
    """Peak resident set size of ``pid`` and its children in bytes (Linux VmHWM, summed:
    an upper bound, since forked workers share pages with their parent)."""
    text = Path(f"/proc/{pid}/status").read_text()
    m = re.search(r"VmHWM:\s+(\d+) kB", text)
    own = int(m.group(1)) * 1024 if m else 0
    try:
        kids = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        kids = []
    return own + sum(vm_hwm(int(k)) for k in kids)


def _tree(pid: int) -> list[int]:
    try:
        kids = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        kids = []
    return [pid, *(p for k in kids for p in _tree(int(k)))]


def pss(pid: int) -> int:
    """Proportional set size of ``pid`` and its children in bytes: shared pages (the forked
    workers share their parent's) are split among the processes that map them, not counted
    once per process as summed RSS would."""
    total = 0
    for p in _tree(pid):
        try:
            text = Path(f"/proc/{p}/smaps_rollup").read_text()
        except OSError:
            continue
        m = re.search(r"^Pss:\s+(\d+) kB", text, re.M)
        total += int(m.group(1)) * 1024 if m else 0
    return total


class PeakSampler:
    """The largest :func:`pss` of each process tree, sampled every 50 ms in a thread."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = pids
        self.peak = dict.fromkeys(pids, 0)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            for name, pid in self.pids.items():
                self.peak[name] = max(self.peak[name], pss(pid))

    def stop(self) -> dict[str, int]:
        self._stop.set()
        self._thread.join()
        return self.peak


def curl_many(url: str, ca: Path, n: int, expect: int) -> float:
    """Wall seconds for ``n`` concurrent curl downloads of ``url``; each must get ``expect``."""
    procs = []
    start = time.monotonic()
    for _ in range(n):
        procs.append(subprocess.Popen(
            ["curl", "-sS", "--cacert", str(ca), "-o", "/dev/null", "-w", "%{size_download}",
             url], stdout=subprocess.PIPE, stderr=subprocess.PIPE))
    sizes = []
    for p in procs:
        out, err = p.communicate(timeout=600)
        if p.returncode != 0:
            raise RuntimeError(f"curl {url}: {err.decode()}")
        sizes.append(int(out))
    elapsed = time.monotonic() - start
    if any(s != expect for s in sizes):
        raise RuntimeError(f"short downloads from {url}: {sorted(set(sizes))}")
    return elapsed


def ab_heads(url: str, seconds: int, c: int) -> dict[str, float]:
    """``ab -k -i`` for ``seconds``: requests/s and latency percentiles for HEAD requests."""
    out = subprocess.run(["ab", "-q", "-k", "-i", "-t", str(seconds), "-n", "10000000",
                          "-c", str(c), "-H",
                          f"Accept: {ACCEPT}", url], capture_output=True, text=True,
                         timeout=600, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"ab {url}: {out.stderr}")
    text = out.stdout
    rps = float(re.search(r"Requests per second:\s+([\d.]+)", text).group(1))  # type: ignore[union-attr]
    failed = int(re.search(r"Failed requests:\s+(\d+)", text).group(1))  # type: ignore[union-attr]
    non2xx = re.search(r"Non-2xx responses:\s+(\d+)", text)
    pct = {int(a): float(b) for a, b in re.findall(r"^\s+(\d+)%\s+(\d+)", text, re.M)}
    if failed or non2xx:
        raise RuntimeError(f"ab {url}: {failed} failed, {non2xx.group(1) if non2xx else 0} "
                           f"non-2xx\n{text}")
    return {"rps": rps, "p50_ms": pct.get(50, 0.0), "p99_ms": pct.get(99, 0.0),
            "max_ms": pct.get(100, 0.0)}


def _progress(msg: str) -> None:
    print(f"bench/serve: {msg}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="bench/serve", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clients", type=int, default=100)
    ap.add_argument("--mb", type=int, default=50)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--head-seconds", type=int, default=10)
    ap.add_argument("--head-clients", type=int, default=200)
    ap.add_argument("--workers", type=int, default=1,
                    help="crossfetch serve --workers (default 1, the server's default)")
    args = ap.parse_args(argv)
    # SIGTERM unwinds like Ctrl-C, so the servers this run started are stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    work = Path(tempfile.mkdtemp(prefix="crossfetch-bench-serve-"))
    result: dict[str, Any] = {"time": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                              "clients": args.clients, "mb": args.mb, "rounds": args.rounds,
                              "workers": args.workers, "cpus": os.cpu_count(),
                              "loadavg_before": os.getloadavg()}
    size = args.mb * 1024 * 1024
    with Registry(work / "up") as up:
        _, (warm_blob,) = push_image(up.url, "fns/big", "v1", [os.urandom(size)])
        _, (cold_a, cold_b) = push_image(up.url, "fns/cold", "v1",
                                         [os.urandom(size), os.urandom(size)])
        policy = work / "policy.yaml"
        policy.write_text("apiVersion: pkg.crossplane.io/v1beta1\nkind: ImageConfig\n"
                          "metadata: {name: up}\nspec:\n  matchImages: [{type: Prefix, "
                          f"prefix: '{up.host}/'}}]\n  registry:\n    tls: {{mode: Disabled}}\n")
        bridge = BridgeProcess(work, [f"b/={up.host}/"], "--config", str(policy),
                               "--tag-ttl", "5m", "--workers", str(args.workers),
                               hostnames=("127.0.0.1",))
        with bridge:
            tls = CertPair(cert=bridge.state_dir / "server.crt",
                           key=bridge.state_dir / "server.key")
            with ProxyRegistry(work / "proxy", up.url, tls) as proxy:
                ca = bridge.ca
                assert proxy._proc is not None
                pids = {"crossfetch": bridge.pid, "distribution": proxy._proc.pid}
                sampler = PeakSampler(pids)
                urls = {"crossfetch": f"{bridge.url}/v2/b/fns", "distribution":
                        f"https://{proxy.host}/v2/fns"}
                # Cold first (both caches empty): N/10 concurrent clients on a fresh blob.
                cold_n = max(1, args.clients // 10)
                cold: dict[str, Any] = {}
                for name, blob in (("crossfetch", cold_a), ("distribution", cold_b)):
                    mark = up.mark()
                    t = curl_many(f"{urls[name]}/cold/blobs/{blob}", ca, cold_n, size)
                    gets = sum(1 for r in up.requests(since=mark)
                               if r.method == "GET" and r.path.endswith(blob))
                    cold[name] = {"seconds": round(t, 3), "upstream_gets": gets,
                                  "clients": cold_n}
                result["cold"] = cold
                _progress(f"cold: {cold}")
                # Warm: fill both caches, then rounds of N concurrent full reads.
                for name in urls:
                    curl_many(f"{urls[name]}/big/blobs/{warm_blob}", ca, 1, size)
                warm: dict[str, list[float]] = {"crossfetch": [], "distribution": []}
                for i in range(args.rounds):
                    order = list(urls) if i % 2 == 0 else list(reversed(urls))
                    for name in order:
                        t = curl_many(f"{urls[name]}/big/blobs/{warm_blob}", ca, args.clients,
                                      size)
                        warm[name].append(args.clients * size / t / 1e6)
                        _progress(f"warm {name}: {warm[name][-1]:.1f} MB/s")
                result["warm_MBps"] = {k: [round(x, 1) for x in v] for k, v in warm.items()}
                med = {k: statistics.median(v) for k, v in warm.items()}
                result["warm_median_MBps"] = {k: round(v, 1) for k, v in med.items()}
                result["warm_ratio"] = round(med["crossfetch"] / med["distribution"], 2)
                result["rss_after_warm"] = {k: vm_hwm(p) for k, p in pids.items()}
                # Manifest HEAD by tag.
                heads: dict[str, list[dict[str, float]]] = {"crossfetch": [],
                                                           "distribution": []}
                for name in urls:  # warm-up (and tag resolution)
                    ab_heads(f"{urls[name]}/big/manifests/v1", 2, 20)
                for i in range(args.rounds):
                    order = list(urls) if i % 2 == 0 else list(reversed(urls))
                    for name in order:
                        heads[name].append(ab_heads(f"{urls[name]}/big/manifests/v1",
                                                    args.head_seconds, args.head_clients))
                        _progress(f"HEAD {name}: {heads[name][-1]}")
                result["head"] = heads
                hmed = {k: statistics.median(x["rps"] for x in v) for k, v in heads.items()}
                result["head_median_rps"] = {k: round(v) for k, v in hmed.items()}
                result["head_median_p99_ms"] = {
                    k: statistics.median(x["p99_ms"] for x in v) for k, v in heads.items()}
                result["head_ratio"] = round(hmed["crossfetch"] / hmed["distribution"], 2)
                result["peak_rss_sum"] = {k: vm_hwm(p) for k, p in pids.items()}
                result["peak_pss"] = sampler.stop()
    result["loadavg_after"] = os.getloadavg()
    shutil.rmtree(work, ignore_errors=True)
    RESULTS.mkdir(exist_ok=True)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%d-%H%M%S")
    (RESULTS / f"serve-{stamp}.json").write_text(json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))
    targets = {
        "warm throughput >= 1.0x distribution": result["warm_ratio"] >= 1.0,
        "manifest HEAD req/s >= 1.0x distribution": result["head_ratio"] >= 1.0,
        "peak memory (PSS) < 200 MB": result["peak_pss"]["crossfetch"] < 200 * 1000 * 1000,
    }
    for what, ok in targets.items():
        print(f"{'holds' if ok else 'FAILS'}: {what}")
    return 0 if all(targets.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
