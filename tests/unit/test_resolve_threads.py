"""resolve shares one Client across worker threads: its transport hands every thread the same
connection pool per endpoint, and a deferred keychain is built once."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

from crossfetch.policy.deferred import DeferredKeychain
from crossfetch.policy.model import Endpoint
from crossfetch.transport.session import Transport


def test_one_pool_per_endpoint_across_threads() -> None:
    transport = Transport()
    ep = Endpoint(url="http://127.0.0.1:1")
    barrier = threading.Barrier(16)

    def get(_: int) -> int:
        barrier.wait()
        return id(transport._client(ep, "http"))

    with ThreadPoolExecutor(16) as pool:
        ids = set(pool.map(get, range(16)))
    assert len(ids) == 1
    assert len(transport._clients) == 1
    transport.close()
    assert transport._clients == {}


def test_deferred_keychain_builds_once_across_threads() -> None:
    calls = []
    barrier = threading.Barrier(8)

    def build() -> None:
        calls.append(1)
        barrier.wait(timeout=0.2) if len(calls) > 1 else None

    keychain = DeferredKeychain(build)  # type: ignore[arg-type]

    def use(_: int) -> None:
        keychain.resolve("example.test")

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(use, range(8)))
    assert len(calls) == 1
