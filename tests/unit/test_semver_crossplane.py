"""Where the two libraries Crossplane links differ, and how Crossplane picks from a tag list.

Facts from shared/docs/upstream-facts.md §2 and §4 (Masterminds/semver v1.5.0 vs v3.4+,
Crossplane internal/controller/pkg/resolver/reconciler.go ``findDependencyVersionToInstall``).
"""

from __future__ import annotations

import pytest

from crossfetch.resolve.semver import (
    FLAVOR_V1,
    FLAVOR_V3,
    SemverError,
    highest_match,
    is_digest,
    parse_constraint,
    parse_version,
)


def ok(flavor: str, constraint: str, version: str) -> bool:
    return parse_constraint(constraint, flavor).check(parse_version(version, flavor))  # type: ignore[arg-type]


def test_space_and_is_an_error_in_v1_only() -> None:
    with pytest.raises(SemverError, match="improper constraint"):
        parse_constraint(">=1.0 <2.0", FLAVOR_V1)
    assert ok(FLAVOR_V3, ">=1.0 <2.0", "1.5.0")
    assert not ok(FLAVOR_V3, ">=1.0 <2.0", "2.0.0")
    assert ok(FLAVOR_V1, ">=1.0, <2.0", "1.5.0")


@pytest.mark.parametrize(("version", "v1", "v3"), [
    ("0.0.1", True, True), ("0.0.2", True, False), ("0.5.0", True, False),
    ("1.0.0", False, False)])
def test_caret_on_0_0_x(version: str, v1: bool, v3: bool) -> None:
    """v1.5.0: ^0.0.1 = >=0.0.1 <1.0.0; v3: ^0.0.1 = >=0.0.1 <0.0.2."""
    assert ok(FLAVOR_V1, "^0.0.1", version) is v1
    assert ok(FLAVOR_V3, "^0.0.1", version) is v3


def test_prerelease_per_comparator_vs_per_and_group() -> None:
    c = ">=1.0.0-0, <2.0.0"
    assert not ok(FLAVOR_V1, c, "1.5.0-rc.1")  # "<2.0.0" names no pre-release: excluded
    assert ok(FLAVOR_V3, c, "1.5.0-rc.1")  # the group names one: allowed (v3.4.0, #267)
    assert ok(FLAVOR_V1, ">=1.0.0-0, <2.0.0-0", "1.5.0-rc.1")


@pytest.mark.parametrize("flavor", [FLAVOR_V1, FLAVOR_V3])
def test_dash_zero_idiom(flavor: str) -> None:
    assert ok(flavor, ">=v1.12.1-0", "1.13.0-rc.1")
    assert ok(flavor, ">=v1.12.1-0", "v1.14.0")
    assert not ok(flavor, ">=v1.12.1", "1.13.0-rc.1")
    assert not ok(flavor, "*", "1.2.3-alpha.1")


def test_wildcard_pre_release_only_in_v3() -> None:
    assert ok(FLAVOR_V3, "*-0", "1.2.3-alpha.1")
    assert not ok(FLAVOR_V1, "*-0", "1.2.3-alpha.1")  # v1.5.0 drops the pre after "*"


@pytest.mark.parametrize("flavor", [FLAVOR_V1, FLAVOR_V3])
def test_hyphen_range_needs_spaces(flavor: str) -> None:
    assert ok(flavor, "1.2 - 1.4.5", "1.4.5")
    assert not ok(flavor, "1.2 - 1.4.5", "1.4.6")
    assert not ok(flavor, "1.2-1.4.5", "1.3.0")  # 1.2.0 with pre-release "1.4.5"


def test_partial_version_is_exact_in_v1_a_range_in_v3() -> None:
    assert not ok(FLAVOR_V1, "<=1.2", "1.2.5")
    assert ok(FLAVOR_V3, "<=1.2", "1.2.5")


@pytest.mark.parametrize("flavor", [FLAVOR_V1, FLAVOR_V3])
@pytest.mark.parametrize(("constraint", "version", "expected"), [
    ("~1.2.3", "1.2.9", True), ("~1.2.3", "1.3.0", False), ("~0.2", "0.2.7", True),
    ("~0.2", "0.3.0", False), ("~1", "1.9.0", True), ("~1", "2.0.0", False),
    ("^1.2.3", "1.9.0", True), ("^1.2.3", "2.0.0", False), ("1.x", "1.7.1", True),
    ("1.2.x", "1.3.0", False), ("<=2.x", "2.9.9", True), ("!=1.2.3", "1.2.4", True)])
def test_common_operators(flavor: str, constraint: str, version: str, expected: bool) -> None:
    assert ok(flavor, constraint, version) is expected


def test_caret_on_0_x_in_v3() -> None:
    assert ok(FLAVOR_V3, "^0.2.3", "0.2.9")
    assert not ok(FLAVOR_V3, "^0.2.3", "0.3.0")
    assert ok(FLAVOR_V1, "^0.2.3", "0.3.0")
    assert not ok(FLAVOR_V3, "^0.0", "0.1.0")
    assert ok(FLAVOR_V3, "^0", "0.9.0")


def test_v3_rejects_leading_zero_prerelease_numbers_v1_accepts() -> None:
    with pytest.raises(SemverError):
        parse_version("1.2.3-beta.01", FLAVOR_V3)
    assert parse_version("1.2.3-beta.01", FLAVOR_V1).pre == "beta.01"


def test_incomplete_tags_and_original_spelling() -> None:
    """Crossplane's own test: tags v1.0.0, v1, v1.0, v1.0.1, v2.0.0, v2 with constraint v1.0.0
    give v1.0.0 once incomplete tags are dropped (v2.1.0, commit 3cd0af315)."""
    tags = ["v1.0.0", "v1", "v1.0", "v1.0.1", "v2.0.0", "v2", "latest", "main-abc"]
    c = parse_constraint("v1.0.0")
    best = highest_match(tags, c, drop_incomplete=True)
    assert best is not None and best.original == "v1.0.0"
    # before v2.1 "v1" and "v1.0" parse as 1.0.0 too: the last of the equals wins
    loose = highest_match(tags, c, drop_incomplete=False)
    assert loose is not None and str(loose) == "1.0.0"
    top = highest_match(tags, parse_constraint(">=1.0.0"), drop_incomplete=True)
    assert top is not None and top.original == "v2.0.0"


def test_digest_constraint() -> None:
    assert is_digest("sha256:" + "a" * 64)
    assert not is_digest("sha256:abc")
    assert not is_digest(">=v1.0.0")


@pytest.mark.parametrize("flavor", [FLAVOR_V1, FLAVOR_V3])
def test_improper_constraint_message(flavor: str) -> None:
    """The text Crossplane wraps: ``improper constraint: %s`` in v1.5.0 and v3.4.0."""
    with pytest.raises(SemverError) as e:
        parse_constraint(">= bar", flavor)  # type: ignore[arg-type]
    assert str(e.value) == "improper constraint: >= bar"
