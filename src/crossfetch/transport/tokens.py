"""Bearer tokens and registry challenges remembered for one :class:`Transport`.

An explicit field of the transport (``transport.tokens``), shared by every auth flow of it, and
light to import: :class:`~crossfetch.transport.deferred.DeferredAuth` asks it whether a host has
challenged before without loading the auth code.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .challenge import Challenge
    from .connection import URL


def host_key(url: URL) -> str:
    """``host:port`` of ``url``, lower-cased, the port explicit: the unit credentials and
    challenges belong to."""
    port = url.port or (443 if url.scheme == "https" else 80)
    host = url.host if ":" not in url.host else f"[{url.host}]"
    return f"{host.lower()}:{port}"


class TokenCache:
    """Bearer tokens per (realm, service, scopes, credential identity) until they expire,
    and the last challenge seen per registry host, shared by every flow of one Transport."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._tokens: dict[tuple[str, ...], tuple[str, float]] = {}
        self._challenges: dict[str, Challenge] = {}
        self._locks: dict[tuple[str, ...], threading.Lock] = {}
        self._lock = threading.Lock()

    def get(self, key: tuple[str, ...]) -> str | None:
        with self._lock:
            hit = self._tokens.get(key)
            if hit is None:
                return None
            if self.clock() >= hit[1]:
                del self._tokens[key]
                return None
            return hit[0]

    def put(self, key: tuple[str, ...], token: str, expires_in: float) -> None:
        # Renew a little early so a token does not expire between check and use.
        margin = min(10.0, expires_in / 10)
        with self._lock:
            self._tokens[key] = (token, self.clock() + expires_in - margin)

    def drop(self, key: tuple[str, ...]) -> None:
        with self._lock:
            self._tokens.pop(key, None)

    def lock_for(self, key: tuple[str, ...]) -> threading.Lock:
        """Held while fetching, so parallel requests ask the token server once."""
        with self._lock:
            return self._locks.setdefault(key, threading.Lock())

    def challenge(self, host: str) -> Challenge | None:
        with self._lock:
            return self._challenges.get(host)

    def remember(self, host: str, challenge: Challenge) -> None:
        with self._lock:
            self._challenges[host] = challenge

    def challenged(self, host: str) -> bool:
        """Whether ``host`` (a :func:`host_key`) has answered with a challenge before."""
        with self._lock:
            return host in self._challenges
