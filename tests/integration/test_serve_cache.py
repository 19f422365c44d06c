"""The bridge's cache: single flight, broken transfers on faults, stale tags, LRU eviction.

Each test has an upstream registry of its own (fresh storage), so its access log counts only
what this bridge asked for. Clients are curl processes checking every byte by sha256.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import ssl
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.support.proxy import Fault
from tests.support.registry import Registry
from tests.support.serve import BridgeProcess, ResettingProxy, push_image

pytestmark = pytest.mark.skipif(shutil.which("curl") is None, reason="curl missing")
MB = 1024 * 1024


def plain_policy(path: Path, *hosts: str) -> Path:
    path.write_text("".join(
        "---\napiVersion: pkg.crossplane.io/v1beta1\nkind: ImageConfig\n"
        f"metadata: {{name: r{i}}}\nspec:\n  matchImages: [{{type: Prefix, prefix: '{h}/'}}]\n"
        "  registry:\n    tls: {mode: Disabled}\n" for i, h in enumerate(hosts)))
    return path


@pytest.fixture
def upstream(tmp_path: Path) -> Iterator[Registry]:
    with Registry(tmp_path / "up", storage=tmp_path / "up-data") as reg:
        yield reg


def curl_sha(bridge: BridgeProcess, path: str) -> tuple[int, str, int]:
    """(curl exit code, sha256 of what arrived, bytes) for one GET through the bridge; an
    error status is a failure too (``--fail``: a client arriving after the upstream broke may
    get a clean 503 instead of a broken 200)."""
    proc = subprocess.run(
        ["curl", "-sS", "--fail", "--cacert", str(bridge.ca), "-o", "-", bridge.url + path],
        capture_output=True, timeout=300, check=False)
    return proc.returncode, "sha256:" + hashlib.sha256(proc.stdout).hexdigest(), len(proc.stdout)


def blob_gets(reg: Registry, digest: str, since: int | None = None) -> int:
    return sum(1 for r in reg.requests(since=since)
               if r.method == "GET" and r.path.endswith(f"/blobs/{digest}"))


def cached_blobs(bridge: BridgeProcess) -> set[str]:
    d = bridge.cache_dir / "blobs" / "sha256"
    return {f"sha256:{p.name}" for p in d.iterdir()} if d.exists() else set()


def test_single_flight_50_cold_clients_one_upstream_fetch(tmp_path: Path,
                                                          upstream: Registry) -> None:
    data = os.urandom(50 * MB)
    _, (digest,) = push_image(upstream.url, "fns/big", "v1", [data])
    policy = plain_policy(tmp_path / "p.yaml", upstream.host)
    with BridgeProcess(tmp_path, [f"b/={upstream.host}/fns/"], "--config", str(policy)) as b:
        mark = upstream.mark()
        with ThreadPoolExecutor(50) as pool:
            results = list(pool.map(lambda _: curl_sha(b, f"/v2/b/big/blobs/{digest}"),
                                    range(50)))
        assert all(r == (0, digest, len(data)) for r in results), set(results)
        assert blob_gets(upstream, digest, mark) == 1
        caches = [x["cache"] for x in b.requests() if x.get("kind") == "blob"]
        assert caches.count("miss") == 1 and len(caches) == 50
        assert cached_blobs(b) == {digest}


def test_a_fetch_for_one_repository_is_joined_only_where_the_upstream_has_the_blob(
        tmp_path: Path, upstream: Registry) -> None:
    """A request for another repository while a blob is in flight is checked with the
    upstream first, as a cached blob is: the bridge serves only what the upstream serves."""
    data = os.urandom(400)
    _, (digest,) = push_image(upstream.url, "fns/has", "v1", [data])
    push_image(upstream.url, "fns/lacks", "v1", [os.urandom(100)])
    with ResettingProxy(upstream.url) as proxy:
        policy = plain_policy(tmp_path / "p.yaml", proxy.host)
        with BridgeProcess(tmp_path, [f"a/={proxy.host}/fns/"], "--config", str(policy),
                           "--min-rate", "0") as b, ThreadPoolExecutor(1) as pool:
            proxy.inject(Fault("drip-body", where="blob", path="/fns/has/", rate=200))
            slow = pool.submit(curl_sha, b, f"/v2/a/has/blobs/{digest}")  # ~2 s in flight
            deadline = time.monotonic() + 30
            while not proxy.requests_for("GET", blobs=True) and time.monotonic() < deadline:
                time.sleep(0.05)
            rc, _, n = curl_sha(b, f"/v2/a/lacks/blobs/{digest}")
            assert not slow.done()  # it was joinable: the fetch was still running
            assert rc != 0 and n == 0  # curl --fail: the upstream's 404, no bytes
            assert slow.result() == (0, digest, len(data))
            lacks = [x for x in b.requests() if "/a/lacks/" in x["path"]]
            assert [x["status"] for x in lacks] == [404]


@pytest.mark.parametrize("fault", ["corrupt", "reset"])
def test_fault_mid_stream_breaks_clients_caches_nothing_and_refetches(
        tmp_path: Path, upstream: Registry, fault: str) -> None:
    data = os.urandom(8 * MB)
    _, (digest,) = push_image(upstream.url, "fns/f", "v1", [data])
    with ResettingProxy(upstream.url) as proxy:
        policy = plain_policy(tmp_path / "p.yaml", proxy.host)
        with BridgeProcess(tmp_path, [f"f/={proxy.host}/fns/"], "--config", str(policy),
                           "--retries", "0") as b:
            if fault == "corrupt":
                proxy.corrupt_blobs = True
            else:
                proxy.reset_after = 3 * MB
            with ThreadPoolExecutor(5) as pool:
                broken = list(pool.map(lambda _: curl_sha(b, f"/v2/f/f/blobs/{digest}"),
                                       range(5)))
            for rc, got, n in broken:
                # A broken transfer: curl reports it, and never the whole, right-length body.
                assert rc != 0 and got != digest and n < len(data), (rc, n)
            assert cached_blobs(b) == set()
            # No partial file (the empty lock file of the fetch may stay).
            assert not [p for p in (b.cache_dir / "tmp").iterdir() if p.suffix != ".lock"]
            assert any(x.get("msg") == "blob fetch failed; nothing cached"
                       for x in b.log_lines())
            aborted = [x for x in b.requests() if x.get("aborted")]
            assert aborted and {x["status"] for x in aborted} == {499}
            assert all(x["status"] in (499, 503) for x in b.requests() if x["kind"] == "blob")
            # One JSON object per line, even for broken transfers (no traceback).
            assert all(line.startswith("{") for line in b.log_path.read_text().splitlines())
            proxy.corrupt_blobs = False
            proxy.reset_after = None
            before = len(proxy.requests_for("GET", blobs=True))
            assert curl_sha(b, f"/v2/f/f/blobs/{digest}") == (0, digest, len(data))
            assert len(proxy.requests_for("GET", blobs=True)) == before + 1
            assert cached_blobs(b) == {digest}


def test_tags_reresolved_after_ttl_and_stale_while_down(tmp_path: Path,
                                                        upstream: Registry) -> None:
    d1, (l1,) = push_image(upstream.url, "fns/t", "v1", [b"one" * 1000])
    accept = {"Accept": "application/vnd.oci.image.manifest.v1+json"}
    with ResettingProxy(upstream.url) as proxy:
        policy = plain_policy(tmp_path / "p.yaml", proxy.host)
        with BridgeProcess(tmp_path, [f"t/={proxy.host}/fns/"], "--config", str(policy),
                           "--retries", "0", "--tag-ttl", "2s") as b:
            path = "/v2/t/t/manifests/v1"
            assert b.get(path, headers=accept)[1]["Docker-Content-Digest"] == d1
            assert b.get(f"/v2/t/t/blobs/{l1}")[0] == 200
            resolves = len(proxy.requests_for("HEAD"))
            assert b.get(path, headers=accept)[1]["Docker-Content-Digest"] == d1
            assert len(proxy.requests_for("HEAD")) == resolves  # within the TTL: no upstream
            d2, _ = push_image(upstream.url, "fns/t", "v1", [b"two" * 1000])
            time.sleep(2.2)
            assert b.get(path, headers=accept)[1]["Docker-Content-Digest"] == d2
            assert len(proxy.requests_for("HEAD")) == resolves + 1
            assert b.get("/v2/t/t/tags/list")[0] == 200
            time.sleep(2.2)
            # The upstream goes down: the last known digest and cached blobs are served.
            proxy.fail_next = [503] * 20
            status, headers, _ = b.get(path, headers=accept)
            assert status == 200 and headers["Docker-Content-Digest"] == d2
            assert b.get(f"/v2/t/t/blobs/{l1}")[0] == 200
            status, _, body = b.get("/v2/t/t/tags/list")
            assert status == 200 and b'"v1"' in body
            warnings = [x for x in b.log_lines() if x.get("level") == "warning"]
            assert any("last known digest" in x["msg"] for x in warnings)
            assert any("last known tag list" in x["msg"] for x in warnings)
            # Not found is not "down": a tag the upstream never had is not invented.
            proxy.fail_next = []
            assert b.get("/v2/t/t/manifests/v9", headers=accept)[0] == 404


def test_lru_eviction_never_removes_a_blob_being_served(tmp_path: Path,
                                                        upstream: Registry) -> None:
    a, b_, c = (os.urandom(3 * MB) for _ in range(3))
    _, (da, db, dc) = push_image(upstream.url, "fns/e", "v1", [a, b_, c])
    policy = plain_policy(tmp_path / "p.yaml", upstream.host)
    with BridgeProcess(tmp_path, [f"e/={upstream.host}/fns/"], "--config", str(policy),
                       "--cache-max-size", "7MiB") as br:
        for d in (da, db):
            assert curl_sha(br, f"/v2/e/e/blobs/{d}")[1] == d
        assert cached_blobs(br) == {da, db}
        assert curl_sha(br, f"/v2/e/e/blobs/{dc}")[1] == dc  # a (least recent) goes
        assert cached_blobs(br) == {db, dc}
        evictions = [x for x in br.log_lines() if x.get("msg", "").startswith("evicted")]
        assert [x["digest"] for x in evictions] == [da]

        # A slow client holds b (cached, oldest): while it reads, fetching a again must not
        # evict b; the bridge evicts the unpinned c instead, and b arrives intact.
        ctx = ssl.create_default_context(cafile=str(br.ca))
        import http.client

        conn = http.client.HTTPSConnection("127.0.0.1", br.port, context=ctx, timeout=60)
        conn.request("GET", f"/v2/e/e/blobs/{db}")
        resp = conn.getresponse()
        head = resp.read(64 * 1024)
        assert curl_sha(br, f"/v2/e/e/blobs/{da}")[1] == da
        assert db in cached_blobs(br)
        rest = resp.read()
        conn.close()
        assert "sha256:" + hashlib.sha256(head + rest).hexdigest() == db
        assert len(cached_blobs(br)) <= 2


def test_workers_share_one_cache_and_one_upstream_fetch(tmp_path: Path,
                                                        upstream: Registry) -> None:
    data = os.urandom(10 * MB)
    _, (digest,) = push_image(upstream.url, "fns/w", "v1", [data])
    policy = plain_policy(tmp_path / "p.yaml", upstream.host)
    b = BridgeProcess(tmp_path, [f"w/={upstream.host}/fns/"], "--config", str(policy),
                      "--workers", "2")
    with b:
        mark = upstream.mark()
        with ThreadPoolExecutor(20) as pool:
            results = list(pool.map(lambda _: curl_sha(b, f"/v2/w/w/blobs/{digest}"),
                                    range(20)))
        assert all(r == (0, digest, len(data)) for r in results), set(results)
        assert blob_gets(upstream, digest, mark) == 1
        assert cached_blobs(b) == {digest}
        status, _, body = b.get("/metrics")
        assert status == 200
        served = sum(float(line.rsplit(" ", 1)[1]) for line in body.decode().splitlines()
                     if line.startswith("crossfetch_bridge_requests_total{")
                     and 'kind="blob"' in line)
        assert served >= 20  # summed over both workers
        proc = b.terminate()
        assert proc.wait(timeout=60) == 0
        assert sum(1 for x in b.log_lines() if x.get("msg") == "stopped") == 2
