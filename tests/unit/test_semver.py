"""Masterminds/semver semantics, checked against the libraries' own test tables.

The rows live in tests/unit/semver_tables.py, transcribed as data from
github.com/Masterminds/semver (each table names its file, tag/commit and line range):
v1.5.0 ``version_test.go`` / ``constraints_test.go`` for Crossplane <= v2.2.x, and 71f2b39
(v3.4.0 + 6 commits) for Crossplane >= v2.3.0. Rows that test the unexported parser
(``parseConstraint``/``constraint.check``) run through :func:`_comparator` and the
per-comparator check with the same pre-release rule the Go test passes.
"""

from __future__ import annotations

import pytest

from crossfetch.resolve import semver as sv
from crossfetch.resolve.semver import FLAVOR_V1, FLAVOR_V3, SemverError

from . import semver_tables as t

_OPS_BY_FUNC = {
    "constraintGreaterThanEqual": {">=", "=>"}, "constraintLessThanEqual": {"<=", "=<"},
    "constraintGreaterThan": {">"}, "constraintLessThan": {"<"},
    "constraintTildeOrEqual": {"", "="}, "constraintNotEqual": {"!="},
    "constraintTilde": {"~", "~>"}, "constraintCaret": {"^"},
}


def _ids(rows: list[tuple[object, ...]]) -> list[str]:
    return [" | ".join(map(str, r)) for r in rows]


# --- versions -----------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "err"), t.V1_NEW_VERSION, ids=_ids(t.V1_NEW_VERSION))
def test_v1_new_version(text: str, err: bool) -> None:
    if err:
        with pytest.raises(SemverError):
            sv.parse_version(text, FLAVOR_V1)
    else:
        sv.parse_version(text, FLAVOR_V1)


@pytest.mark.parametrize(("text", "err"), t.V3_NEW_VERSION, ids=_ids(t.V3_NEW_VERSION))
def test_v3_new_version(text: str, err: bool) -> None:
    if err:
        with pytest.raises(SemverError):
            sv.parse_version(text, FLAVOR_V3)
    else:
        sv.parse_version(text, FLAVOR_V3)


@pytest.mark.parametrize(("text", "err"), t.V3_STRICT_NEW_VERSION,
                         ids=_ids(t.V3_STRICT_NEW_VERSION))
def test_v3_strict_new_version(text: str, err: bool) -> None:
    if err:
        with pytest.raises(SemverError):
            sv.strict_parse_version(text)
    else:
        sv.strict_parse_version(text)


@pytest.mark.parametrize(("flavor", "text"), [(FLAVOR_V1, x) for x in t.V1_ORIGINAL]
                         + [(FLAVOR_V3, x) for x in t.V3_ORIGINAL])
def test_original_is_kept(flavor: sv.Flavor, text: str) -> None:
    assert sv.parse_version(text, flavor).original == text


@pytest.mark.parametrize(("text", "prefix"), t.V3_ORIGINAL_V_PREFIX)
def test_original_v_prefix(text: str, prefix: str) -> None:
    assert sv.parse_version(text).original[:1].replace("1", "") == prefix


@pytest.mark.parametrize(("flavor", "a", "b", "expected"),
                         [(FLAVOR_V1, *r) for r in t.V1_COMPARE]
                         + [(FLAVOR_V3, *r) for r in t.V3_COMPARE])
def test_compare(flavor: sv.Flavor, a: str, b: str, expected: int) -> None:
    assert sv.parse_version(a, flavor).compare(sv.parse_version(b, flavor)) == expected


# --- single comparators (the unexported parser's tables) -----------------------------------

@pytest.mark.parametrize(("flavor", "text", "func", "con", "err"),
                         [(FLAVOR_V1, *r) for r in t.V1_PARSE_CONSTRAINT]
                         + [(FLAVOR_V3, *r) for r in t.V3_PARSE_CONSTRAINT])
def test_parse_comparator(flavor: sv.Flavor, text: str, func: str, con: str, err: bool) -> None:
    if err:
        with pytest.raises(SemverError):
            sv._comparator(text, flavor)
        return
    c = sv._comparator(text, flavor)
    assert str(c.con) == con
    assert c.op in _OPS_BY_FUNC[func]


def _one(flavor: sv.Flavor, text: str, version: str) -> bool:
    c = sv._comparator(text, flavor)
    v = sv.parse_version(version, flavor)
    if flavor == FLAVOR_V1:
        return sv._check_v1(v, c)
    return sv._check_v3(v, c, bool(c.con.pre))


@pytest.mark.parametrize(("flavor", "text", "version", "ok"),
                         [(FLAVOR_V1, *r) for r in t.V1_CONSTRAINT_CHECK]
                         + [(FLAVOR_V3, *r) for r in t.V3_CONSTRAINT_CHECK])
def test_comparator_check(flavor: sv.Flavor, text: str, version: str, ok: bool) -> None:
    assert _one(flavor, text, version) is ok


# --- public constraints ---------------------------------------------------------------------

@pytest.mark.parametrize(("flavor", "text", "ors", "count", "err"),
                         [(FLAVOR_V1, *r) for r in t.V1_NEW_CONSTRAINT]
                         + [(FLAVOR_V3, *r) for r in t.V3_NEW_CONSTRAINT])
def test_new_constraint(flavor: sv.Flavor, text: str, ors: int, count: int, err: bool) -> None:
    if err:
        with pytest.raises(SemverError):
            sv.parse_constraint(text, flavor)
        return
    c = sv.parse_constraint(text, flavor)
    assert (len(c.groups), len(c.groups[0])) == (ors, count)


@pytest.mark.parametrize(("flavor", "text", "version", "ok"),
                         [(FLAVOR_V1, *r) for r in t.V1_CONSTRAINTS_CHECK]
                         + [(FLAVOR_V1, *r) for r in t.V1_CONSTRAINTS_VALIDATE]
                         + [(FLAVOR_V3, *r) for r in t.V3_CONSTRAINTS_CHECK]
                         + [(FLAVOR_V3, *r) for r in t.V3_CONSTRAINTS_VALIDATE])
def test_constraints_check(flavor: sv.Flavor, text: str, version: str, ok: bool) -> None:
    c = sv.parse_constraint(text, flavor)
    assert c.check(sv.parse_version(version, flavor)) is ok


@pytest.mark.parametrize(("text", "version", "ok"), t.V3_CONSTRAINTS_CHECK_INCLUDE_PRERELEASE)
def test_constraints_check_include_prerelease(text: str, version: str, ok: bool) -> None:
    c = sv.parse_constraint(text, FLAVOR_V3)
    c = sv.Constraints(c.text, c.flavor, c.groups, include_prerelease=True)
    assert c.check(sv.parse_version(version)) is ok


@pytest.mark.parametrize(("flavor", "text", "expected"),
                         [(FLAVOR_V1, *r) for r in t.V1_REWRITE_RANGE]
                         + [(FLAVOR_V3, *r) for r in t.V3_REWRITE_RANGE])
def test_rewrite_range(flavor: sv.Flavor, text: str, expected: str) -> None:
    assert sv._rewrite_range(text, flavor) == expected


@pytest.mark.parametrize(("text", "version", "message"), t.V3_CONSTRAINTS_VALIDATE_MESSAGES)
def test_v3_validate_failures(text: str, version: str, message: str) -> None:
    """Rows whose ``Validate`` explains a failure: ``Check`` must say no."""
    assert not sv.parse_constraint(text).check(sv.parse_version(version))
