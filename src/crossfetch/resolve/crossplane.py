"""What a given Crossplane release will do with a package's dependency graph.

Two controllers act (crossplane, ``internal/controller/pkg``):

* the **Lock resolver** (``resolver/reconciler.go`` ``Reconcile``): each reconcile builds a DAG
  from ``lock.packages`` (``internal/dag/dag.go`` ``MapDag.Init``: nodes in Lock order, then
  their edges; a dependency not yet in the Lock is *implied*, once, by the first edge that
  names it), refuses cycles (``Sort``: ``detected cycle on: X``), and creates only
  ``implied[0]``, with the version ``findDependencyVersionToInstall`` picks from *that edge's*
  constraint alone. The new package's revision then appends itself to the Lock, and the
  resolver runs again. So a graph installs one package per reconcile, in this order.
* the **revision reconciler** (``revision/dependency.go`` ``Resolve``): each package checks
  that its whole dependency tree is in the Lock (``missing dependencies: …``, sorted, three
  named then ``and N more``: ``NDependenciesAndSomeMore(3)`` over crossplane-runtime
  ``StableNAndSomeMore``) and that each direct dependency's installed version satisfies its
  constraint (``incompatible dependencies: existing package <src>@<ver> is incompatible with
  constraint <c>``, joined by ``; ``).

The Lock's condition message is ``Error occurred during dependency resolution <err>``
(``apis/pkg/v1beta1`` ``ResolutionFailed``). Upgrades/downgrades (alpha flags) are not modelled.

Read at (github.com/crossplane/crossplane): ``resolver/reconciler.go`` 0192034, ``dag/dag.go``
04c770c, ``revision/dependency.go`` 01186b7 and main (``NDependenciesAndSomeMore`` and the
"existing package ... is incompatible with constraint" wording, PR #5314); crossplane-runtime
``pkg/resource`` ``StableNAndSomeMore``; see also shared/docs/upstream-facts.md §2 (2d040d2).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import CrossfetchError
from .semver import SemverError, is_digest, parse_version

if TYPE_CHECKING:
    from .fetch import Edge, Fetched, Fetcher

#: resolver/reconciler.go errFmtNoValidVersion
NO_VALID_VERSION = ("dependency ({}) does not have a valid version to upgrade that satisfies all "
                    "constraints. If there is a valid version that requires downgrade, manual "
                    "intervention is required. Constraints: {}")
LOCK_PREFIX = "Error occurred during dependency resolution "
MAX_RECONCILES = 10_000


@dataclass(frozen=True)
class Install:
    """One package the Lock resolver creates (or the root, installed by the user)."""

    fetched: Fetched
    edge: Edge | None
    """The edge whose constraint chose the version (None for the root)."""
    reconcile: int


@dataclass
class Outcome:
    """The steady state Crossplane reaches: what it installed and the messages it sets."""

    installs: list[Install] = field(default_factory=list)
    lock_message: str | None = None
    """The Lock's ``Resolved`` condition message when resolution fails."""
    revision_messages: dict[str, str] = field(default_factory=dict)
    """Per installed source: the revision's dependency error, if any."""
    crossplane_version_messages: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not (self.lock_message or self.revision_messages
                    or self.crossplane_version_messages)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"ok": self.ok, "reconciles": len(self.installs) - 1 +
                               (1 if self.lock_message else 0)}
        if self.lock_message:
            out["lock"] = {"type": "Resolved", "status": "False",
                           "reason": "DependencyResolutionFailed",
                           "message": self.lock_message}
        if self.revision_messages:
            out["revisions"] = [{"source": s, "message": m}
                                for s, m in self.revision_messages.items()]
        if self.crossplane_version_messages:
            out["crossplaneVersion"] = [{"source": s, "message": m}
                                        for s, m in self.crossplane_version_messages.items()]
        return out

    def messages(self) -> list[str]:
        out = [self.lock_message] if self.lock_message else []
        out += [f"{s}: {m}" for s, m in self.revision_messages.items()]
        out += [f"{s}: {m}" for s, m in self.crossplane_version_messages.items()]
        return out


def n_and_some_more(items: list[str], n: int = 3) -> str:
    """crossplane-runtime ``StableNAndSomeMore``: sorted; ``a, b, and c``; ``a, b, c, and N
    more``."""
    names = sorted(items)
    if len(names) > n:
        return f"{', '.join(names[:n])}, and {len(names) - n} more"
    if len(names) == n and n > 1:
        return f"{', '.join(names[:n - 1])}, and {names[n - 1]}"
    return ", ".join(names)


def _dep_label(e: Edge) -> str:
    # NDependenciesAndSomeMore: "%q" or "%q (%s)" of identifier and constraints
    return f'"{e.source}" ({e.constraint})' if e.constraint else f'"{e.source}"'


def _find_cycle(lock: list[Install]) -> str | None:
    """``MapDag.Sort``'s depth-first search; the node it names depends on Go's map order, so
    crossfetch starts from the Lock order to name one deterministically."""
    graph = {i.fetched.source: [e.source for e in i.fetched.edges] for i in lock}
    visited: set[str] = set()

    def visit(n: str, stack: set[str]) -> str | None:
        visited.add(n)
        stack.add(n)
        for m in graph.get(n, []):
            if m not in visited:
                found = visit(m, stack)
                if found:
                    return found
            elif m in stack:
                return m
        stack.discard(n)
        return None

    for i in lock:
        if i.fetched.source not in visited:
            found = visit(i.fetched.source, set())
            if found:
                return found
    return None


def simulate(root: Fetched, fetcher: Fetcher, crossplane_version: str) -> Outcome:
    """Run Crossplane's reconcile loop over the fetched graph (blocking on ``fetcher`` for
    anything the crawl has not fetched yet)."""
    out = Outcome(installs=[Install(root, None, 0)])
    for n in range(1, MAX_RECONCILES):
        lock = out.installs
        cycle = _find_cycle(lock)
        if cycle:
            out.lock_message = f"{LOCK_PREFIX}cannot sort DAG: detected cycle on: {cycle}"
            break
        implied = _implied(lock)
        if not implied:
            break
        edge = implied[0][0]
        version, err = _choose(edge, fetcher)
        if err:
            out.lock_message = LOCK_PREFIX + err
            break
        if version is None:
            out.lock_message = NO_VALID_VERSION.format(edge.source, edge.constraint)
            out.lock_message = LOCK_PREFIX + out.lock_message
            break
        got = fetcher.get(edge.source, version)
        if isinstance(got, CrossfetchError):
            # The package is created, but its revision cannot fetch it: it never joins the Lock.
            out.revision_messages[edge.source] = f"cannot fetch {edge.source}@{version}: " \
                                                 f"{got.message}"
            break
        out.installs.append(Install(got, edge, n))
    _check_revisions(out, fetcher)
    _check_crossplane_version(out, fetcher, crossplane_version)
    return out


def _implied(lock: list[Install]) -> list[tuple[Edge, Install]]:
    nodes = {i.fetched.source for i in lock}
    implied: list[tuple[Edge, Install]] = []
    for i in lock:
        for e in i.fetched.edges:
            if e.source not in nodes:
                nodes.add(e.source)
                implied.append((e, i))
    return implied


def _choose(edge: Edge, fetcher: Fetcher) -> tuple[str | None, str | None]:
    if is_digest(edge.constraint):
        return edge.constraint, None
    try:
        fetcher.constraint(edge.constraint)
    except SemverError as e:
        return None, ("cannot find dependency version to install: version constraint on "
                      f"dependency is invalid: {e}")
    tags = fetcher.get_tags(edge.source)
    if isinstance(tags, CrossfetchError):
        return None, ("cannot find dependency version to install: cannot fetch dependency "
                      f"package tags: {tags.message}")
    pick = fetcher.pick(edge.source, edge.constraint, tags)
    return pick.version, pick.error


def _check_revisions(out: Outcome, fetcher: Fetcher) -> None:
    """``PackageDependencyManager.Resolve`` for each installed package, at steady state."""
    installed = {i.fetched.source: i for i in out.installs}
    missing_nodes = {e.source: e for e, _ in _implied(out.installs)}
    for inst in out.installs:
        src = inst.fetched.source
        if src in out.revision_messages:
            continue
        tree = _trace(src, installed)
        missing = [_dep_label(missing_nodes[s]) for s in tree if s in missing_nodes]
        if missing:
            out.revision_messages[src] = "cannot resolve package dependencies: missing " \
                                         f"dependencies: {n_and_some_more(missing)}"
            continue
        bad: list[str] = []
        for e in inst.fetched.edges:
            dep = installed.get(e.source)
            if dep is None:
                continue
            version = dep.fetched.version
            if is_digest(e.constraint):
                if version != e.constraint:
                    out.revision_messages[src] = (
                        "cannot resolve package dependencies: existing package "
                        f"{e.source}@{version} is incompatible with constraint "
                        f"{e.constraint.strip()}")
                    break
                continue
            try:
                c = fetcher.constraint(e.constraint)
                v = parse_version(version, fetcher.flavor)
            except SemverError as err:
                out.revision_messages[src] = f"cannot resolve package dependencies: {err}"
                break
            if not c.check(v):
                # dependency.go: TrimSpace(dep.Constraints); an empty one adds no clause
                bad.append(f"existing package {e.source}@{version}" + (
                    f" is incompatible with constraint {e.constraint.strip()}"
                    if e.constraint else ""))
        if bad and src not in out.revision_messages:
            out.revision_messages[src] = ("cannot resolve package dependencies: incompatible "
                                          f"dependencies: {'; '.join(bad)}")


def _trace(src: str, installed: dict[str, Install]) -> list[str]:
    """``MapDag.TraceNode``: every node reachable from ``src`` (not ``src`` itself unless a
    cycle leads back), depth first."""
    tree: list[str] = []
    seen: set[str] = set()

    def walk(n: str) -> None:
        inst = installed.get(n)
        if inst is None:
            return
        for e in inst.fetched.edges:
            if e.source in seen:
                continue
            seen.add(e.source)
            tree.append(e.source)
            walk(e.source)

    walk(src)
    return tree


def _check_crossplane_version(out: Outcome, fetcher: Fetcher, version: str) -> None:
    """``spec.crossplane.version`` against the Crossplane version (revision reconciler:
    ``incompatible Crossplane version: package is not compatible with Crossplane version
    (vX.Y.Z)``)."""
    try:
        v = parse_version(version, fetcher.flavor)
    except SemverError:
        return
    for inst in out.installs:
        want = inst.fetched.package.crossplane
        if not want:
            continue
        try:
            ok = fetcher.constraint(want).check(v)
        except SemverError as e:
            out.crossplane_version_messages[inst.fetched.source] = \
                f"incompatible Crossplane version: {e}"
            continue
        if not ok:
            out.crossplane_version_messages[inst.fetched.source] = (
                "incompatible Crossplane version: package is not compatible with Crossplane "
                f"version ({version})")
