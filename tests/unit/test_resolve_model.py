"""Crossplane's one-package-per-reconcile model and the solution search, on in-memory graphs.

The registry side is faked here only to enumerate graph shapes quickly; the same behaviours run
against a real registry in tests/integration/test_resolve.py.
"""

from __future__ import annotations

from concurrent.futures import Future
from typing import Any

import pytest

from crossfetch.crossplane.profile import get
from crossfetch.errors import NotFound
from crossfetch.resolve.crossplane import n_and_some_more, simulate
from crossfetch.resolve.fetch import Fetched, Fetcher, edges_of
from crossfetch.resolve.solve import Solver
from crossfetch.xpkg.meta import Dependency, Package

Graph = dict[str, dict[str, list[tuple[str, str]]]]
"""source -> version -> [(dependency, constraint)]"""


def pkg(deps: list[tuple[str, str]], crossplane: str | None = None) -> Package:
    return Package("meta.pkg.crossplane.io/v1", "Provider", "p", crossplane,
                   [Dependency("pkg.crossplane.io/v1", "Provider", d, c, "new") for d, c in deps],
                   {}, {}, 0, "0" * 64, {})


class FakeFetcher(Fetcher):
    """Serves a dict graph instead of a registry; counts what was asked."""

    def __init__(self, graph: Graph, version: str = "v2.3") -> None:
        super().__init__(client=None, profile=get(version), jobs=1)  # type: ignore[arg-type]
        self.graph = graph
        self.asked: list[tuple[str, str]] = []

    def tags(self, source: str) -> Future[list[str]]:
        f: Future[list[str]] = Future()
        if source in self.graph:
            f.set_result(list(self.graph[source]))
        else:
            f.set_exception(NotFound(f"{source}: 404", status=404))
        return f

    def package(self, source: str, version: str) -> Future[Fetched]:
        self.asked.append((source, version))
        f: Future[Fetched] = Future()
        f.set_result(fetched(source, version, self.graph))
        return f


def fetched(source: str, version: str, graph: Graph, crossplane: str | None = None) -> Fetched:
    p = pkg(graph[source][version], crossplane)
    return Fetched(source, version, "sha256:" + "1" * 64, f"{source}:{version}", p,
                   edges_of(source, version, p), "")


def run(graph: Graph, root: str = "r", version: str = "v2.3") -> tuple[Any, Any]:
    f = FakeFetcher(graph, version)
    root_f = fetched(root, "v1.0.0", graph)
    return simulate(root_f, f, get(version).version), Solver(f).solve(root_f)


def test_n_and_some_more() -> None:
    assert n_and_some_more(["b"]) == "b"
    assert n_and_some_more(["b", "a"]) == "a, b"
    assert n_and_some_more(["c", "b", "a"]) == "a, b, and c"
    assert n_and_some_more(["e", "d", "c", "b", "a"]) == "a, b, c, and 2 more"


def test_install_order_is_lock_order_then_dependsOn_order() -> None:
    g: Graph = {"r": {"v1.0.0": [("a", ">=1.0.0"), ("b", ">=1.0.0")]},
                "a": {"v1.0.0": [("c", ">=1.0.0")]}, "b": {"v1.0.0": [("c", "<1.5.0")]},
                "c": {"v1.0.0": [], "v1.9.0": []}}
    out, sol = run(g)
    # c is implied first by a (installed before b): a's constraint alone picks v1.9.0
    assert [(i.fetched.source, i.fetched.version, i.reconcile) for i in out.installs] == [
        ("r", "v1.0.0", 0), ("a", "v1.0.0", 1), ("b", "v1.0.0", 2), ("c", "v1.9.0", 3)]
    assert out.revision_messages == {"b": (
        "cannot resolve package dependencies: incompatible dependencies: existing package "
        "c@v1.9.0 is incompatible with constraint <1.5.0")}
    assert sol.ok and sol.chosen["c"].version == "v1.0.0"


def test_missing_dependencies_are_sorted_three_then_more() -> None:
    g: Graph = {"r": {"v1.0.0": [(s, ">=9.0.0") for s in "edcba"]},
                **{s: {"v1.0.0": []} for s in "abcde"}}
    out, sol = run(g)
    assert out.lock_message == (
        "Error occurred during dependency resolution dependency (e) does not have a valid "
        "version to upgrade that satisfies all constraints. If there is a valid version that "
        "requires downgrade, manual intervention is required. Constraints: >=9.0.0")
    assert out.revision_messages["r"] == (
        'cannot resolve package dependencies: missing dependencies: "a" (>=9.0.0), '
        '"b" (>=9.0.0), "c" (>=9.0.0), and 2 more')
    assert not sol.ok and sol.failure.source == "e"


def test_digest_constraints_must_agree_and_not_mix() -> None:
    d1, d2 = "sha256:" + "a" * 64, "sha256:" + "b" * 64
    g: Graph = {"r": {"v1.0.0": [("a", ">=1.0.0"), ("b", ">=1.0.0")]},
                "a": {"v1.0.0": [("c", d1)]}, "b": {"v1.0.0": [("c", d2)]},
                "c": {d1: [], d2: []}}
    _, sol = run(g)
    assert not sol.ok
    assert sol.failure.reason == (
        f"a dependency package has different digests in parent constraints ([{d1} {d2}])")
    g["b"]["v1.0.0"] = [("c", ">=1.0.0")]
    _, sol = run(g)
    assert sol.failure.reason.startswith("a dependency package has different types of parent "
                                         "constraints")


def test_digest_is_used_verbatim_without_listing_tags() -> None:
    d = "sha256:" + "c" * 64
    g: Graph = {"r": {"v1.0.0": [("x", d)]}, "x": {d: []}}
    out, sol = run(g)
    assert out.ok and out.installs[1].fetched.version == d and sol.ok


def test_cycle() -> None:
    g: Graph = {"r": {"v1.0.0": [("a", ">=1.0.0")]}, "a": {"v1.0.0": [("b", ">=1.0.0")]},
                "b": {"v1.0.0": [("a", ">=1.0.0")]}}
    out, sol = run(g)
    assert out.lock_message == ("Error occurred during dependency resolution cannot sort DAG: "
                                "detected cycle on: a")
    assert not sol.ok and "detected cycle on: a" in sol.failure.reason


def test_backtracking_limit_is_a_clear_error() -> None:
    # a's every version needs c >= 2 while b needs c < 2: 30 versions of a to exhaust
    g: Graph = {"r": {"v1.0.0": [("a", ">=1.0.0"), ("b", ">=1.0.0")]},
                "a": {f"v1.{i}.0": [("c", ">=2.0.0")] for i in range(30)},
                "b": {"v1.0.0": [("c", "<2.0.0")]}, "c": {"v1.0.0": [], "v2.0.0": []}}
    f = FakeFetcher(g)
    sol = Solver(f, max_steps=10).solve(fetched("r", "v1.0.0", g))
    assert not sol.ok and sol.error is not None and "--max-steps 10" in sol.error


@pytest.mark.parametrize(("version", "ok"), [("v2.2", False), ("v2.3", True)])
def test_crossplane_version_constraint(version: str, ok: bool) -> None:
    g: Graph = {"r": {"v1.0.0": []}}
    f = FakeFetcher(g, version)
    root = fetched("r", "v1.0.0", g, crossplane=">=v2.3.0-0")
    out = simulate(root, f, get(version).version)
    assert out.ok is ok
    if not ok:
        assert out.crossplane_version_messages["r"] == (
            "incompatible Crossplane version: package is not compatible with Crossplane "
            "version (v2.2.4)")


def test_tag_listing_failure_is_crossplanes_message() -> None:
    g: Graph = {"r": {"v1.0.0": [("gone", ">=1.0.0")]}}
    out, sol = run(g)
    assert out.lock_message == ("Error occurred during dependency resolution cannot find "
                                "dependency version to install: cannot fetch dependency package "
                                "tags: gone: 404")
    assert not sol.ok


def test_a_package_depending_on_itself_is_a_cycle() -> None:
    g: Graph = {"r": {"v1.0.0": [("a", ">=1.0.0")]}, "a": {"v1.0.0": [("a", ">=1.0.0")]}}
    out, sol = run(g)
    assert out.lock_message is not None and out.lock_message.endswith("detected cycle on: a")
    assert not sol.ok and sol.failure.reason == "detected cycle on: a"


@pytest.mark.parametrize(("version", "expected"), [
    ("v1.19", "xpkg.upbound.io/crossplane-contrib/provider-helm"),
    ("v1.20", "xpkg.crossplane.io/crossplane-contrib/provider-helm"),
    ("v2.3", "crossplane-contrib/provider-helm")])
def test_short_dependency_names_take_the_releases_default_registry(version: str,
                                                                    expected: str) -> None:
    f = FakeFetcher({}, version)
    f.client = type("C", (), {"default_registry": None})()  # type: ignore[assignment]
    assert f.qualified("crossplane-contrib/provider-helm") == expected
    assert f.qualified("reg.local:5000/a/b") == "reg.local:5000/a/b"
