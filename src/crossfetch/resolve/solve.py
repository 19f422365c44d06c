"""A set of versions that satisfies *every* constraint, found by a bounded backtracking search.

Crossplane picks each dependency from the first constraint that implied it; this search instead
intersects all parents' constraints, tries the highest candidate first, and backtracks on a
conflict. Digest constraints follow Crossplane's rule for parents of one package
(resolver/reconciler.go ``findDigestToUpdate``): every parent must name the same digest
(``a dependency package has different digests in parent constraints``), and a digest cannot be
mixed with semver constraints (``... different types of parent constraints``). Cycles are never a
solution (Crossplane refuses them). The number of candidate versions tried is capped.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import CrossfetchError
from .semver import SemverError, is_digest, sorted_versions

if TYPE_CHECKING:
    from .fetch import Edge, Fetched, Fetcher

DEFAULT_MAX_STEPS = 2000
PREFETCH = 2


class SearchLimit(Exception):
    """The search tried ``max_steps`` candidate versions without an answer."""


@dataclass(frozen=True)
class Requirement:
    edge: Edge
    chain: tuple[str, ...]
    """Who required it: ``root@v1``, ``config-a@v1.2.0``, ..., ending with the requiring
    package."""

    def describe(self) -> str:
        return " -> ".join((*self.chain, f"{self.edge.source} {self.edge.constraint}"))


@dataclass
class Failure:
    source: str
    reason: str
    requirements: list[Requirement]
    candidates: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "reason": self.reason,
                "chains": [r.describe() for r in self.requirements],
                "constraints": [r.edge.constraint for r in self.requirements],
                "candidatesTried": self.candidates}


@dataclass
class Solution:
    ok: bool
    chosen: dict[str, Fetched] = field(default_factory=dict)
    requirements: dict[str, list[Requirement]] = field(default_factory=dict)
    failure: Failure | None = None
    error: str | None = None
    steps: int = 0

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"ok": self.ok, "steps": self.steps}
        if self.ok:
            out["packages"] = [
                {"source": s, "version": f.version, "digest": f.digest,
                 "constraints": [r.edge.constraint for r in self.requirements.get(s, [])]}
                for s, f in self.chosen.items()]
        if self.error:
            out["error"] = self.error
        if self.failure:
            out["conflict"] = self.failure.to_dict()
        return out


class Solver:
    """Depth-first over the dependency sources in discovery order, highest version first."""

    def __init__(self, fetcher: Fetcher, *, max_steps: int = DEFAULT_MAX_STEPS) -> None:
        self.fetcher = fetcher
        self.max_steps = max_steps
        self.steps = 0
        self.failures: list[Failure] = []

    def solve(self, root: Fetched) -> Solution:
        chosen: dict[str, Fetched] = {root.source: root}
        reqs: dict[str, list[Requirement]] = {}
        order: list[str] = []
        self._add(root, (f"{root.source}@{root.version}",), reqs, order)
        try:
            ok = self._step(chosen, reqs, order)
        except SearchLimit:
            return Solution(False, error=(
                f"gave up after trying {self.steps} candidate versions (--max-steps "
                f"{self.max_steps}); raise --max-steps, or pin the packages named in the "
                "conflict below"), failure=self._worst(), steps=self.steps)
        if ok:
            # report in discovery order, root first
            ordered = {root.source: root, **{s: chosen[s] for s in order if s in chosen}}
            return Solution(True, ordered, reqs, steps=self.steps)
        return Solution(False, failure=self._worst(), steps=self.steps,
                        error="no set of versions satisfies every constraint")

    def _worst(self) -> Failure | None:
        if not self.failures:
            return None
        # the source that failed most often is the heart of the conflict; its first failure
        # (at the highest versions) carries the chains of who required what
        counts = Counter(f.source for f in self.failures)
        src = counts.most_common(1)[0][0]
        return next(f for f in self.failures if f.source == src)

    @staticmethod
    def _add(f: Fetched, chain: tuple[str, ...], reqs: dict[str, list[Requirement]],
             order: list[str]) -> None:
        for e in f.edges:
            reqs.setdefault(e.source, []).append(Requirement(e, chain))
            if e.source not in order:
                order.append(e.source)

    @staticmethod
    def _remove(f: Fetched, reqs: dict[str, list[Requirement]]) -> None:
        for e in f.edges:
            lst = reqs.get(e.source, [])
            for i in range(len(lst) - 1, -1, -1):
                if lst[i].edge is e:
                    del lst[i]
                    break
            if not lst:
                reqs.pop(e.source, None)

    def _step(self, chosen: dict[str, Fetched], reqs: dict[str, list[Requirement]],
              order: list[str]) -> bool:
        source = next((s for s in order if s in reqs and s not in chosen), None)
        if source is None:
            return True
        mine = list(reqs[source])
        candidates, reason = self._candidates(source, mine)
        if not candidates:
            self.failures.append(Failure(source, reason, mine))
            return False
        for i, version in enumerate(candidates):
            if i:  # the first choice failed: fetch the next ones while this one is checked
                for ahead in candidates[i + 1:i + 1 + PREFETCH]:
                    self.fetcher.package(source, ahead)
            self.steps += 1
            if self.steps > self.max_steps:
                raise SearchLimit
            got = self.fetcher.get(source, version)
            if isinstance(got, CrossfetchError):
                self.failures.append(Failure(source, f"{source}@{version}: {got.message}", mine,
                                             [version]))
                continue
            problem = self._conflicts(got, chosen)
            if problem:
                self.failures.append(Failure(*problem, [version]))
                continue
            chosen[source] = got
            chain = (*mine[0].chain, f"{source}@{version}")
            self._add(got, chain, reqs, order)
            if self._step(chosen, reqs, order):
                return True
            self._remove(got, reqs)
            del chosen[source]
        return False

    def _candidates(self, source: str, mine: list[Requirement]) -> tuple[list[str], str]:
        digests = sorted({r.edge.constraint for r in mine if is_digest(r.edge.constraint)})
        semvers = [r for r in mine if not is_digest(r.edge.constraint)]
        texts = [r.edge.constraint for r in mine]
        if len(digests) > 1:
            return [], f"a dependency package has different digests in parent constraints " \
                       f"({_go_list(texts)})"
        if digests and semvers:
            return [], f"a dependency package has different types of parent constraints " \
                       f"({_go_list(texts)})"
        if digests:
            return digests, ""
        tags = self.fetcher.get_tags(source)
        if isinstance(tags, CrossfetchError):
            return [], f"cannot list the tags of {source}: {tags.message}"
        try:
            cons = [self.fetcher.constraint(r.edge.constraint) for r in semvers]
        except SemverError as e:
            return [], f"version constraint on dependency is invalid: {e}"
        versions = sorted_versions(tags, self.fetcher.flavor,
                                   drop_incomplete=self.fetcher.profile.drop_incomplete_tags)
        ok = [v.original for v in reversed(versions) if all(c.check(v) for c in cons)]
        if not ok:
            return [], (f"no version of {source} satisfies {' and '.join(texts)} (of "
                        f"{len(versions)} usable tags)")
        return ok, ""

    def _conflicts(self, got: Fetched, chosen: dict[str, Fetched]
                   ) -> tuple[str, str, list[Requirement]] | None:
        """Does ``got`` contradict a version already chosen, or close a cycle?"""
        for e in got.edges:
            req = [Requirement(e, (f"{got.source}@{got.version}",))]
            if e.source == got.source:
                return e.source, f"detected cycle on: {e.source}", req
            have = chosen.get(e.source)
            if have is None:
                continue
            if _reaches(have, got.source, chosen):
                return e.source, f"detected cycle on: {e.source}", req
            if is_digest(e.constraint) or is_digest(have.version):
                if have.version != e.constraint:
                    return e.source, (f"{got.source}@{got.version} requires {e.source} "
                                      f"{e.constraint}, but {have.version} is chosen"), req
                continue
            try:
                c = self.fetcher.constraint(e.constraint)
            except SemverError as err:
                return e.source, f"version constraint on dependency is invalid: {err}", req
            versions = sorted_versions([have.version], self.fetcher.flavor, drop_incomplete=False)
            if not versions or not c.check(versions[0]):
                return e.source, (f"{got.source}@{got.version} requires {e.source} "
                                  f"{e.constraint}, but {have.version} is chosen"), req
        return None


def _reaches(start: Fetched, target: str, chosen: dict[str, Fetched]) -> bool:
    stack, seen = [start], {start.source}
    while stack:
        f = stack.pop()
        for e in f.edges:
            if e.source == target:
                return True
            nxt = chosen.get(e.source)
            if nxt is not None and e.source not in seen:
                seen.add(e.source)
                stack.append(nxt)
    return False


def _go_list(items: list[str]) -> str:
    """Go's ``%v`` of a string slice: ``[a b]``."""
    return "[" + " ".join(items) + "]"
