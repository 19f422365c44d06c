"""Resolve a package's whole dependency graph and describe it as a lock document."""

from __future__ import annotations

import copy
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .crossplane import Outcome, simulate
from .fetch import Fetched, Fetcher, edges_of
from .solve import DEFAULT_MAX_STEPS, Solution, Solver

if TYPE_CHECKING:
    from ..client import Client
    from ..crossplane.profile import Profile

LOCK_API = "crossfetch.dev/v1alpha1"


@dataclass
class Resolution:
    """What ``resolve`` found: the root, Crossplane's steady state, and a solution."""

    profile: Profile
    root: Fetched
    crossplane: Outcome
    solution: Solution
    notes: list[str] = field(default_factory=list)
    requests: int = 0

    # --- the lock document ---

    def packages(self) -> list[dict[str, Any]]:
        """What Crossplane installs, in install order (root excluded), with every parent."""
        installs = self.crossplane.installs
        by_source = {i.fetched.source: i for i in installs}
        depth = _depths(self.root, by_source)
        out = []
        for inst in installs[1:]:
            f = inst.fetched
            parents = [{"source": p.fetched.source, "version": p.fetched.version,
                        "constraint": e.constraint}
                       for p in installs for e in p.fetched.edges if e.source == f.source]
            out.append({**_identity(f), "constraint": inst.edge.constraint if inst.edge else None,
                        "parents": parents, "depth": depth.get(f.source), "reconcile":
                        inst.reconcile})
        return out

    def to_dict(self) -> dict[str, Any]:
        messages = self.crossplane.messages()
        return {
            "apiVersion": LOCK_API, "kind": "Lock",
            "crossplaneVersion": self.profile.version, "semver": self.profile.semver,
            "root": _identity(self.root),
            "packages": self.packages(),
            "crossplane": {**self.crossplane.to_dict(),
                           "message": messages[0] if messages else None},
            "solution": self.solution.to_dict(),
            "notes": list(self.notes),
            "requests": self.requests,
        }

    def pinned_configuration(self, *, pin: str = "digest") -> dict[str, Any]:
        """The root's meta object with each ``dependsOn`` constraint pinned to the chosen
        version (the solution's, else Crossplane's) or its digest. Both dependsOn forms are
        kept as written."""
        chosen = dict(self.solution.chosen) if self.solution.ok else {
            i.fetched.source: i.fetched for i in self.crossplane.installs}
        meta = copy.deepcopy(self.root.package.meta)
        deps = (meta.get("spec") or {}).get("dependsOn") or []
        for dep, edge in zip(deps, self.root.edges, strict=False):
            f = chosen.get(edge.source)
            if f is not None and isinstance(dep, dict):
                dep["version"] = f.digest if pin == "digest" else f.version
        return meta


def _identity(f: Fetched) -> dict[str, Any]:
    p = f.package
    out = {"source": f.source, "version": f.version, "digest": f.digest, "kind": p.kind,
           "apiVersion": p.api_version, "name": p.name}
    if f.resolved and not f.resolved.startswith(f.source):
        out["resolved"] = f.resolved
    return out


def _depths(root: Fetched, by_source: dict[str, Any]) -> dict[str, int]:
    depth = {root.source: 0}
    queue = deque([root])
    while queue:
        f = queue.popleft()
        for e in f.edges:
            if e.source not in depth and e.source in by_source:
                depth[e.source] = depth[f.source] + 1
                queue.append(by_source[e.source].fetched)
    return depth


def resolve(client: Client, ref: str, *, crossplane_version: str | None = None, jobs: int = 8,
            max_steps: int = DEFAULT_MAX_STEPS, crawl: bool = True,
            on_progress: Callable[[int, int], None] | None = None) -> Resolution:
    """Resolve ``ref``'s dependency graph as Crossplane ``crossplane_version`` would, and find a
    set of versions satisfying every constraint.

    With ``crawl`` (the default) every version Crossplane could pick is fetched up front with
    ``jobs`` workers sharing ``client``; without it, packages are fetched one at a time in
    Crossplane's own order (what a cluster does, one reconcile per package).
    """
    from ..crossplane.profile import get

    profile = get(crossplane_version)
    fetcher = Fetcher(client, profile, jobs=jobs if crawl else 1, on_progress=on_progress)
    try:
        parsed = client.parse(ref)
        result = client.pull(parsed)
        version = parsed.digest or parsed.tag or "latest"
        root = Fetched(parsed.name, version, result.digest, str(result.resolved),
                       result.package, edges_of(parsed.name, version, result.package),
                       str(result.path))
        if crawl:
            fetcher.crawl(root)
        outcome = simulate(root, fetcher, profile.version)
        solution = Solver(fetcher, max_steps=max_steps).solve(root)
    finally:
        fetcher.close()
    return Resolution(profile, root, outcome, solution, fetcher.notes, fetcher.requests + 1)
