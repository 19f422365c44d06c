"""Prometheus metrics of the bridge (prometheus-client, one private registry per server)."""

from __future__ import annotations

import os

from prometheus_client import CONTENT_TYPE_LATEST as CONTENT_TYPE
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

__all__ = ["CONTENT_TYPE", "Metrics"]


class Metrics:
    """Requests by route, kind, status and cache result; bytes; upstream latency and errors."""

    def __init__(self) -> None:
        # With --workers, prometheus-client's multiprocess mode (PROMETHEUS_MULTIPROC_DIR, set
        # before it was imported) sums the workers' values at each scrape.
        self.multiprocess = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "crossfetch_bridge_requests", "Requests answered, by route prefix, API kind, "
            "method, status and cache result (hit, miss, stale, shared, none).",
            ["route", "kind", "method", "status", "cache"], registry=r)
        self.response_bytes = Counter(
            "crossfetch_bridge_response_bytes", "Body bytes sent to clients.",
            ["route", "kind", "cache"], registry=r)
        self.upstream_seconds = Histogram(
            "crossfetch_bridge_upstream_seconds", "Time to the upstream's answer (for blobs: "
            "until the body starts), by operation.", ["op"], registry=r,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60))
        self.upstream_errors = Counter(
            "crossfetch_bridge_upstream_errors", "Failed upstream calls, by operation and "
            "cause.", ["op", "cause"], registry=r)
        self.upstream_bytes = Counter(
            "crossfetch_bridge_upstream_bytes", "Blob bytes fetched from upstreams.",
            registry=r)
        self.cache_bytes = Gauge("crossfetch_bridge_cache_bytes",
                                 "Bytes of blobs in the cache.", registry=r,
                                 multiprocess_mode="max")
        self.cache_evictions = Counter("crossfetch_bridge_cache_evictions",
                                       "Blobs evicted to fit --cache-max-size.", registry=r)
        self.in_flight = Gauge("crossfetch_bridge_inflight_requests",
                               "Requests being answered.", registry=r,
                               multiprocess_mode="livesum")

    def render(self) -> bytes:
        if self.multiprocess:
            from prometheus_client import multiprocess

            merged = CollectorRegistry()
            multiprocess.MultiProcessCollector(merged)  # type: ignore[no-untyped-call]
            return generate_latest(merged)
        return generate_latest(self.registry)
