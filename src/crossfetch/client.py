"""The public entry point: :class:`Client` pulls, heads and lists Crossplane packages.

The flow matches Crossplane's: rewrite, resolve the tag with HEAD (GET as fallback), look in
the cache by digest, then fetch *pinned to that digest*, read only the base layer, and store
``package.yaml`` while parsing it.
"""

from __future__ import annotations

import enum
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, NamedTuple, Protocol

from .cache import Cache, CacheEntry, Lease, variant_name
from .errors import CacheMiss, DigestMismatch, PolicyRefused, UsageError
from .oci import BlobSource, Descriptor, Manifest, Platform, resolve_image
from .policy.model import Decision, Endpoint
from .policy.resolver import Policy
from .reference import Reference

if TYPE_CHECKING:
    from .registry import RegistryClient
    from .transport.http import Transport
    from .transport.wire import Auth
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


@dataclass(frozen=True)
class PullResult:
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
    base_layer: dict[str, Any] | None = None
    endpoint: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

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
            "baseLayer": self.base_layer,
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
            from .transport.http import DEADLINE, Timeouts, Transport

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
        if self.via == "cri":
            return self._pull_via_runtime(decision)
        resolved = decision.resolved
        rc: RegistryClient | None = None
        if resolved.digest:
            top = resolved.digest
        elif self.pull_policy is PullPolicy.NEVER:
            recalled = self.cache.recall_tag(str(resolved))
            if recalled is None:
                raise CacheMiss(f"{resolved} is not in the cache and the pull policy is Never",
                                fix="pull it once with --pull-policy IfNotPresent, or pin a "
                                "cached digest")
            top = recalled
        else:
            rc = self.registry(decision)
            top = rc.head().digest

        if self.pull_policy is not PullPolicy.ALWAYS:
            cached = self._cached(decision, top)
            if cached is not None:
                return cached
        if self.pull_policy is PullPolicy.NEVER:
            raise CacheMiss(f"{resolved} ({top}) is not in the cache and the pull policy is Never",
                            fix="pull it with --pull-policy IfNotPresent first")
        rc = rc or self.registry(decision)
        source = _ProgressSource(rc, self._bar)
        try:
            return self._fetch(decision, source, top,
                               lambda: rc.last_endpoint.url if rc.last_endpoint else None)
        except DigestMismatch as e:
            if e.detail.get("retried"):
                raise
            # A blob that did not match its digest: once more, from another endpoint when
            # there is one (the RegistryClient puts the one that served it last).
            return self._fetch(decision, source, top,
                               lambda: rc.last_endpoint.url if rc.last_endpoint else None)

    def runtime(self, *, pull_timeout: float | None = None) -> Any:
        """A :class:`crossfetch.cri.RuntimeClient` for ``runtime_endpoint``; each call is
        bounded by ``timeout`` (60 s by default), the runtime's pull by ``pull_timeout``."""
        from .cri import DEFAULT_ENDPOINT, DEFAULT_NAMESPACE, RuntimeClient

        kw: dict[str, float] = {"pull_timeout": pull_timeout} if pull_timeout else {}
        return RuntimeClient(self.runtime_endpoint or DEFAULT_ENDPOINT,
                             namespace=self.runtime_namespace or DEFAULT_NAMESPACE,
                             timeout=self.timeout or 60, **kw)

    def _pull_via_runtime(self, decision: Decision) -> PullResult:
        """The kubelet path: the node's runtime pulls (with our credentials as CRI
        ``AuthConfig``), and the package is read from its content store."""
        from .cri import AuthConfig, RuntimeBlobSource

        resolved = decision.resolved
        ref = str(resolved)
        never = self.pull_policy is PullPolicy.NEVER
        if never:  # Never: the cache first, then what the runtime already has; never a pull
            known = resolved.digest or self.cache.recall_tag(ref)
            cached = self._cached(decision, known) if known else None
            if cached is not None:
                cached.extra.update(via="cri", runtimePulled=False)
                return cached
        with self.runtime() as rt:
            if never:
                if rt.image_status(ref) is None:
                    raise CacheMiss(f"{ref} is neither in the cache nor in the runtime, and the "
                                    "pull policy is Never", url=rt.endpoint, mode="cri",
                                    fix="pull it once with --pull-policy IfNotPresent (or "
                                    f"crictl pull {ref})")
                pulled = False
            else:
                keychain = decision.auth.keychain
                cred = keychain.resolve(resolved.registry) if keychain else None
                pulled = rt.ensure(ref, AuthConfig.from_credential(cred, resolved.registry)
                                   ).pulled
            source = RuntimeBlobSource(rt, ref)
            top = resolved.digest or source.fetch_manifest(resolved.identifier)[2]
            result = (self._cached(decision, top)
                      if self.pull_policy is not PullPolicy.ALWAYS else None)
            if result is None:
                endpoint = rt.endpoint
                result = self._fetch(decision, source, top, lambda: endpoint)
        result.extra.update(via="cri", runtimePulled=pulled)
        return result

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
        from .xpkg.meta import PackageScanner

        pkg = verify_and_scan(entry.package_path, entry.sha256, PackageScanner())
        meta = entry.meta
        return PullResult(decision.reference, decision.resolved, top,
                          str(meta.get("manifestDigest", top)), str(meta.get("mediaType", "")),
                          meta.get("platform"), pkg, entry.package_path, cached=True,
                          base_layer=meta.get("baseLayer"), endpoint=None)

    def _fetch(self, decision: Decision, source: BlobSource, top: str,
               endpoint: Callable[[], str | None]) -> PullResult:
        parsed, platform = resolve_image(source, *source.fetch_manifest(top), self.platform)
        pending = self.cache.begin()
        try:
            pkg, base = self._read_package(source, parsed, pending.package_path)
            meta = {"reference": str(decision.reference), "resolved": str(decision.resolved),
                    "manifestDigest": parsed.digest, "mediaType": parsed.media_type,
                    "platform": platform, "packageSha256": pkg.sha256.split(":")[-1],
                    "baseLayer": base, "kind": pkg.kind, "name": pkg.name}
            entry = self.cache.commit(pending, top, variant_name(platform), meta)
        except BaseException:
            self.cache.discard(pending)
            raise
        self._hold(entry)
        if entry.sha256.split(":")[-1] != meta["packageSha256"]:  # another writer's entry won
            from .xpkg.meta import PackageScanner

            pkg = verify_and_scan(entry.package_path, entry.sha256, PackageScanner())
        if not decision.resolved.digest:
            self.cache.remember_tag(str(decision.resolved), top)
        return PullResult(decision.reference, decision.resolved, top, parsed.digest,
                          parsed.media_type, platform, pkg, entry.package_path, cached=False,
                          base_layer=base, endpoint=endpoint())

    def _read_package(self, source: BlobSource, manifest: Manifest, dest: Path
                      ) -> tuple[Package, dict[str, Any] | None]:
        from .xpkg import extract_package

        try:
            with open(dest, "wb") as sink:
                read = extract_package(source, manifest, sink, tmp_dir=dest.parent)
        finally:
            if self.progress:
                self.progress.finish()
        base = {"digest": read.layer.digest, "size": read.layer.size, "how": read.how}
        if read.note:
            base["note"] = read.note
        return read.package, base

    def _bar(self, desc: Descriptor) -> Callable[[int], None] | None:
        if self.progress is None or desc.size < 1024 * 1024:
            return None
        return self.progress.start(f"blob {desc.digest[7:19]}", desc.size)


class _ProgressSource:
    """A :class:`~crossfetch.oci.BlobSource` over a registry that reports blob progress."""

    def __init__(self, rc: RegistryClient,
                 bar: Callable[[Descriptor], Callable[[int], None] | None]) -> None:
        self.rc = rc
        self.bar = bar

    def fetch_manifest(self, identifier: str) -> tuple[bytes, str, str]:
        return self.rc.fetch_manifest(identifier)

    def open_blob(self, desc: Descriptor) -> Iterator[bytes]:
        return self.rc.open_blob(desc, self.bar(desc))


def verify_and_scan(path: Path, sha256_hex: str, scanner: Any) -> Package:
    """Read a cached ``package.yaml`` once: hash it and scan it; raise on a hash mismatch."""
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1024 * 1024):
            h.update(chunk)
            scanner.feed(chunk)
    if h.hexdigest() != sha256_hex.split(":")[-1]:
        raise DigestMismatch(f"cached package {path} does not match its recorded sha256",
                             fix="the cache entry was removed; pull again")
    pkg: Package = scanner.finish()
    return pkg
