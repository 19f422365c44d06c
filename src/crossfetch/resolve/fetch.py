"""Fetching the dependency graph concurrently: tag lists and package metadata, each at most once.

One :class:`~crossfetch.client.Client` (one transport, connection pool and token cache) serves
every worker. The driver loop runs in the caller's thread and only *submits* work, so workers
never wait on each other (no pool deadlock whatever ``jobs`` is).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import CrossfetchError
from .semver import (
    FLAVOR_V1,
    FLAVOR_V3,
    Constraints,
    Flavor,
    SemverError,
    highest_match,
    is_digest,
    parse_constraint,
)

if TYPE_CHECKING:
    from ..client import Client
    from ..crossplane.profile import Profile
    from ..xpkg.meta import Package


@dataclass(frozen=True)
class Edge:
    """One ``spec.dependsOn`` entry of one package version."""

    parent: str
    parent_version: str
    source: str
    """The dependency's package as written (repository, no tag): Crossplane's node id."""
    constraint: str
    api_version: str
    kind: str
    form: str

    def label(self) -> str:
        return f"{self.source} {self.constraint}".rstrip()


@dataclass(frozen=True)
class Fetched:
    """One package version, read from the registry (or the cache)."""

    source: str
    version: str
    """The tag as spelled in the registry, or a digest."""
    digest: str
    resolved: str
    """The reference actually fetched (after an ImageConfig rewrite)."""
    package: Package
    edges: tuple[Edge, ...]
    cache_path: str

    @property
    def ref(self) -> str:
        sep = "@" if self.version.startswith("sha256:") else ":"
        return f"{self.source}{sep}{self.version}"


@dataclass(frozen=True)
class Pick:
    """Crossplane's choice for one (source, constraint): a version, none, or an error."""

    version: str | None
    error: str | None = None


def edges_of(source: str, version: str, package: Package) -> tuple[Edge, ...]:
    # the constraint is kept as written: Crossplane hands dep.Constraints to NewConstraint as is
    return tuple(Edge(source, version, d.package.strip(), d.version, d.api_version,
                      d.kind, d.form) for d in package.depends_on)


def ref_for(source: str, version: str) -> str:
    return f"{source}@{version}" if version.startswith("sha256:") else f"{source}:{version}"


@dataclass
class Fetcher:
    """Memoised, concurrent access to tags and package metadata under one Crossplane profile."""

    client: Client
    profile: Profile
    jobs: int = 8
    on_progress: Callable[[int, int], None] | None = None
    notes: list[str] = field(default_factory=list)
    requests: int = 0

    def __post_init__(self) -> None:
        self.flavor: Flavor = FLAVOR_V3 if self.profile.semver == "v3" else FLAVOR_V1
        self._pool = ThreadPoolExecutor(max_workers=max(1, self.jobs),
                                        thread_name_prefix="crossfetch-resolve")
        self._lock = threading.Lock()
        self._tags: dict[str, Future[list[str]]] = {}
        self._pkgs: dict[tuple[str, str], Future[Fetched]] = {}
        self._constraints: dict[str, Constraints | SemverError] = {}

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    # --- single items (memoised futures) ---

    def tags(self, source: str) -> Future[list[str]]:
        with self._lock:
            fut = self._tags.get(source)
            if fut is None:
                fut = self._tags[source] = self._pool.submit(self._list_tags, source)
            return fut

    def package(self, source: str, version: str) -> Future[Fetched]:
        key = (source, version)
        with self._lock:
            fut = self._pkgs.get(key)
            if fut is None:
                fut = self._pkgs[key] = self._pool.submit(self._pull, source, version)
            return fut

    def _list_tags(self, source: str) -> list[str]:
        # Crossplane lists dependency tags through the ImageConfig rewrite and pull secret from
        # v1.20 (CachedClient.ListVersions -> RewritePath; resolver reconciler.go
        # findDependencyVersionToInstall: RewritePath, then PullSecretFor the rewritten path).
        decision = self.client.decide(self.qualified(source))
        if decision.rewrite_source is not None and not self.profile.rewrite_for_tag_listing:
            self.notes.append(
                f"Crossplane {self.profile.version} lists the tags of {source} without the "
                f"rewrite ({decision.rewrite_source}); crossfetch listed them through it")
        with self._lock:
            self.requests += 1
        return self.client.registry(decision).tags()

    def _pull(self, source: str, version: str) -> Fetched:
        result = self.client.pull(ref_for(self.qualified(source), version))
        with self._lock:
            self.requests += 1
        return Fetched(source, version, result.digest, str(result.resolved), result.package,
                       edges_of(source, version, result.package), str(result.path))

    def qualified(self, source: str) -> str:
        """``source`` with a registry: Crossplane v1.x completes short names with its default
        registry (the profile's; ``--default-registry`` wins); v2 has none and refuses them."""
        first, sep, _ = source.partition("/")
        if sep and ("." in first or ":" in first or first == "localhost"):
            return source
        registry = self.client.default_registry or self.profile.default_registry
        return f"{registry}/{source}" if registry else source

    # --- Crossplane's pick ---

    def constraint(self, text: str) -> Constraints:
        """The parsed constraint under this profile's semver library (raises SemverError)."""
        c = self._constraints.get(text)
        if c is None:
            try:
                c = parse_constraint(text, self.flavor)
            except SemverError as e:
                c = e
            self._constraints[text] = c
        if isinstance(c, SemverError):
            raise c
        return c

    def pick(self, source: str, constraint: str, tags: list[str]) -> Pick:
        """``findDependencyVersionToInstall``: a digest verbatim, else the highest tag that
        satisfies the constraint, in its original spelling (crossplane
        internal/controller/pkg/resolver/reconciler.go)."""
        if is_digest(constraint):
            return Pick(constraint)
        try:
            c = self.constraint(constraint)
        except SemverError as e:
            return Pick(None, f"version constraint on dependency is invalid: {e}")
        best = highest_match(tags, c, drop_incomplete=self.profile.drop_incomplete_tags)
        return Pick(best.original if best else None)

    # --- the whole graph ---

    def crawl(self, root: Fetched) -> None:
        """Fetch, concurrently, every package version Crossplane could install from ``root``:
        for each distinct (dependency, constraint) edge, the version Crossplane would pick,
        then that version's own dependencies, until nothing new appears. Failures are kept in
        the futures and reported by whoever reads them."""
        pending: dict[Future[Any], tuple[str, str]] = {}
        waiting_tags: dict[str, set[str]] = {}
        seen_edges: set[tuple[str, str]] = set()
        done_pkgs: set[tuple[str, str]] = set()

        def add_pkg(source: str, version: str) -> None:
            if (source, version) not in done_pkgs:
                done_pkgs.add((source, version))
                pending[self.package(source, version)] = ("pkg", source)

        def add_edges(f: Fetched) -> None:
            for e in f.edges:
                if (e.source, e.constraint) in seen_edges:
                    continue
                seen_edges.add((e.source, e.constraint))
                if is_digest(e.constraint):
                    add_pkg(e.source, e.constraint)
                    continue
                tf = self.tags(e.source)
                if tf.done():
                    self._picked(e.source, e.constraint, tf, add_pkg)
                else:
                    first = e.source not in waiting_tags
                    waiting_tags.setdefault(e.source, set()).add(e.constraint)
                    if first:
                        pending[tf] = ("tags", e.source)

        done_pkgs.add((root.source, root.version))
        add_edges(root)
        while pending:
            finished, _ = wait(list(pending), return_when=FIRST_COMPLETED)
            for fut in finished:
                what, key = pending.pop(fut)
                if what == "tags":
                    for c in sorted(waiting_tags.pop(key, ())):
                        self._picked(key, c, fut, add_pkg)
                elif fut.exception() is None:
                    add_edges(fut.result())
            if self.on_progress:
                self.on_progress(len(done_pkgs), len(pending))

    def _picked(self, source: str, constraint: str, tags: Future[list[str]],
                add_pkg: Callable[[str, str], None]) -> None:
        if tags.exception() is not None:
            return
        pick = self.pick(source, constraint, tags.result())
        if pick.version:
            add_pkg(source, pick.version)

    # --- blocking reads for the simulation and the solver ---

    def get_tags(self, source: str) -> list[str] | CrossfetchError:
        try:
            return self.tags(source).result()
        except CrossfetchError as e:
            return e

    def get(self, source: str, version: str) -> Fetched | CrossfetchError:
        try:
            return self.package(source, version).result()
        except CrossfetchError as e:
            return e
