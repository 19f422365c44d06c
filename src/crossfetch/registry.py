"""The distribution API verbs for one repository: ping, manifests, blobs, tags.

Endpoints come from a policy :class:`~crossfetch.policy.model.Decision`, in try order; a
failure on a mirror falls through to the next endpoint. Tags are resolved only on endpoints
with the ``resolve`` capability. Every manifest and blob is verified against its digest.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import re
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar
from urllib.parse import urljoin, urlsplit

from .capped import read_capped
from .errors import (
    GIVE_CREDENTIALS,
    RETRY_SENT,
    CrossfetchError,
    DigestMismatch,
    FetchError,
    HTTPStatusError,
    LimitExceeded,
    NotFound,
    PolicyRefused,
    Unauthorized,
)
from .oci import ACCEPT, MAX_MANIFEST_BYTES, Descriptor, check_digest, digest_of
from .policy.model import PULL, RESOLVE, Decision, Endpoint
from .transport.connection import WireError
from .transport.retry import Retry, retry_after_seconds

if TYPE_CHECKING:
    from .transport.connection import Auth, Response
    from .transport.session import Transport

T = TypeVar("T")
AuthFactory = Callable[[Endpoint, str], "Auth | None"]
"""Given an endpoint and the scope's actions (``pull`` or ``pull,push``), the auth flow."""

OVERSIZED_FIX = ("a package manifest is a few KiB: the registry (or a proxy) serves something "
                 "else at this reference; check the reference and the registry")
HEAD_FALLBACK = ("failed to fetch package descriptor with a GET request after a previous HEAD "
                 "request failure")
CHUNK = 256 * 1024
_DIGEST_THREAD_MIN = 4 * 1024 * 1024
"""From this blob size on, the digest is computed on a second thread (see :class:`_Digester`)."""
MAX_TAG_PAGES = 1000
_LINK_RE = re.compile(r'<([^>]+)>\s*;\s*rel="?next"?')
_CONTENT_RANGE_RE = re.compile(r"bytes ([0-9]+)-([0-9]+)/([0-9]+|\*)")


def _resumes_at(resp: Response, start: int, size: int) -> bool:
    """Whether a 206 answers ``Range: bytes=START-`` of a ``size``-byte blob exactly."""
    m = _CONTENT_RANGE_RE.fullmatch((resp.headers.get("content-range") or "").strip())
    # compared as text: int() of a header's digits raises past 4300 of them
    return m is not None and m.group(1) == str(start) and m.group(2) == str(size - 1) and \
        m.group(3) in ("*", str(size))


class PingResult(NamedTuple):
    endpoint: str
    status: int
    api_version: str | None
    challenge: str | None


def status_error(resp: Response, what: str, *,
                 retry_after_max: float = Retry().retry_after_max) -> HTTPStatusError:
    """The one mapping from a registry's error status to a crossfetch error (registry verbs,
    uploads and doctor all use it): cause, message with the registry's first diagnostic, every
    diagnostic kept, and a fix."""
    url = str(resp.request.url)
    status = resp.status_code
    diagnostics = _diagnostics(resp)
    common: dict[str, Any] = {"status": status, "url": url, "host": resp.request.url.host,
                              "diagnostics": diagnostics}
    code = "".join(f" ({d.get('code')}: {d.get('message')})" for d in diagnostics[:1])
    answered = f"{what}: {url} answered {status} {resp.reason_phrase}{code}"
    if status in (401, 403):
        challenge = resp.headers.get("www-authenticate", "")
        realm = re.search(r'realm="([^"]*)"', challenge)
        return Unauthorized(
            answered, **common,
            detail={"scheme": challenge.split(" ", 1)[0] if challenge else None,
                    "realm": realm.group(1) if realm else None},
            fix=GIVE_CREDENTIALS)
    if status == 404:
        return NotFound(f"{what}: {url} answered 404 Not Found{code}", **common,
                        fix=_not_found_fix(url))
    if status == 407:  # only a forward proxy (HTTP_PROXY) answers 407
        return HTTPStatusError(
            f"{what}: {url} answered 407 Proxy Authentication Required (the forward proxy "
            "wants credentials)", **common, cause="proxy-error",
            fix="put them in the proxy URL: HTTP_PROXY=http://USER:PASSWORD@proxy:PORT (or "
            "exempt the registry with NO_PROXY)")
    wait = retry_after_seconds(resp.headers.get("retry-after"))
    if status in (429, 503) and wait is not None:
        over = f", above the {retry_after_max:g} s crossfetch waits" if wait > retry_after_max \
            else ""
        return HTTPStatusError(
            f"{answered} and asked to retry after {wait:.0f} s{over}", **common,
            cause="rate-limited" if status == 429 else "unavailable",
            fix=f"try again in {wait:.0f} s" + (" (the registry is rate-limiting this client; "
                                                "credentials often raise the limit)"
                                                if status == 429 else ""))
    if status == 405:
        return HTTPStatusError(f"{what}: {url} answered 405 Method Not Allowed", **common,
                               cause="method-not-allowed",
                               fix="the registry or a proxy refuses this method")
    return HTTPStatusError(answered, **common,
                           fix="the registry (or a proxy in front of it) failed on its side; "
                           "check its health and logs, and try again" if status >= 500 else
                           "check the reference and the registry's logs")


def _diagnostics(resp: Response) -> list[dict[str, Any]]:
    """The ``errors`` entries of a distribution error body, or none (unread, not JSON)."""
    with contextlib.suppress(Exception):
        body = resp.json() if resp.content else {}
        errs = body.get("errors") if isinstance(body, dict) else None
        if isinstance(errs, list):
            return [{k: d[k] for k in ("code", "message", "detail") if k in d}
                    for d in errs[:20] if isinstance(d, dict)]
    return []


def head_fallback_error(head: CrossfetchError | None, get: FetchError) -> FetchError:
    """The error for a HEAD that failed and the GET fallback that failed too, in Crossplane's
    words. A new error of the GET error's type (so callers still catch a TLS or plain-HTTP
    failure as such): the caught errors are never changed, since other threads (a shared
    single-flight fetch) may hold them. ``detail["headError"]`` keeps the HEAD's own error."""
    head_msg = head.message if head else "no descriptor"
    out = copy.copy(get)  # CrossfetchError.__copy__: every field, no __init__
    out.detail = {**get.detail, "headError": head.to_dict() if head else None}
    out.message = f"{HEAD_FALLBACK}: {head_msg}" if head_msg == get.message else \
        f"{HEAD_FALLBACK}: {head_msg}; the GET failed too: {get.message}"
    out.args = (out.message,)
    return out


class _Digester:
    """``hashlib.new(algo)`` fed on a worker thread: hashlib releases the GIL while it hashes,
    so the digest of a big blob is computed on another core while the next bytes are received
    and written (SHA-256 is ~20 ms per 30 MB here, otherwise on the critical path). Updates
    keep their order; at most 16 chunks (4 MiB) wait."""

    def __init__(self, algo: str) -> None:
        import queue
        import threading

        self._hash = hashlib.new(algo)
        self._queue: queue.Queue[bytes | None] = queue.Queue(maxsize=16)
        self._thread = threading.Thread(target=self._run, name="digest", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (chunk := self._queue.get()) is not None:
            self._hash.update(chunk)

    def update(self, chunk: bytes) -> None:
        self._queue.put(chunk)

    def close(self) -> None:
        """Stop the worker (it drains what is queued, so this never blocks for long)."""
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()

    def hexdigest(self) -> str:
        self.close()
        return self._hash.hexdigest()


class RegistryClient:
    """Talks to the endpoints of one decision."""

    def __init__(self, decision: Decision, transport: Transport,
                 auth: AuthFactory | None = None) -> None:
        self.decision = decision
        self.transport = transport
        self._auth = auth
        self.last_endpoint: Endpoint | None = None
        self._suspects: set[tuple[str, str]] = set()
        """(endpoint URL, digest) pairs that once served content not matching its digest."""

    # --- plumbing ---

    def _path(self, ep: Endpoint, tail: str) -> str:
        return ep.repo_path(self.decision.resolved.repository, tail)

    def _send(self, ep: Endpoint, method: str, tail: str, *, headers: dict[str, str] | None = None,
              stream: bool = False, follow: bool = False, actions: str = "pull",
              blob: bool = False) -> Response:
        auth = self._auth(ep, actions) if self._auth else None
        return self.transport.send(ep, method, self._path(ep, tail), headers=headers, auth=auth,
                                   stream=stream, follow_redirects=follow, blob=blob)

    def _each(self, capability: str, what: str, fn: Callable[[Endpoint], T],
              digest: str | None = None) -> T:
        """Try ``fn`` on each endpoint that has ``capability``; return the first success.

        Content that does not match its digest is tried once more: from the next endpoint,
        or from the start on the last one (endpoints that served ``digest`` wrong before go
        last); a second mismatch is reported.
        """
        endpoints = self.decision.endpoints_for(capability)
        if not endpoints:
            raise PolicyRefused(
                f"no endpoint of {self.decision.resolved.registry} may {capability} "
                f"(needed to {what})", cause="no-endpoint",
                fix="give the upstream or a mirror the capability in hosts.toml")
        if digest is not None:
            endpoints = tuple(sorted(endpoints, key=lambda e: (e.url, digest) in self._suspects))
        queue = list(endpoints)
        errors: list[tuple[Endpoint, CrossfetchError]] = []
        mismatched = False
        i = 0
        while True:
            ep = queue[i]
            try:
                result = fn(ep)
            except PolicyRefused:
                raise
            except FetchError as e:
                again = isinstance(e, DigestMismatch) and not mismatched
                if again:
                    mismatched = True
                    if i == len(queue) - 1:
                        queue.append(ep)  # no other source: once more from the start
                if i == len(queue) - 1:
                    if mismatched and isinstance(e, DigestMismatch):
                        e.detail["retried"] = True
                    if errors:
                        e.detail.setdefault("skippedEndpoints", [
                            {"url": x.url, "role": x.role, "error": str(err.message)}
                            for x, err in errors])
                    raise
                errors.append((ep, e))
                i += 1
                continue
            self.last_endpoint = ep
            return result

    def _transient(self, fn: Callable[[], T]) -> T:
        """``fn`` tried again (with backoff) when a body broke off or was cut short."""
        retry = self.transport.retry
        for attempt in range(retry.total + 1):
            try:
                return fn()
            except FetchError as e:  # before the headers the transport has retried already
                if attempt == retry.total or e.cause not in RETRY_SENT or \
                        e.detail.get("phase") not in ("body", "truncated"):
                    raise
                self.transport.sleep(retry.backoff_delay(attempt))
        raise AssertionError("unreachable")

    def _status_error(self, resp: Response, what: str) -> HTTPStatusError:
        """:func:`status_error` with this client's own Retry-After cap."""
        return status_error(resp, what, retry_after_max=self.transport.retry.retry_after_max)

    # --- verbs ---

    def ping(self, ep: Endpoint | None = None) -> PingResult:
        """``GET /v2/``: is it a registry, and which API version?"""
        ep = ep or self.decision.endpoints[-1]
        resp = self.transport.send(ep, "GET", ep.api_path())
        return PingResult(ep.url, resp.status_code,
                          resp.headers.get("docker-distribution-api-version"),
                          resp.headers.get("www-authenticate"))

    def head(self, identifier: str | None = None) -> Descriptor:
        """The manifest descriptor: HEAD, falling back to GET when HEAD fails."""
        ident = identifier or self.decision.resolved.identifier
        capability = PULL if ident.startswith("sha256:") else RESOLVE
        return self._each(capability, "resolve the manifest", lambda ep: self._head_on(ep, ident))

    def _head_on(self, ep: Endpoint, ident: str) -> Descriptor:
        head_err: CrossfetchError | None = None
        try:
            resp = self._send(ep, "HEAD", f"manifests/{ident}", headers={"Accept": ACCEPT})
            digest = resp.headers.get("docker-content-digest")
            size = resp.content_length if "content-length" in resp.headers else 0
            if resp.status_code == 200 and digest and size is not None:
                if ident.startswith("sha256:") and digest != ident:
                    raise DigestMismatch(f"HEAD of {ident} returned digest {digest}",
                                         url=str(resp.request.url))
                return Descriptor(media_type=resp.headers.get("content-type", "").split(";")[0],
                                  digest=check_digest(digest), size=size)
            if resp.status_code != 200:
                head_err = self._status_error(resp, "HEAD manifest")
            elif size is None:
                head_err = FetchError("HEAD answered with a Content-Length that is not a number",
                                      url=str(resp.request.url))
            else:
                head_err = FetchError("HEAD answered without a Docker-Content-Digest header",
                                      url=str(resp.request.url))
        except (DigestMismatch, PolicyRefused):
            raise
        except FetchError as e:
            if e.cause == "stalled":  # a GET would stall the same way: one deadline is enough
                raise
            head_err = e
        try:
            raw, mt, digest = self._get_manifest_on(ep, ident)
        except FetchError as e:
            raise head_fallback_error(head_err, e) from e
        return Descriptor(media_type=mt, digest=digest, size=len(raw))

    def fetch_manifest(self, identifier: str) -> tuple[bytes, str, str]:
        """(raw, media type, digest) of a manifest, verified; capped at 4 MiB."""
        capability = PULL if identifier.startswith("sha256:") else RESOLVE
        return self._each(capability, "fetch the manifest",
                          lambda ep: self._get_manifest_on(ep, identifier),
                          digest=identifier if capability == PULL else None)

    def _get_manifest_on(self, ep: Endpoint, ident: str) -> tuple[bytes, str, str]:
        try:
            return self._transient(lambda: self._get_manifest_once(ep, ident))
        except DigestMismatch:
            self._suspects.add((ep.url, ident))
            raise

    def _get_manifest_once(self, ep: Endpoint, ident: str) -> tuple[bytes, str, str]:
        resp = self._send(ep, "GET", f"manifests/{ident}", headers={"Accept": ACCEPT},
                          stream=True)
        try:
            if resp.status_code != 200:
                resp.read_some()
                raise self._status_error(resp, "GET manifest")
            try:
                raw = read_capped(resp.iter_raw(), MAX_MANIFEST_BYTES,
                                  f"manifest at {resp.request.url}", url=str(resp.request.url),
                                  declared=resp.content_length, fix=OVERSIZED_FIX)
            except WireError as e:
                raise self.transport.explain(ep, str(resp.request.url), e) from None
        finally:
            resp.close()
        url = str(resp.request.url)
        header = resp.headers.get("docker-content-digest")
        if ident.startswith(("sha256:", "sha512:")):
            algo = ident.split(":", 1)[0]
            if digest_of(raw, algo) != ident:
                raise DigestMismatch(f"manifest from {url} does not match its digest {ident}",
                                     url=url, fix="the registry or a proxy altered the manifest; "
                                     "it was fetched twice and not kept")
            digest = ident
        else:
            digest = digest_of(raw)
            if header and header.startswith("sha256:") and header != digest:
                raise DigestMismatch(f"manifest from {url} hashes to {digest}, but the registry "
                                     f"said {header}", url=url,
                                     fix="the registry or a proxy reports a wrong "
                                     "Docker-Content-Digest (or altered the manifest); it was "
                                     "fetched twice and not kept")
        mt = (resp.headers.get("content-type") or "").split(";")[0].strip()
        return raw, mt, digest

    def open_blob(self, desc: Descriptor, progress: Callable[[int], None] | None = None
                  ) -> Iterator[bytes]:
        """Stream a blob, verifying its size and digest as it goes.

        A body that breaks off is resumed where it stopped (a ``Range`` request; from the
        start when the registry does not honour it), up to ``Retry.total`` times, and the
        digest is checked over everything yielded. The digest error is raised after the last
        chunk, so a consumer must not trust its output until the iterator is exhausted
        without error (and may call again once: the endpoint that served it wrong goes last).
        """
        ep, resp = self._each(PULL, "fetch a blob", lambda ep: self._open_blob_on(ep, desc),
                              digest=desc.digest)
        return self._verified(ep, resp, desc, progress)

    def _open_blob_on(self, ep: Endpoint, desc: Descriptor, start: int = 0
                      ) -> tuple[Endpoint, Response]:
        headers = {"Range": f"bytes={start}-"} if start else None
        resp = self._send(ep, "GET", f"blobs/{desc.digest}", headers=headers, stream=True,
                          follow=True, blob=True)
        if resp.status_code == 206 and start:
            if _resumes_at(resp, start, desc.size):
                return ep, resp
            resp.close()  # a range we did not ask for: take the whole blob instead
            return self._open_blob_on(ep, desc)
        if resp.status_code != 200:
            resp.read_some()
            raise self._status_error(resp, f"GET blob {desc.digest[:19]}")
        return ep, resp

    def open_blob_unsized(self, digest: str) -> tuple[int, Iterator[bytes]]:
        """Stream a blob known only by its digest (a pull-through cache's case): its size
        comes from the response's ``Content-Length``, and the chunks are verified as in
        :meth:`open_blob`. A response without a length is an error."""
        desc = Descriptor(media_type="", digest=check_digest(digest), size=0)
        ep, resp = self._each(PULL, "fetch a blob", lambda ep: self._open_blob_on(ep, desc),
                              digest=desc.digest)
        size = resp.content_length
        if size is None:
            resp.close()
            raise FetchError(f"blob {digest} from {resp.request.url} came without a "
                             "Content-Length", url=str(resp.request.url),
                             fix="the registry or a proxy in front of it must send the length")
        return size, self._verified(ep, resp, desc._replace(size=size), None)

    def stat_blob(self, digest: str) -> int:
        """The size of a blob (``HEAD``); raises :class:`NotFound` when it is absent."""
        def on(ep: Endpoint) -> int:
            resp = self._send(ep, "HEAD", f"blobs/{check_digest(digest)}", follow=True)
            resp.close()
            if resp.status_code != 200:
                raise self._status_error(resp, f"HEAD blob {digest[:19]}")
            size = resp.content_length
            if size is None:
                raise FetchError(f"HEAD of blob {digest} answered without a Content-Length",
                                 url=str(resp.request.url))
            return size

        return self._each(PULL, "stat a blob", on)

    def _verified(self, ep: Endpoint, resp: Response, desc: Descriptor,
                  progress: Callable[[int], None] | None) -> Iterator[bytes]:
        algo = desc.digest.split(":", 1)[0]
        h: Any = _Digester(algo) if desc.size >= _DIGEST_THREAD_MIN else hashlib.new(algo)
        n = skip = resumes = 0
        retry = self.transport.retry
        url = str(resp.request.url)
        try:
            while True:
                try:
                    for chunk in resp.iter_raw(CHUNK):
                        if skip:  # a resume from the start: drop what was already yielded
                            cut = min(skip, len(chunk))
                            skip -= cut
                            chunk = chunk[cut:]
                            if not chunk:
                                continue
                        n += len(chunk)
                        if n > desc.size:
                            raise LimitExceeded(f"blob {desc.digest} from {url} is larger than "
                                                f"its declared {desc.size} bytes", url=url)
                        h.update(chunk)
                        if progress:
                            progress(len(chunk))
                        yield chunk
                    if skip == 0:
                        break
                    err: FetchError = FetchError(
                        f"blob from {url}, read again from the start, ended before the {n} "
                        "bytes already read", url=url, cause="truncated")
                except WireError as e:
                    if n == desc.size and e.phase == "truncated":
                        break  # a Content-Length above the blob's size: the digest decides
                    err = self.transport.explain(ep, url, e)
                # a stall is not resumed: it already cost a deadline
                if resumes >= retry.total or err.cause not in RETRY_SENT:
                    raise err from None
                resp.close()
                self.transport.sleep(retry.backoff_delay(resumes))
                resumes += 1
                ep, resp = self._open_blob_on(ep, desc, start=n)
                skip = n if resp.status_code == 200 else 0
                url = str(resp.request.url)
        finally:
            resp.close()
            if isinstance(h, _Digester):
                h.close()
        actual = f"{algo}:{h.hexdigest()}"
        if n != desc.size or actual != desc.digest:
            self._suspects.add((ep.url, desc.digest))
            short = n < desc.size
            raise DigestMismatch(
                f"blob from {url} does not match its descriptor: expected {desc.digest} "
                f"({desc.size} bytes), got {actual} ({n} bytes)", url=url,
                cause="truncated" if short else None,
                fix="the blob was cut short in transit; nothing was kept: try again" if short
                else "the registry or a proxy altered the blob; nothing was kept",
                detail={"resumed": resumes} if resumes else None)

    def tags(self) -> list[str]:
        """Every tag, following ``Link`` pagination (which registry 2.8 does not send)."""
        return self._each(RESOLVE, "list tags", self._tags_on)

    def _tags_on(self, ep: Endpoint) -> list[str]:
        tags: list[str] = []
        tail = "tags/list?n=1000"
        url_root = self.transport.effective_url(ep)
        for _ in range(MAX_TAG_PAGES):
            resp = self._send(ep, "GET", tail)
            if resp.status_code != 200:
                raise self._status_error(resp, "list tags")
            try:
                body = resp.json()
            except (ValueError, RecursionError):  # deep nesting: RecursionError, not ValueError
                body = None
            page = body.get("tags") if isinstance(body, dict) else None
            if not isinstance(body, dict) or not isinstance(page, list | None):
                raise FetchError(f"tag list from {resp.request.url} is not a JSON object with a "
                                 "tags list", url=str(resp.request.url),
                                 fix="check that the endpoint is an OCI distribution registry")
            tags.extend(str(t) for t in page or [])
            m = _LINK_RE.search(resp.headers.get("link", ""))
            if not m:
                return tags
            nxt = urljoin(str(resp.request.url), m.group(1))
            if urlsplit(nxt).netloc != urlsplit(url_root).netloc:
                raise PolicyRefused(f"tag pagination link leaves the registry: {nxt}",
                                    url=str(resp.request.url))
            prefix = self._path(ep, "")
            path_q = nxt.split(urlsplit(nxt).netloc, 1)[1]
            if not path_q.startswith(prefix):
                raise FetchError(f"unexpected pagination link {nxt}")
            tail = path_q[len(prefix):]
        raise LimitExceeded(f"more than {MAX_TAG_PAGES} pages of tags")


def _not_found_fix(url: str) -> str:
    """What to check after a 404, by what was asked: a tag list's 404 means the repository
    itself is missing (listing its tags again would not help)."""
    parts = urlsplit(url)
    path = parts.path.split("/v2/", 1)[-1]
    found = next(((path.partition(marker)[0], kind) for marker, kind in (
        ("/tags/list", "tags"), ("/manifests/", "manifest"), ("/blobs/", "blob"))
        if marker in path), None)
    if found is None:
        return "check the repository name and the tag or digest"
    name, kind = found
    where = f"{parts.netloc}/{name}"
    if kind == "tags":
        return (f"the repository {name} does not exist on {parts.netloc}, or these credentials "
                "may not see it: check its name (and the path of any rewriteImage or mirror)")
    if kind == "manifest":
        return f"check the tag or digest; the repository's tags: crossfetch tags {where}"
    return (f"{where} lacks a blob its manifest names: push the package again "
            "(or check the registry's storage)")
