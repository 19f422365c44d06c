"""The public entry point: :class:`Client` pulls, heads and lists Crossplane packages.

The flow matches Crossplane's: rewrite, resolve the tag with HEAD (GET as fallback), look in
the cache by digest, then fetch *pinned to that digest*, read only the base layer, and store
``package.yaml`` while parsing it.
"""

from __future__ import annotations

import enum
import threading
from collections.abc import Callable
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, NamedTuple, Protocol

from .cache import (
    MAX_RECORD_BYTES,
    Cache,
    CacheEntry,
    Lease,
    variant_name,
    verify_and_scan,
    verify_file,
)
from .errors import CacheMiss, CrossfetchError, DigestMismatch, PolicyRefused, UsageError
from .oci import BaseLayer, BlobSource, Descriptor, Manifest, Platform, resolve_image
from .policy.model import Decision, Endpoint
from .policy.resolver import Policy
from .reference import Reference
from .sources import RegistrySource, RuntimeSource, Source

if TYPE_CHECKING:
    from .registry import RegistryClient
    from .transport.connection import Auth
    from .transport.session import Transport
    from .xpkg.meta import Package


class PullPolicy(enum.StrEnum):
    """Crossplane's ``packagePullPolicy``."""

    IF_NOT_PRESENT = "IfNotPresent"
    ALWAYS = "Always"
    NEVER = "Never"


class Progress(Protocol):
    """Receives progress for slow transfers; the CLI draws a bar with it on a TTY."""

    def start(self, description: str, total: int) -> Callable[[int], None]: ...

    def finish(self) -> None: ...


class HeadResult(NamedTuple):
    reference: Reference
    resolved: Reference
    digest: str
    media_type: str
    size: int
    endpoint: str

    def to_dict(self) -> dict[str, Any]:
        return {"reference": str(self.reference), "resolved": str(self.resolved),
                "digest": self.digest, "mediaType": self.media_type, "size": self.size,
                "endpoint": self.endpoint}


class PullResult(NamedTuple):
    reference: Reference
    resolved: Reference
    digest: str
    """What the reference resolved to (an index digest for multi-platform packages)."""
    manifest_digest: str
    media_type: str
    platform: str | None
    package: Package
    path: Path
    """``package.yaml`` in the cache; it stays there until the :class:`Client` is closed (or
    :meth:`Client.release` is called with it)."""
    cached: bool
    base_layer: BaseLayer | None
    endpoint: str | None
    extra: dict[str, Any]
    """More facts for the JSON output (``via``, ``runtimePulled``, ``asCrossplane``); each
    result has its own dict."""

    def to_dict(self) -> dict[str, Any]:
        pkg = self.package.to_dict()
        out: dict[str, Any] = {
            "reference": str(self.reference),
            "resolved": str(self.resolved),
            "digest": self.digest,
            "manifestDigest": self.manifest_digest,
            "mediaType": self.media_type,
            "platform": self.platform,
            "apiVersion": pkg.get("apiVersion"),
            "kind": pkg.get("kind"),
            "name": pkg.get("name"),
            "crossplane": pkg.get("crossplane"),
            "dependsOn": pkg.get("dependsOn", []),
            "objects": pkg.get("objects", {}),
            "annotations": pkg.get("annotations", {}),
            "packageDigest": pkg.get("packageDigest"),
            "size": pkg.get("size"),
            "cached": self.cached,
            "cachePath": str(self.path),
            "baseLayer": self.base_layer.to_dict() if self.base_layer else None,
            "endpoint": self.endpoint,
        }
        out.update(self.extra)
        return out


class Client:
    """Fetches Crossplane packages under a :class:`~crossfetch.policy.resolver.Policy`.

    >>> with Client(Policy.load(["local.yaml"])) as c:          # doctest: +SKIP
    ...     result = c.pull("registry.local:8443/fns/function-foo:v0.1.0")
    ...     print(result.package.kind, result.digest)

    Network bounds (the CLI's options of the same names): ``timeout`` (connect, and the longest
    wait for one read), ``deadline`` (all of one request, default 30 s; a blob until its body
    starts), ``min_rate``/``rate_window`` (the slowest a blob body may arrive, default 1024
    bytes/s over 30 s; rate 0: none), ``retries`` (per request; a broken-off blob is resumed as
    often). ``trace`` is told of every HTTP request (method, URL, status, time; the CLI's
    ``-v``). A ``transport`` passed in brings its own.
    """

    def __init__(
        self,
        policy: Policy | None = None,
        *,
        cache: Cache | str | Path | None = None,
        no_cache: bool = False,
        pull_policy: PullPolicy | str = PullPolicy.IF_NOT_PRESENT,
        platform: str | None = None,
        default_registry: str | None = None,
        transport: Transport | None = None,
        timeout: float | None = None,
        retries: int = 3,
        deadline: float | None = None,
        min_rate: float | None = None,
        rate_window: float | None = None,
        progress: Progress | None = None,
        via: str = "direct",
        runtime_endpoint: str | None = None,
        runtime_namespace: str | None = None,
        trace: Callable[[str], None] | None = None,
    ) -> None:
        self.policy = policy or Policy()
        # A Cache passed in is the caller's to close; one made here (a directory, the default,
        # or a private one for no_cache) is closed with the client.
        self._own_cache = not isinstance(cache, Cache)
        self.cache = cache if isinstance(cache, Cache) else Cache(cache, ephemeral=no_cache)
        self._leases: dict[Path, Lease] = {}
        self._leases_lock = threading.Lock()
        self.pull_policy = PullPolicy(pull_policy)
        try:
            self.platform = str(Platform.parse(platform)) if platform else None
        except ValueError as e:
            raise UsageError(str(e), fix="pass --platform as os/arch[/variant], e.g. "
                             "linux/arm64") from None
        self.default_registry = default_registry
        if transport is None:
            from .transport.deadline import Floor
            from .transport.session import DEADLINE, Timeouts, Transport

            t = Timeouts() if timeout is None else Timeouts(connect=timeout, read=timeout)
            floor = Floor()
            floor = Floor(floor.rate if min_rate is None else min_rate,
                          floor.window if rate_window is None else rate_window)
            transport = Transport(timeouts=t, retries=retries, floor=floor,
                                  deadline=DEADLINE if deadline is None else deadline,
                                  trace=trace)
        self.transport = transport
        self.timeout = timeout
        self.progress = progress
        if via not in ("direct", "cri"):
            raise UsageError(f"unknown pull path {via!r}: use direct or cri")
        self.via = via
        self.runtime_endpoint = runtime_endpoint
        self.runtime_namespace = runtime_namespace

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close connections and release the cache entries handed out (``PullResult.path``)."""
        self.transport.close()
        with self._leases_lock:
            leases, self._leases = list(self._leases.values()), {}
        for lease in leases:
            lease.release()
        if self._own_cache:
            self.cache.close()

    def release(self, path: Path) -> None:
        """Done with a ``PullResult.path`` before :meth:`close`: the cache may prune it now."""
        with self._leases_lock:
            lease = self._leases.pop(Path(path).parent, None)
        if lease is not None:
            lease.release()

    def _hold(self, entry: CacheEntry) -> None:
        """Keep ``entry`` leased until :meth:`close` (one lease per entry)."""
        if entry.lease is None:
            return
        with self._leases_lock:
            old = self._leases.get(entry.dir)
            self._leases[entry.dir] = entry.lease
        if old is not None and old is not entry.lease:
            old.release()

    # --- building blocks ---

    def parse(self, ref: str | Reference) -> Reference:
        if isinstance(ref, Reference):
            return ref
        return Reference.parse(ref, default_registry=self.default_registry)

    def decide(self, ref: str | Reference) -> Decision:
        """The effective policy for ``ref``; raises if policy blocks it. ImageConfig prefixes
        match ``ref`` as written (a string), before any default registry is added."""
        written = ref if isinstance(ref, str) else None
        decision = self.policy.decide(self.parse(ref), written)
        if decision.blocked is not None:
            raise PolicyRefused(
                f"{decision.resolved} is blocked by {decision.blocked}", cause="blocked",
                fix=f"remove or narrow the blocking rule in {decision.blocked.name}")
        return decision

    def auth_factory(self, decision: Decision) -> Callable[[Endpoint, str], Auth | None]:
        """The auth flow for each endpoint of ``decision`` (anonymous and credentialed)."""
        from .transport.deferred import DeferredAuth

        flows: dict[tuple[str, str], Auth] = {}

        def factory(ep: Endpoint, actions: str) -> Auth | None:
            key = (ep.url, actions)
            if key not in flows:
                flows[key] = DeferredAuth(ep, decision, actions, transport=self.transport)
            return flows[key]

        return factory

    def registry(self, decision: Decision) -> RegistryClient:
        from .registry import RegistryClient

        return RegistryClient(decision, self.transport, self.auth_factory(decision))

    # --- verbs ---

    def head(self, ref: str | Reference) -> HeadResult:
        """Resolve ``ref`` to a manifest descriptor (HEAD, falling back to GET)."""
        decision = self.decide(ref)
        rc = self.registry(decision)
        desc = rc.head()
        ep = rc.last_endpoint.url if rc.last_endpoint else ""
        return HeadResult(decision.reference, decision.resolved, desc.digest, desc.media_type,
                          desc.size, ep)

    def tags(self, ref: str | Reference) -> list[str]:
        """Every tag of the repository, following ``Link`` pagination."""
        return self.registry(self.decide(ref)).tags()

    def pull(self, ref: str | Reference, output: str | Path | IO[bytes] | None = None
             ) -> PullResult:
        """Fetch the package, store it in the cache, and copy ``package.yaml`` to ``output``
        (a path, ``-`` for stdout, or a binary file object), written through what is there
        (see :mod:`crossfetch.output`); ``output`` is checked before any download."""
        from .output import open_output

        decision = self.decide(ref)
        target = open_output(output) if output is not None else None
        try:
            result = self._pull(decision)
            if target is not None:
                target.write(result.path)
        finally:
            if target is not None:
                target.abort()
        return result

    def _pull(self, decision: Decision) -> PullResult:
        """Resolve → cache → fetch, one path for every source. The pull policy decides once,
        here, whether the network (a registry, or the runtime's pull) may be touched, as
        Crossplane's ``packagePullPolicy`` does."""
        resolved = decision.resolved
        never = self.pull_policy is PullPolicy.NEVER
        top = resolved.digest or (self.cache.recall_tag(str(resolved)) if never else None)
        if top and self.pull_policy is not PullPolicy.ALWAYS:
            cached = self._cached(decision, top)
            if cached is not None:
                if self.via == "cri":
                    cached.extra.update(via="cri", runtimePulled=False)
                return cached
        if never and self.via == "direct":
            if top is None:
                raise CacheMiss(f"{resolved} is not in the cache and the pull policy is Never",
                                fix="pull it once with --pull-policy IfNotPresent, or pin a "
                                "cached digest")
            raise CacheMiss(f"{resolved} ({top}) is not in the cache and the pull policy is Never",
                            fix="pull it with --pull-policy IfNotPresent first")
        source = self.source(decision, network=not never)
        try:
            if not resolved.digest:
                top = source.resolve(resolved)
                if self.pull_policy is not PullPolicy.ALWAYS:
                    cached = self._cached(decision, top)
                    if cached is not None:
                        cached.extra.update(source.extra)
                        return cached
            assert top is not None
            try:
                result = self._fetch(decision, source, top)
            except DigestMismatch as e:
                if e.detail.get("retried"):
                    raise
                # A blob that did not match its digest: once more, from another endpoint when
                # there is one (the registry client puts the one that served it last).
                result = self._fetch(decision, source, top)
            result.extra.update(source.extra)
            return result
        finally:
            source.close()

    def source(self, decision: Decision, *, network: bool = True) -> Source:
        """The :class:`~crossfetch.sources.Source` this client reads ``decision`` from: the
        registry, or with ``via="cri"`` the node's runtime (which pulls only when ``network``)."""
        if self.via == "direct":
            return RegistrySource(self.registry(decision), self._bar)
        from .cri import AuthConfig

        resolved = decision.resolved
        keychain = decision.auth.keychain
        cred = keychain.resolve(resolved.registry) if keychain and network else None
        return RuntimeSource(self.runtime(), str(resolved), pull=network,
                             auth=AuthConfig.from_credential(cred, resolved.registry))

    def runtime(self, *, pull_timeout: float | None = None) -> Any:
        """A :class:`crossfetch.cri.RuntimeClient` for ``runtime_endpoint``; each call is
        bounded by ``timeout`` (60 s by default), the runtime's pull by ``pull_timeout``."""
        from .cri import DEFAULT_ENDPOINT, DEFAULT_NAMESPACE, RuntimeClient

        kw: dict[str, float] = {"pull_timeout": pull_timeout} if pull_timeout else {}
        return RuntimeClient(self.runtime_endpoint or DEFAULT_ENDPOINT,
                             namespace=self.runtime_namespace or DEFAULT_NAMESPACE,
                             timeout=self.timeout or 60, **kw)

    def _cached(self, decision: Decision, top: str) -> PullResult | None:
        """The verified cache entry for ``top`` (a corrupt one is dropped), or None."""
        entry = self.cache.lookup(top, self.platform)
        if entry is None:
            return None
        try:
            result = self._from_cache(decision, top, entry)
        except DigestMismatch:
            self.cache.remove(entry)
            return None
        except BaseException:
            entry.release()
            raise
        self._hold(entry)
        return result

    def _from_cache(self, decision: Decision, top: str, entry: CacheEntry) -> PullResult:
        pkg = entry_package(entry)
        meta = entry.meta
        return PullResult(decision.reference, decision.resolved, top,
                          str(meta.get("manifestDigest", top)), str(meta.get("mediaType", "")),
                          meta.get("platform"), pkg, entry.package_path, cached=True,
                          base_layer=BaseLayer.from_dict(meta.get("baseLayer")), endpoint=None,
                          extra={})

    def _fetch(self, decision: Decision, source: Source, top: str) -> PullResult:
        parsed, platform = resolve_image(source, *source.fetch_manifest(top), self.platform)
        pending = self.cache.begin()
        try:
            pkg, base = self._read_package(source, parsed, pending.package_path)
            meta = {"reference": str(decision.reference), "resolved": str(decision.resolved),
                    "manifestDigest": parsed.digest, "mediaType": parsed.media_type,
                    "platform": platform, "packageSha256": pkg.sha256.split(":")[-1],
                    "baseLayer": base.to_dict(), "kind": pkg.kind, "name": pkg.name,
                    "packageSummary": package_summary(pkg)}
            entry = self.cache.commit(pending, top, variant_name(platform), meta)
        except BaseException:
            self.cache.discard(pending)
            raise
        self._hold(entry)
        if entry.sha256.split(":")[-1] != meta["packageSha256"]:  # another writer's entry won
            pkg = entry_package(entry)
        if not decision.resolved.digest:
            self.cache.remember_tag(str(decision.resolved), top)
        return PullResult(decision.reference, decision.resolved, top, parsed.digest,
                          parsed.media_type, platform, pkg, entry.package_path, cached=False,
                          base_layer=base, endpoint=source.endpoint, extra={})

    def _read_package(self, source: BlobSource, manifest: Manifest, dest: Path
                      ) -> tuple[Package, BaseLayer]:
        from .xpkg import extract_package

        try:
            with open(dest, "wb") as sink:
                read = extract_package(source, manifest, sink, tmp_dir=dest.parent)
        finally:
            if self.progress:
                self.progress.finish()
        return read.package, BaseLayer(read.layer.digest, read.layer.size, read.how, read.note)

    def _bar(self, desc: Descriptor) -> Callable[[int], None] | None:
        if self.progress is None or desc.size < 1024 * 1024:
            return None
        return self.progress.start(f"blob {desc.digest[7:19]}", desc.size)


SUMMARY_VERSION = 1
"""Version of the package rules a cache entry's ``packageSummary`` was validated under. Bump it
when :class:`~crossfetch.xpkg.meta.PackageScanner`'s rules change: older entries are then
scanned again on their next hit."""


def package_summary(pkg: Package) -> dict[str, Any] | None:
    """What a cache hit needs to rebuild ``pkg`` without parsing the stream again (the meta
    object, object counts, size), or ``None`` when the meta object does not survive JSON
    unchanged, or would take more than half of the cache record's cap (a meta object may be a
    MiB of YAML, and non-ASCII text grows in JSON; a record over the cap reads as a broken
    entry). Then hits scan the stream."""
    import json

    from .xpkg.meta import package_from_meta

    try:
        text = json.dumps(pkg.meta, indent=1, sort_keys=True)  # as the record is written
        if len(text) > MAX_RECORD_BYTES // 2:
            return None
        meta = json.loads(text)
        same = package_from_meta(meta, dict(pkg.objects), pkg.size, pkg.sha256) == pkg
    except (TypeError, ValueError, CrossfetchError):
        return None
    if not same:
        return None
    return {"version": SUMMARY_VERSION, "meta": meta, "objects": dict(pkg.objects),
            "size": pkg.size}


def entry_package(entry: CacheEntry) -> Package:
    """The package a cache entry holds, its bytes verified against the recorded sha256. An
    entry validated under the current rules (``packageSummary``) is only hashed: the whole
    stream was parsed and linted when it was stored, and the hash proves it is the same
    stream. Any other entry is parsed again."""
    from .xpkg.meta import PackageScanner, package_from_meta

    summary = entry.meta.get("packageSummary")
    if isinstance(summary, dict) and summary.get("version") == SUMMARY_VERSION and \
            isinstance(summary.get("objects"), dict) and isinstance(summary.get("size"), int):
        verify_file(entry.package_path, entry.sha256)
        try:
            return package_from_meta(summary.get("meta"), dict(summary["objects"]),
                                     summary["size"], entry.sha256.split(":")[-1])
        except CrossfetchError:
            pass  # a summary that no longer builds: read the stream itself
    return verify_and_scan(entry.package_path, entry.sha256, PackageScanner())
