"""Blocking calls to the upstream registries, through crossfetch's policy and RegistryClient.

Each call runs on the bridge's bounded thread pool, never on the event loop. Redirects from an
upstream are followed only to the upstream's own host or to hosts named with
``--allow-redirect-host`` (object storage such as a CDN), on top of the transport's rules
(never https → http, never link-local or metadata addresses, no credentials across hosts).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, TypeVar
from urllib.parse import urlsplit

from ..errors import (
    AuthError,
    CrossfetchError,
    DigestMismatch,
    FetchError,
    HTTPStatusError,
    LimitExceeded,
    NotFound,
    PolicyRefused,
    Unauthorized,
)
from ..reference import Reference
from ..transport.session import Transport
from .store import CachedManifest

if TYPE_CHECKING:
    from ..client import Client
    from ..registry import RegistryClient
    from .metrics import Metrics

T = TypeVar("T")
MAX_CLIENTS = 1024


class BridgeTransport(Transport):
    """The policy transport, with redirects confined to the upstream and allowed hosts."""

    def __init__(self, *, allow_redirect_hosts: tuple[str, ...] = (), **kw: object) -> None:
        super().__init__(**kw)  # type: ignore[arg-type]
        self.allow_redirect_hosts = frozenset(h.lower() for h in allow_redirect_hosts)

    def check_redirect(self, src: str, target: str) -> None:  # type: ignore[override]
        Transport.check_redirect(src, target)
        s, t = urlsplit(src), urlsplit(target)
        if t.netloc.lower() == s.netloc.lower():
            return
        if (t.hostname or "").lower() in self.allow_redirect_hosts or \
                t.netloc.lower() in self.allow_redirect_hosts:
            return
        raise PolicyRefused(
            f"refusing redirect from {src} to {target}: the bridge only follows redirects to "
            "the upstream itself or to --allow-redirect-host hosts", url=src,
            cause="unsafe-redirect",
            fix=f"if {t.hostname} is the registry's blob storage, start the bridge with "
            f"--allow-redirect-host {t.hostname}")


def is_down(e: CrossfetchError) -> bool:
    """Whether ``e`` means the upstream could not answer (so stale content may be served)."""
    if isinstance(e, NotFound | Unauthorized | PolicyRefused | AuthError | DigestMismatch
                  | LimitExceeded):
        return False
    if isinstance(e, HTTPStatusError):
        return (e.status or 0) >= 500 or e.status == 429
    return isinstance(e, FetchError)


class Upstreams:
    """One RegistryClient per upstream repository, built from the bridge's policy."""

    def __init__(self, client: Client, metrics: Metrics | None = None) -> None:
        self.client = client
        self.metrics = metrics
        self._clients: OrderedDict[str, RegistryClient] = OrderedDict()
        self._lock = threading.Lock()

    def registry(self, name: str) -> RegistryClient:
        with self._lock:
            rc = self._clients.get(name)
            if rc is not None:
                self._clients.move_to_end(name)
                return rc
        rc = self.client.registry(self.client.decide(Reference.parse(f"{name}:latest")))
        with self._lock:
            self._clients[name] = rc
            while len(self._clients) > MAX_CLIENTS:
                self._clients.popitem(last=False)
        return rc

    def _timed(self, op: str, fn: Callable[[], T]) -> T:
        start = time.monotonic()
        try:
            return fn()
        except CrossfetchError as e:
            if self.metrics:
                self.metrics.upstream_errors.labels(op, e.cause).inc()
            raise
        finally:
            if self.metrics:
                self.metrics.upstream_seconds.labels(op).observe(time.monotonic() - start)

    def resolve(self, name: str, tag: str) -> str:
        """The digest ``name:tag`` points to now (HEAD, GET as fallback)."""
        return self._timed("resolve", lambda: self.registry(name).head(tag).digest)

    def manifest(self, name: str, digest: str) -> CachedManifest:
        raw, mt, dg = self._timed("manifest",
                                  lambda: self.registry(name).fetch_manifest(digest))
        return CachedManifest(raw, mt, dg)

    def open_blob(self, name: str, digest: str) -> tuple[int, Iterator[bytes]]:
        return self._timed("blob", lambda: self.registry(name).open_blob_unsized(digest))

    def stat_blob(self, name: str, digest: str) -> int:
        return self._timed("blob_head", lambda: self.registry(name).stat_blob(digest))

    def tags(self, name: str) -> list[str]:
        return self._timed("tags", lambda: self.registry(name).tags())
