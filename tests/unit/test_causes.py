"""One error vocabulary: every cause the code raises, compares against or reports in a doctor
check is a member of crossfetch.errors.Cause, and every member is used."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

from crossfetch.errors import RETRY_SENT, RETRY_UNSENT, Cause

SRC = Path(__file__).resolve().parents[2] / "src" / "crossfetch"


def _strs(node: ast.AST) -> Iterator[str]:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        yield node.value
    elif isinstance(node, ast.Tuple | ast.List | ast.Set):
        for e in node.elts:
            yield from _strs(e)
    elif isinstance(node, ast.IfExp):
        yield from _strs(node.body)
        yield from _strs(node.orelse)


def _name(node: ast.AST) -> str:
    return node.id if isinstance(node, ast.Name) else \
        node.attr if isinstance(node, ast.Attribute) else ""


def causes_in(tree: ast.AST) -> Iterator[tuple[str, int]]:
    """Cause strings: ``cause=...`` arguments, ``default_cause``/``cause`` assignments,
    comparisons with ``.cause``, a doctor ``Check``'s third argument, and what a ``*_cause``
    function returns."""
    for n in ast.walk(tree):
        found: list[ast.AST] = []
        if (isinstance(n, ast.keyword) and n.arg == "cause") or (
                isinstance(n, ast.Assign) and any(_name(t) in ("default_cause", "cause")
                                                  for t in n.targets)):
            found = [n.value]
        elif isinstance(n, ast.Compare) and _name(n.left) == "cause":
            found = list(n.comparators)
        elif isinstance(n, ast.Call) and _name(n.func) == "Check" and len(n.args) >= 3:
            found = [n.args[2]]
        elif isinstance(n, ast.FunctionDef) and n.name.endswith("cause"):
            found = [r.value for r in ast.walk(n) if isinstance(r, ast.Return) and r.value] + \
                [v for d in ast.walk(n) if isinstance(d, ast.Dict) for v in d.values]
        for node in found:
            for value in _strs(node):
                yield value, getattr(n, "lineno", 0)


def _all_uses() -> dict[str, str]:
    uses: dict[str, str] = {}
    for path in sorted(SRC.rglob("*.py")):
        if "gen" in path.parts:
            continue
        for value, line in causes_in(ast.parse(path.read_text())):
            uses.setdefault(value, f"{path.relative_to(SRC)}:{line}")
    return uses


def test_every_cause_in_the_code_is_in_the_vocabulary() -> None:
    unknown = {v: where for v, where in _all_uses().items() if v not in set(Cause)}
    assert not unknown, ("causes missing from crossfetch.errors.Cause (add them there, or use "
                         f"an existing one): {unknown}")


def test_every_member_of_the_vocabulary_is_used() -> None:
    used = set(_all_uses())
    unused = sorted(c.value for c in Cause if c.value not in used)
    assert not unused, f"members of Cause that no code raises (remove them): {unused}"


def test_the_retry_sets_are_causes() -> None:
    members = set(Cause)
    assert members >= RETRY_SENT
    assert members >= RETRY_UNSENT
