"""The bridge's HTTP side on aiohttp.web: the distribution read API, health, metrics, logs.

Requests are parsed from the raw request target, never from a decoded path, and only names
under a configured route prefix reach an upstream: anything else (``..``, ``%2F``, ``@`` or
``:`` in a name, absolute-form targets, another ``Host``) is answered here without a single
upstream request. Blocking upstream calls run on bounded thread pools.

A blob missing from the cache is fetched once however many clients ask (single flight): one
thread writes it to a temporary file while its digest is checked, and every client streams
from that file as it grows. The last byte is held back until the digest is verified, so a
mismatch or an upstream failure breaks every client's transfer (never a complete 200 with
wrong bytes) and leaves nothing in the cache.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import re
import sys
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from aiohttp import web

from ..errors import (
    CrossfetchError,
    DigestMismatch,
    NotFound,
    PolicyRefused,
    Unauthorized,
)
from .config import DIGEST_RE, MAX_NAME, NAME_RE, TAG_RE, Route, ServeConfig
from .htpasswd import Htpasswd
from .metrics import CONTENT_TYPE as METRICS_TYPE
from .metrics import Metrics
from .store import CachedManifest, Store
from .upstream import Upstreams, is_down

T = TypeVar("T")
CHUNK = 256 * 1024
API_HEADER = ("Docker-Distribution-API-Version", "registry/2.0")
REALM = "crossfetch-bridge"
MANIFEST_MEMO = 1024
_PATH_RE = re.compile(r"^/v2/(?P<name>.+)/(?P<kind>manifests|blobs|tags)/(?P<ref>[^/]+)$")
_SECRET_QUERY = re.compile(r"(?i)((?:password|passwd|token|secret|signature|sig|key|"
                           r"credential|auth)[^=&]*=)[^&]*")
_USERINFO = re.compile(r"//[^/@?#]*@")


class ApiError(Exception):
    """A distribution-spec error answer."""

    def __init__(self, status: int, code: str, message: str,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.headers = headers or {}


class Aborted(Exception):
    """The client's transfer was broken on purpose (upstream failure, digest mismatch)."""


def redact_target(target: str) -> str:
    """A request target fit for logs: no userinfo, no secret-looking query values."""
    return _SECRET_QUERY.sub(r"\1REDACTED", _USERINFO.sub("//REDACTED@", target))


def upstream_error(e: CrossfetchError, unknown: str) -> ApiError:
    """Map a failed upstream call to the client's answer."""
    if isinstance(e, NotFound):
        return ApiError(404, unknown, e.message)
    if isinstance(e, Unauthorized):
        return ApiError(403, "DENIED", f"the upstream refused the bridge: {e.message}")
    if isinstance(e, PolicyRefused):
        return ApiError(403, "DENIED", e.message)
    if isinstance(e, DigestMismatch):
        return ApiError(502, "DIGEST_INVALID", e.message)
    return ApiError(503, "UNAVAILABLE", f"upstream unavailable: {e.message}")


class BlobFlight:
    """One upstream fetch of a blob, shared by every client that asks for it meanwhile."""

    def __init__(self, bridge: Bridge, name: str, digest: str) -> None:
        self.bridge = bridge
        self.name = name
        self.digest = digest
        self.loop = asyncio.get_running_loop()
        self.started: asyncio.Future[int] = self.loop.create_future()
        self.finished: asyncio.Future[Path] = self.loop.create_future()
        self.size = 0
        self.written = 0
        self.fd: int | None = None
        self.readers = 0
        self.error: BaseException | None = None
        self._pinned = False
        self._event = asyncio.Event()
        # Consumed here, so an unawaited failure is never reported as "never retrieved".
        self.finished.add_done_callback(lambda f: f.exception())
        self.started.add_done_callback(lambda f: f.exception())

    @property
    def done(self) -> bool:
        return self.finished.done()

    # --- the fetching thread ---

    def run(self) -> None:
        """Fetch, verify and store the blob (on a blob-pool thread). A lock file makes the
        fetch single across the processes sharing the cache, too."""
        store, up = self.bridge.store, self.bridge.upstreams
        tmp = store.tmp_path()
        lock = -1
        try:
            lock = os.open(store.lock_path(self.digest), os.O_RDWR | os.O_CREAT, 0o600)
            fcntl.flock(lock, fcntl.LOCK_EX)  # another process is fetching it: wait for it
            stored = store.has_blob(self.digest)
            if stored is not None:
                if not store.linked(self.name, self.digest):
                    up.stat_blob(self.name, self.digest)
                self.loop.call_soon_threadsafe(self._adopt, stored)
                return
            size, chunks = up.open_blob(self.name, self.digest)
            fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
            self.fd = fd
            self.loop.call_soon_threadsafe(self._start, size)
            written = 0
            for chunk in chunks:
                view = memoryview(chunk)
                while view:
                    n = os.write(fd, view)
                    view = view[n:]
                written += len(chunk)
                self.bridge.metrics.upstream_bytes.inc(len(chunk))
                self.loop.call_soon_threadsafe(self._progress, written)
            # Renamed into place while the lock is held; the open fd follows the file.
            path = store.commit_blob(tmp, self.digest, written)
            self.loop.call_soon_threadsafe(self._complete, path, written)
        except BaseException as e:
            tmp.unlink(missing_ok=True)
            self.loop.call_soon_threadsafe(self._fail, e)
        finally:
            if lock >= 0:
                os.close(lock)

    # --- on the loop ---

    def _notify(self) -> None:
        ev, self._event = self._event, asyncio.Event()
        ev.set()

    def _start(self, size: int) -> None:
        self.size = size
        self.started.set_result(size)

    def _progress(self, written: int) -> None:
        self.written = written
        self._notify()

    def _complete(self, path: Path, written: int) -> None:
        self.written = written
        store = self.bridge.store
        store.total += written
        store.pin(self.digest)  # until the readers of this flight are done
        self._pinned = True
        if self.fd is not None:  # other processes: being served, do not evict
            fcntl.flock(self.fd, fcntl.LOCK_SH)
        store.link(self.name, self.digest)
        self.bridge.flights.pop(self.digest, None)
        self.finished.set_result(path)
        self.bridge.after_commit()
        self._notify()
        self._release()

    def _adopt(self, size: int) -> None:
        """Another process stored the blob while this one waited for the lock."""
        self.bridge.store.link(self.name, self.digest)
        self.size = size
        self.bridge.flights.pop(self.digest, None)
        self.started.set_result(size)
        self.finished.set_result(self.bridge.store.blob_path(self.digest))
        self._notify()

    def _fail(self, e: BaseException) -> None:
        self.error = e
        self.bridge.flights.pop(self.digest, None)
        if not self.started.done():
            self.started.set_exception(e)
        if not self.finished.done():
            self.finished.set_exception(e)
        self.bridge.log_event("warning", "blob fetch failed; nothing cached", name=self.name,
                              digest=self.digest, error=str(getattr(e, "message", e)))
        self._notify()
        self._release()

    def _release(self) -> None:
        if self.readers or not self.done:
            return
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
        if self._pinned:
            self._pinned = False
            self.bridge.store.unpin(self.digest)

    def attach(self) -> bool:
        """Become a reader of the temporary file; False once the flight has let it go."""
        if self.fd is None:
            return False
        self.readers += 1
        return True

    async def stream(self, request: web.Request, resp: web.StreamResponse) -> int:
        """Send the blob to one (attached) client as it arrives; the last byte only once
        verified."""
        sent = 0
        try:
            while sent < self.size:
                event = self._event
                if self.finished.done() and self.finished.exception() is not None:
                    raise Aborted(str(self.error))
                limit = self.written if self.done else min(self.written, self.size - 1)
                if sent < limit:
                    assert self.fd is not None
                    data = os.pread(self.fd, min(CHUNK, limit - sent), sent)
                    if not data:
                        raise Aborted("short read from the cache file")
                    await resp.write(data)
                    sent += len(data)
                else:
                    await event.wait()
            if not self.done or self.finished.exception() is not None:  # an empty blob
                try:
                    await asyncio.shield(self.finished)
                except BaseException as e:
                    raise Aborted(str(e)) from None
        finally:
            self.readers -= 1
            self.maybe_release()
        return sent

    def maybe_release(self) -> None:
        if self.done:
            self._release()


class Bridge:
    """The server: routes, cache, single flights, metrics and logs."""

    def __init__(self, cfg: ServeConfig, upstreams: Upstreams, store: Store, metrics: Metrics,
                 htpasswd: Htpasswd | None = None,
                 log: Callable[[str], None] | None = None) -> None:
        self.cfg = cfg
        self.upstreams = upstreams
        self.store = store
        self.metrics = metrics
        self.htpasswd = htpasswd
        self._log = log or _stderr
        self.meta_pool = ThreadPoolExecutor(cfg.upstream_threads, "bridge-meta")
        self.blob_pool = ThreadPoolExecutor(cfg.upstream_threads, "bridge-blob")
        self.flights: dict[str, BlobFlight] = {}
        self._tags: dict[tuple[str, str], tuple[str, float]] = {}
        self._tag_flights: dict[tuple[str, str], asyncio.Future[tuple[str, str]]] = {}
        self._manifest_flights: dict[tuple[str, str], asyncio.Future[CachedManifest]] = {}
        self._manifests: OrderedDict[str, CachedManifest] = OrderedDict()
        self.ready = False
        metrics.cache_bytes.set(store.total)

    # --- plumbing ---

    def app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024)
        app.router.add_route("*", "/{tail:.*}", self.handle)
        app.on_shutdown.append(self._on_shutdown)
        return app

    async def _on_shutdown(self, app: web.Application) -> None:
        self.ready = False

    def close(self) -> None:
        self.meta_pool.shutdown(wait=False, cancel_futures=True)
        self.blob_pool.shutdown(wait=False, cancel_futures=True)

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self.meta_pool, fn, *args)

    def log_event(self, level: str, msg: str, **fields: Any) -> None:
        self._log(json.dumps({"time": _now(), "level": level, "msg": msg, **fields},
                             default=str))

    def after_commit(self) -> None:
        for digest in self.store.evict():
            self.metrics.cache_evictions.inc()
            self.log_event("info", "evicted (least recently used)", digest=digest)
        self.metrics.cache_bytes.set(self.store.total)

    # --- entry point ---

    async def handle(self, request: web.Request) -> web.StreamResponse:
        start = time.monotonic()
        info: dict[str, Any] = {"route": "", "kind": "other", "cache": "none", "user": None}
        request["info"] = info
        self.metrics.in_flight.inc()
        resp: web.StreamResponse | None = None
        status = 500
        try:
            try:
                resp = await self._dispatch(request, info)
            except ApiError as e:
                resp = _error(e)
            except CrossfetchError as e:  # a failure no mapping above expected
                resp = _error(upstream_error(e, "UNKNOWN"))
            except Exception as e:  # a bug: one JSON line and a 500, never a traceback
                self.log_event("error", "internal error", path=redact_target(request.raw_path),
                               error=f"{type(e).__name__}: {e}")
                resp = _error(ApiError(500, "UNKNOWN", "internal error (see the bridge's log)"))
            status = 499 if "aborted" in info else resp.status
            return resp
        except asyncio.CancelledError:
            status = 499
            info["aborted"] = "client went away"
            raise
        finally:
            self.metrics.in_flight.dec()
            sent = _body_length(resp)
            self.metrics.requests.labels(info["route"], info["kind"], request.method,
                                         str(status), info["cache"]).inc()
            if sent:
                self.metrics.response_bytes.labels(info["route"], info["kind"],
                                                   info["cache"]).inc(sent)
            line = {"time": _now(), "remote": request.remote, "method": request.method,
                    "path": redact_target(request.raw_path), "status": status, "bytes": sent,
                    "ms": round((time.monotonic() - start) * 1000, 2),
                    "route": info["route"] or None, "kind": info["kind"],
                    "cache": info["cache"], "user": info["user"],
                    "agent": request.headers.get("User-Agent", "")[:200]}
            if "aborted" in info:
                line["aborted"] = info["aborted"]
            self._log(json.dumps(line))

    async def _dispatch(self, request: web.Request, info: dict[str, Any]
                        ) -> web.StreamResponse:
        target = request.raw_path
        if not target.startswith("/"):
            raise ApiError(400, "UNSUPPORTED", "only origin-form request targets are served "
                           "(this is not a forward proxy)")
        path = target.split("?", 1)[0]
        if path == "/healthz":
            return web.json_response({"ok": True})
        if path == "/readyz":
            return web.json_response({"ready": self.ready}, status=200 if self.ready else 503)
        if path == "/metrics":
            return web.Response(body=self.metrics.render(),
                                headers={"Content-Type": METRICS_TYPE})
        if path != "/v2" and not path.startswith("/v2/"):
            raise ApiError(404, "NAME_UNKNOWN", "not a distribution API path")
        if request.method not in ("GET", "HEAD"):
            raise ApiError(405, "UNSUPPORTED", "this bridge is read-only: pushes and deletes "
                           "go to the upstream registry itself")
        if self.htpasswd is not None:
            user = await self.run(self.htpasswd.check, request.headers.get("Authorization"))
            if user is None:
                raise ApiError(401, "UNAUTHORIZED", "authentication required",
                               {"WWW-Authenticate": f'Basic realm="{REALM}"'})
            info["user"] = user
        if path in ("/v2", "/v2/"):
            info["kind"] = "base"
            return web.json_response({}, headers=dict([API_HEADER]))
        m = _PATH_RE.match(path)
        if not m:
            if "/blobs/uploads" in path:
                raise ApiError(405, "UNSUPPORTED", "this bridge is read-only")
            raise ApiError(404, "NAME_UNKNOWN", "not a repository path this bridge serves")
        name, kind, ref = m["name"], m["kind"], m["ref"]
        if not NAME_RE.match(name) or len(name) > MAX_NAME:
            raise ApiError(404, "NAME_INVALID" if "%" not in name else "NAME_UNKNOWN",
                           "invalid repository name")
        matched = self.cfg.match(name)
        if matched is None:
            raise ApiError(404, "NAME_UNKNOWN", f"repository {name} is not under a route of "
                           "this bridge")
        route, rest = matched
        info["route"] = route.prefix
        upstream = route.upstream_name(rest)
        if len(upstream) > MAX_NAME:
            raise ApiError(404, "NAME_INVALID", "the upstream name would exceed 255 characters")
        head = request.method == "HEAD"
        if kind == "manifests":
            info["kind"] = "manifest"
            if not (TAG_RE.match(ref) or DIGEST_RE.match(ref)):
                raise ApiError(404, "MANIFEST_UNKNOWN", "invalid tag or digest")
            return await self.manifest(request, info, upstream, ref, head)
        if kind == "blobs":
            info["kind"] = "blob"
            if ref == "uploads":
                raise ApiError(405, "UNSUPPORTED", "this bridge is read-only")
            if not DIGEST_RE.match(ref):
                raise ApiError(404, "BLOB_UNKNOWN", "invalid digest (sha256 only)")
            return await self.blob(request, info, upstream, ref, head)
        if ref != "list":
            raise ApiError(404, "NAME_UNKNOWN", "unknown tags endpoint")
        info["kind"] = "tags"
        return await self.tags(request, info, route, rest, upstream)

    # --- manifests ---

    async def resolve_tag(self, name: str, tag: str) -> tuple[str, str]:
        """(digest, cache result) for ``name:tag``: from memory while younger than the TTL,
        else from the upstream; the last known digest while the upstream is down."""
        key = (name, tag)
        known = self._tags.get(key)
        if known and time.monotonic() - known[1] < self.cfg.tag_ttl:
            return known[0], "hit"
        flight = self._tag_flights.get(key)
        if flight is not None:
            return await asyncio.shield(flight)
        flight = asyncio.get_running_loop().create_future()
        self._tag_flights[key] = flight
        try:
            try:
                digest = await self.run(self.upstreams.resolve, name, tag)
            except CrossfetchError as e:
                stale = known[0] if known else None
                if stale is None:
                    on_disk = self.store.tag(name, tag)
                    stale = on_disk[0] if on_disk else None
                if stale is None or not is_down(e):
                    raise upstream_error(e, "MANIFEST_UNKNOWN") from None
                self.log_event("warning", "upstream unavailable; serving the last known digest "
                               "of the tag", name=name, tag=tag, digest=stale, error=e.message)
                result = (stale, "stale")
            else:
                self._tags[key] = (digest, time.monotonic())
                self.store.put_tag(name, tag, digest)
                result = (digest, "revalidated" if known else "miss")
            flight.set_result(result)
            return result
        except BaseException as e:
            flight.set_exception(e)
            flight.exception()
            raise
        finally:
            self._tag_flights.pop(key, None)

    async def get_manifest(self, name: str, digest: str) -> tuple[CachedManifest, bool]:
        """(manifest, from cache) of ``name@digest``."""
        if self.store.linked(name, digest):
            m = self._manifests.get(digest) or self.store.manifest(digest)
            if m is not None:
                self._memo(m)
                return m, True
        key = (name, digest)
        flight = self._manifest_flights.get(key)
        if flight is not None:
            return await asyncio.shield(flight), False
        flight = asyncio.get_running_loop().create_future()
        self._manifest_flights[key] = flight
        try:
            try:
                m = await self.run(self.upstreams.manifest, name, digest)
            except CrossfetchError as e:
                raise upstream_error(e, "MANIFEST_UNKNOWN") from None
            self.store.put_manifest(m)
            self.store.link(name, digest)
            self._memo(m)
            flight.set_result(m)
            return m, False
        except BaseException as e:
            flight.set_exception(e)
            flight.exception()
            raise
        finally:
            self._manifest_flights.pop(key, None)

    def _memo(self, m: CachedManifest) -> None:
        self._manifests[m.digest] = m
        self._manifests.move_to_end(m.digest)
        while len(self._manifests) > MANIFEST_MEMO:
            self._manifests.popitem(last=False)

    async def manifest(self, request: web.Request, info: dict[str, Any], name: str, ref: str,
                       head: bool) -> web.StreamResponse:
        if DIGEST_RE.match(ref):
            digest, tag_result = ref, "hit"
        else:
            digest, tag_result = await self.resolve_tag(name, ref)
        m, cached = await self.get_manifest(name, digest)
        info["cache"] = tag_result if cached else ("stale" if tag_result == "stale" else "miss")
        accept = _accepted(request)
        if accept and m.media_type not in accept and "*/*" not in accept:
            raise ApiError(404, "MANIFEST_UNKNOWN",
                           f"the manifest is {m.media_type}, which the request's Accept header "
                           "does not list")
        headers = {"Content-Type": m.media_type, "Docker-Content-Digest": m.digest,
                   "ETag": f'"{m.digest}"', API_HEADER[0]: API_HEADER[1]}
        if head:
            return await _head(request, headers, len(m.raw))
        return web.Response(body=m.raw, headers=headers)

    # --- blobs ---

    async def blob(self, request: web.Request, info: dict[str, Any], name: str, digest: str,
                   head: bool) -> web.StreamResponse:
        store = self.store
        headers = {"Docker-Content-Digest": digest, "Content-Type": "application/octet-stream",
                   "Accept-Ranges": "bytes", API_HEADER[0]: API_HEADER[1]}
        size = store.has_blob(digest)
        if size is not None and not store.linked(name, digest):
            await self._vouch(name, digest)  # stored for another repository
        if size is not None:
            info["cache"] = "hit"
            store.touch(digest)
            if head:
                return await _head(request, headers, size)
            sent = await self._send_file(request, digest, headers)
            if sent is not None:
                return sent
            # Evicted by another process a moment ago: fetch it again.
        if head:
            info["cache"] = "miss"
            try:
                size = await self.run(self.upstreams.stat_blob, name, digest)
            except CrossfetchError as e:
                raise upstream_error(e, "BLOB_UNKNOWN") from None
            return await _head(request, headers, size)
        flight = self.flights.get(digest)
        if flight is not None and flight.name != name and not store.linked(name, digest):
            await self._vouch(name, digest)  # being fetched for another repository
            flight = self.flights.get(digest)
        info["cache"] = "shared" if flight else "miss"
        if flight is None:
            flight = BlobFlight(self, name, digest)
            self.flights[digest] = flight
            asyncio.get_running_loop().run_in_executor(self.blob_pool, flight.run)
        try:
            size = await asyncio.shield(flight.started)
        except CrossfetchError as e:
            raise upstream_error(e, "BLOB_UNKNOWN") from None
        except OSError as e:
            raise ApiError(503, "UNAVAILABLE", f"cache write failed: {e}") from None
        if request.headers.get("Range") or not flight.attach():
            # A range of a blob still arriving, or a flight already over: wait for it, then
            # serve from the cache.
            try:
                await asyncio.shield(flight.finished)
            except CrossfetchError as e:
                raise upstream_error(e, "BLOB_UNKNOWN") from None
            except OSError as e:
                raise ApiError(503, "UNAVAILABLE", f"cache write failed: {e}") from None
            sent = await self._send_file(request, digest, headers)
            if sent is None:
                raise ApiError(503, "UNAVAILABLE", "the blob was evicted meanwhile; retry")
            return sent
        stream = web.StreamResponse(headers=headers)
        stream.content_length = size
        try:
            await stream.prepare(request)
        except BaseException:
            flight.readers -= 1
            flight.maybe_release()
            raise
        try:
            await flight.stream(request, stream)
            await stream.write_eof()
        except Aborted as e:
            # Break the client's connection: a short body, never a complete wrong one.
            info["aborted"] = str(e)
            if request.transport is not None:
                request.transport.abort()
        except ConnectionResetError:
            info["aborted"] = "client went away"
        return stream

    async def _vouch(self, name: str, digest: str) -> None:
        """Serve ``digest`` under ``name``, known only for another repository, only if the
        upstream has it under ``name`` too (then link it there)."""
        try:
            await self.run(self.upstreams.stat_blob, name, digest)
        except CrossfetchError as e:
            raise upstream_error(e, "BLOB_UNKNOWN") from None
        self.store.link(name, digest)

    async def _send_file(self, request: web.Request, digest: str, headers: dict[str, str]
                         ) -> web.StreamResponse | None:
        """A cached blob; None if it is no longer stored. Pinned, and share-locked for other
        processes, so no eviction removes it meanwhile.

        A plain connection gets aiohttp's ``FileResponse`` (``sendfile``). Over TLS, where
        sendfile is impossible, FileResponse reads each chunk on a thread pool; reading from the
        page cache on the loop instead (``RWF_NOWAIT``, a thread only for what is not cached)
        measured 3-4x faster at 100 clients (docs/benchmarks.md).
        """
        fd = self.store.open_shared(digest)
        if fd is None:
            return None
        self.store.pin(digest)
        try:
            transport = request.transport
            if transport is not None and transport.get_extra_info("sslcontext") is None:
                resp = web.FileResponse(self.store.blob_path(digest), headers=headers)
                try:
                    await resp.prepare(request)
                except ConnectionResetError:
                    request["info"]["aborted"] = "client went away"
                return resp
            return await self._send_fd(request, fd, headers)
        finally:
            os.close(fd)
            self.store.unpin(digest)
            self.after_commit()

    async def _send_fd(self, request: web.Request, fd: int, headers: dict[str, str]
                       ) -> web.StreamResponse:
        size = os.fstat(fd).st_size
        start, stop, status = 0, size, 200
        if request.headers.get("Range"):
            try:
                rng = request.http_range
            except ValueError:
                rng = None
            first = rng.start if rng is not None else None
            if rng is None or (first is None and rng.stop is None):
                raise ApiError(416, "BLOB_UNKNOWN", "unsupported Range (one bytes range only)",
                               {"Content-Range": f"bytes */{size}"})
            if first is None:
                first = 0
            start = max(size + first, 0) if first < 0 else first
            stop = size if rng.stop is None else min(rng.stop, size)
            if start >= size or start >= stop:
                raise ApiError(416, "BLOB_UNKNOWN", "Range outside the blob",
                               {"Content-Range": f"bytes */{size}"})
            status = 206
            headers = {**headers, "Content-Range": f"bytes {start}-{stop - 1}/{size}"}
        resp = web.StreamResponse(status=status, headers=headers)
        resp.content_length = stop - start
        try:
            await resp.prepare(request)
            off = start
            while off < stop:
                data = await self._pread(fd, min(CHUNK, stop - off), off)
                if not data:
                    raise Aborted("short read from the cache file")
                await resp.write(data)
                off += len(data)
            await resp.write_eof()
        except ConnectionResetError:
            request["info"]["aborted"] = "client went away"
        except Aborted as e:
            request["info"]["aborted"] = str(e)
            if request.transport is not None:
                request.transport.abort()
        return resp

    async def _pread(self, fd: int, n: int, off: int) -> bytes | bytearray:
        """Read from the page cache without blocking the loop; on a thread otherwise."""
        buf = bytearray(n)
        try:
            got = os.preadv(fd, [buf], off, os.RWF_NOWAIT)
        except OSError:  # not cached (EAGAIN), or a filesystem without RWF_NOWAIT
            got = 0
        if got:
            return buf if got == n else buf[:got]
        return await asyncio.get_running_loop().run_in_executor(None, os.pread, fd, n, off)

    # --- tags ---

    async def tags(self, request: web.Request, info: dict[str, Any], route: Route, rest: str,
                   name: str) -> web.StreamResponse:
        q = request.rel_url.query
        n: int | None = None
        if "n" in q:
            if not q["n"].isdigit():
                raise ApiError(400, "PAGINATION_NUMBER_INVALID", "n must be a whole number")
            n = int(q["n"])
        last = q.get("last")
        try:
            tags = await self.run(self.upstreams.tags, name)
            self.store.put_tag_list(name, tags)
            info["cache"] = "miss"
        except CrossfetchError as e:
            stale = self.store.tag_list(name) if is_down(e) else None
            if stale is None:
                raise upstream_error(e, "NAME_UNKNOWN") from None
            self.log_event("warning", "upstream unavailable; serving the last known tag list",
                           name=name, error=e.message)
            tags, info["cache"] = stale, "stale"
        ordered = sorted(set(tags))
        if last:
            ordered = [t for t in ordered if t > last]
        page = ordered if n is None else ordered[:n]
        bridge_name = f"{route.prefix}{rest}"
        headers = dict([API_HEADER])
        if n is not None and len(ordered) > n and page:
            headers["Link"] = f'</v2/{bridge_name}/tags/list?n={n}&last={page[-1]}>; rel="next"'
        return web.json_response({"name": bridge_name, "tags": page}, headers=headers)


async def _head(request: web.Request, headers: dict[str, str], length: int
                ) -> web.StreamResponse:
    """A HEAD answer announcing ``length`` bytes (aiohttp sends no body for HEAD)."""
    resp = web.StreamResponse(headers=headers)
    resp.content_length = length
    await resp.prepare(request)
    await resp.write_eof()
    return resp


def _accepted(request: web.Request) -> set[str]:
    out: set[str] = set()
    for value in request.headers.getall("Accept", []):
        for part in value.split(","):
            mt = part.split(";", 1)[0].strip().lower()
            if mt:
                out.add(mt)
    return out


def _error(e: ApiError) -> web.Response:
    body = {"errors": [{"code": e.code, "message": e.message, "detail": None}]}
    return web.json_response(body, status=e.status,
                             headers={**e.headers, API_HEADER[0]: API_HEADER[1]})


def _body_length(resp: web.StreamResponse | None) -> int:
    if resp is None:
        return 0
    with contextlib.suppress(Exception):
        return int(resp.body_length)
    return 0


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _stderr(line: str) -> None:
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


AsyncHandler = Callable[[web.Request], Awaitable[web.StreamResponse]]
