"""Masterminds/semver, as Crossplane links it: v1.5.0 (Crossplane <= v2.2.x) and v3.4+ (>= v2.3.0).

No Python library implements Masterminds' semantics (node-semver and python-semver differ on
pre-releases, partial versions, hyphen ranges and tilde/caret on 0.x), so this module
re-implements them from the libraries' documented behaviour and their published test tables
(tests/unit/semver_tables.py names each source file and line range). Behaviour, not code:

* ``FLAVOR_V1`` (github.com/Masterminds/semver v1.5.0, ``constraints.go``/``version.go``):
  AND is split on commas only, so ``>=1.0 <2.0`` is an "improper constraint"; a partial
  version ``1.2`` is exact (only a missing minor or an ``x`` makes a comparator "dirty");
  caret only keeps the major (``^0.0.1`` = ``>=0.0.1 <1.0.0``); every comparator excludes
  pre-release versions unless *its own* version has a pre-release.
* ``FLAVOR_V3`` (v3.4.0+, commit 71f2b39): AND by comma or whitespace; partial versions are
  ranges; caret scopes 0.x (``^0.2.3`` = ``<0.3.0``, ``^0.0.3`` = ``<0.0.4``); pre-releases are
  allowed for a whole AND group when any comparator in it names one (v3.4.0, issue #267);
  ``NewVersion`` coerces (``v`` prefix, padding, leading zeros), ``StrictNewVersion`` does not.

In both, hyphen ranges need spaces (``1.2 - 1.4.5``; ``1.2-1.4.5`` is a pre-release), ``x``,
``X`` and ``*`` are wildcards, and ``Original()`` keeps a tag's spelling.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

Flavor = Literal["v1.5.0", "v3"]
FLAVOR_V1: Flavor = "v1.5.0"
FLAVOR_V3: Flavor = "v3"
FLAVORS: tuple[Flavor, ...] = (FLAVOR_V1, FLAVOR_V3)

_INT64_MAX = 2**63 - 1
_UINT64_MAX = 2**64 - 1
_WS = r"[ \t\n\f\r]"  # Go RE2's \s (ASCII only); Python's \s would also take \v and Unicode
_IDENT = r"[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*"
_ALLOWED = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-0123456789")

# A version as NewVersion reads it (v1.5.0, and v3 with CoerceNewVersion, the default).
_LOOSE = re.compile(rf"v?([0-9]+)(?:\.([0-9]+))?(?:\.([0-9]+))?(?:-({_IDENT}))?(?:\+({_IDENT}))?")
# The version part of a comparator: numbers may be wildcards. Masterminds' character class
# also admits '|', so "1|2" parses as a comparator and then fails as a version.
_XNUM = r"[0-9xX*|]+"
_CV = rf"v?({_XNUM})(\.{_XNUM})?(\.{_XNUM})?(-{_IDENT})?(?:\+{_IDENT})?"
_CV_PLAIN = rf"v?{_XNUM}(?:\.{_XNUM})?(?:\.{_XNUM})?(?:-{_IDENT})?(?:\+{_IDENT})?"
_OPS = r"!=|>=|=>|<=|=<|~>|>|<|=|~|\^|"  # longest first; '' (no operator) last
_COMPARATOR = re.compile(rf"{_WS}*({_OPS}){_WS}*({_CV}){_WS}*")
_FIND = re.compile(rf"(?:{_OPS}){_WS}*{_CV_PLAIN}")
_VALID_V3 = re.compile(
    rf"{_WS}*(?:{_OPS}){_WS}*{_CV_PLAIN}{_WS}*(?:(?:{_WS}+|,{_WS}*)(?:{_OPS}){_WS}*{_CV_PLAIN}{_WS}*)*")
_RANGE = re.compile(rf"{_WS}*({_CV_PLAIN}){_WS}+-{_WS}+({_CV_PLAIN}){_WS}*")


class SemverError(ValueError):
    """A version or a constraint that the library would refuse."""


def _is_x(s: str) -> bool:
    return s in ("x", "X", "*")


@dataclass(frozen=True)
class Version:
    """A parsed version; ``original`` is the text as given (a tag keeps its spelling)."""

    major: int
    minor: int
    patch: int
    pre: str = ""
    metadata: str = ""
    original: str = field(default="", compare=False)

    def __str__(self) -> str:
        """Masterminds' ``String()``: no ``v``, padded to three numbers."""
        s = f"{self.major}.{self.minor}.{self.patch}"
        if self.pre:
            s += f"-{self.pre}"
        if self.metadata:
            s += f"+{self.metadata}"
        return s

    @property
    def complete(self) -> bool:
        """Crossplane v2.1+ drops tags whose ``String()`` differs from the tag less its ``v``
        (``v1``, ``v1.0``, ``v01.2.3``): internal/controller/pkg/resolver/reconciler.go,
        commit 3cd0af315."""
        text = self.original[1:] if self.original.startswith("v") else self.original
        return str(self) == text

    def compare(self, other: Version) -> int:
        """-1, 0 or 1; build metadata is ignored, pre-releases sort below their release."""
        a = (self.major, self.minor, self.patch)
        b = (other.major, other.minor, other.patch)
        if a != b:
            return -1 if a < b else 1
        if self.pre == other.pre:
            return 0
        if not self.pre:
            return 1
        if not other.pre:
            return -1
        return _compare_pre(self.pre, other.pre)

    def __lt__(self, other: Version) -> bool:
        return self.compare(other) < 0

    def __le__(self, other: Version) -> bool:
        return self.compare(other) <= 0

    def __gt__(self, other: Version) -> bool:
        return self.compare(other) > 0

    def __ge__(self, other: Version) -> bool:
        return self.compare(other) >= 0

    def same(self, other: Version) -> bool:
        """``Equal``: the same precedence (metadata ignored)."""
        return self.compare(other) == 0


def _uint(s: str) -> int | None:
    """Go's ``strconv.ParseUint(s, 10, 64)``: ASCII digits in range, else None."""
    if not s or not s.isascii() or not s.isdigit():
        return None
    n = int(s)
    return n if n <= _UINT64_MAX else None


def _compare_pre(a: str, b: str) -> int:
    pa, pb = a.split("."), b.split(".")
    for i in range(max(len(pa), len(pb))):
        d = _compare_part(pa[i] if i < len(pa) else "", pb[i] if i < len(pb) else "")
        if d:
            return d
    return 0


def _compare_part(s: str, o: str) -> int:
    if s == o:
        return 0
    if not s:
        return -1
    if not o:
        return 1
    si, oi = _uint(s), _uint(o)
    if si is None and oi is None:  # both alphanumeric: byte order ("BETA" < "alpha")
        return 1 if s > o else -1
    if oi is None:  # numeric identifiers sort below alphanumeric ones
        return -1
    if si is None:
        return 1
    return 1 if si > oi else -1


def _check_pre(pre: str) -> None:
    for part in pre.split("."):
        if not part or not set(part) <= _ALLOWED:
            raise SemverError("invalid prerelease string")
        if part.isdigit() and len(part) > 1 and part[0] == "0":
            raise SemverError("version segment starts with 0")


def parse_version(text: str, flavor: Flavor = FLAVOR_V3) -> Version:
    """``NewVersion``: accepts ``v``, pads ``1`` and ``1.2``; keeps ``original``."""
    m = _LOOSE.fullmatch(text)
    if m is None:  # the libraries' ErrInvalidSemVer texts, which Crossplane passes on
        raise SemverError("Invalid Semantic Version" if flavor == FLAVOR_V1
                          else "invalid semantic version")
    limit = _INT64_MAX if flavor == FLAVOR_V1 else _UINT64_MAX
    nums = [int(g) if g else 0 for g in m.group(1, 2, 3)]
    if any(n > limit for n in nums):
        raise SemverError(f"version segment out of range in {text!r}")
    pre, meta = m.group(4) or "", m.group(5) or ""
    if flavor == FLAVOR_V3 and pre:
        _check_pre(pre)
    return Version(nums[0], nums[1], nums[2], pre, meta, text)


def strict_parse_version(text: str) -> Version:
    """v3's ``StrictNewVersion``: exactly ``X.Y.Z[-pre][+meta]``, no ``v``, no leading zeros."""
    if not text:
        raise SemverError("version string empty")
    parts = text.split(".", 2)
    if len(parts) != 3:
        raise SemverError(f"invalid semantic version {text!r}")
    meta = pre = ""
    if "+" in parts[2]:
        parts[2], meta = parts[2].split("+", 1)
        if any(not p or not set(p) <= _ALLOWED for p in meta.split(".")):
            raise SemverError(f"invalid metadata string {meta!r}")
    if "-" in parts[2]:
        parts[2], pre = parts[2].split("-", 1)
        _check_pre(pre)
    nums = []
    for p in parts:
        n = _uint(p) if set(p) <= set("0123456789") else None
        if n is None or (len(p) > 1 and p[0] == "0"):
            raise SemverError(f"invalid version segment {p!r} in {text!r}")
        nums.append(n)
    return Version(nums[0], nums[1], nums[2], pre, meta, text)


def is_digest(text: str) -> bool:
    """A ``sha256:<64 hex>`` constraint, which Crossplane uses verbatim (ggcr ``v1.NewHash``)."""
    return re.fullmatch(r"sha256:[0-9a-f]{64}", text) is not None


# --- constraints --------------------------------------------------------------------------

@dataclass(frozen=True)
class Comparator:
    op: str
    """As written: '', '=', '!=', '>', '<', '>=', '=>', '<=', '=<', '~', '~>', '^'."""
    con: Version
    orig: str
    dirty: bool = False
    minor_dirty: bool = False
    patch_dirty: bool = False

    def __str__(self) -> str:
        return f"{self.op}{self.orig}"


def _comparator(text: str, flavor: Flavor) -> Comparator:
    if not text and flavor == FLAVOR_V3:  # v3's parser reads "" as "*" (NewConstraint refuses it)
        return Comparator("", Version(0, 0, 0, original="0.0.0"), "", dirty=True)
    m = _COMPARATOR.fullmatch(text)
    if m is None:
        raise SemverError(f"improper constraint: {text}")
    op, orig, major, minor, patch, pre = m.group(1, 2, 3, 4, 5, 6)
    minor = (minor or "")[1:]
    patch = (patch or "")[1:]
    pre = pre or ""
    ver, dirty, mdirty, pdirty = orig, False, False, False
    if _is_x(major):
        # v1.5.0 drops a pre-release after a wildcard major; v3 keeps it
        ver, dirty = "0.0.0" + (pre if flavor == FLAVOR_V3 else ""), True
    elif not minor or _is_x(minor):
        ver, dirty, mdirty = f"{major}.0.0{pre}", True, True
    elif _is_x(patch) or (flavor == FLAVOR_V3 and not patch):
        # v1.5.0: only an explicit x makes the patch dirty; "1.2" is exactly 1.2.0
        ver, dirty, pdirty = f"{major}.{minor}.0{pre}", True, True
    try:
        con = parse_version(ver, flavor)
    except SemverError:
        raise SemverError("constraint Parser Error" if flavor == FLAVOR_V1
                          else "constraint parser error") from None
    return Comparator(op, con, orig, dirty, mdirty, pdirty)


def _rewrite_range(text: str, flavor: Flavor) -> str:
    """``A - B`` becomes ``>= A, <= B`` (v3 adds a trailing space), each matched text replaced
    once, first occurrence, as the libraries do."""
    tail = " " if flavor == FLAVOR_V3 else ""
    out = text
    for m in _RANGE.finditer(text):
        out = out.replace(m.group(0), f">= {m.group(1)}, <= {m.group(2)}{tail}", 1)
    return out


@dataclass(frozen=True)
class Constraints:
    """A parsed constraint: OR of AND groups of comparators, under one library's semantics."""

    text: str
    flavor: Flavor
    groups: tuple[tuple[Comparator, ...], ...]
    include_prerelease: bool = False
    """v3's ``Constraints.IncludePrerelease``; Crossplane never sets it."""

    def __str__(self) -> str:
        return self.text

    def check(self, v: Version) -> bool:
        """``Check``: does ``v`` satisfy any AND group?"""
        for group in self.groups:
            if self.flavor == FLAVOR_V1:
                ok = all(_check_v1(v, c) for c in group)
            else:
                pre = self.include_prerelease or any(c.con.pre for c in group)
                ok = all(_check_v3(v, c, pre) for c in group)
            if ok:
                return True
        return False

    def has_prerelease(self) -> bool:
        return any(c.con.pre for g in self.groups for c in g)


def parse_constraint(text: str, flavor: Flavor = FLAVOR_V3) -> Constraints:
    """``NewConstraint`` of the chosen library; raises :class:`SemverError` as it would."""
    rewritten = _rewrite_range(text, flavor)
    groups: list[tuple[Comparator, ...]] = []
    for part in rewritten.split("||"):
        if flavor == FLAVOR_V1:
            groups.append(tuple(_comparator(s, flavor) for s in part.split(",")))
            continue
        if _VALID_V3.fullmatch(part) is None:
            # v3.4.0 (what Crossplane v2.3 links) formats it with %s; later commits use %q
            raise SemverError(f"improper constraint: {part}")
        found = [m.group(0) for m in _FIND.finditer(part)] or [part]
        groups.append(tuple(_comparator(s, flavor) for s in found))
    return Constraints(text, flavor, tuple(groups))


# --- v1.5.0 comparators: each one excludes pre-releases unless its own version has one -----

def _check_v1(v: Version, c: Comparator) -> bool:
    con, op = c.con, c.op
    pre_blocked = bool(v.pre) and not con.pre
    if op == "!=":
        if not c.dirty:
            return not v.same(con)
        if pre_blocked:
            return False
        if con.major != v.major:
            return True
        return con.minor != v.minor and not c.minor_dirty
    if pre_blocked:
        return False
    if op == ">":
        return v > con
    if op == ">=" or op == "=>":
        return v >= con
    if op in ("<", "<=", "=<"):
        if not c.dirty:
            return v < con if op == "<" else v <= con
        if v.major > con.major:
            return False
        return not (v.minor > con.minor and not c.minor_dirty)
    if op in ("", "="):
        return _tilde(v, c) if c.dirty else v.same(con)
    if op in ("~", "~>"):
        return _tilde(v, c)
    # "^": v1.5.0 keeps only the major, also for 0.x
    return v >= con and v.major == con.major


def _tilde(v: Version, c: Comparator) -> bool:
    con = c.con
    if v < con:
        return False
    if (con.major, con.minor, con.patch) == (0, 0, 0) and not c.minor_dirty and \
            not c.patch_dirty:
        return True  # ~0.0.0 accepts everything (a documented quirk of both libraries)
    if v.major != con.major:
        return False
    return v.minor == con.minor or c.minor_dirty


# --- v3.4+ comparators: pre-releases allowed per AND group ----------------------------------

def _check_v3(v: Version, c: Comparator, include_pre: bool) -> bool:
    if v.pre and not include_pre:
        return False
    con, op = c.con, c.op
    if op == "!=":
        return _not_equal_v3(v, c)
    if op == ">":
        if not c.dirty:
            return v > con
        if v.major != con.major:
            return v.major > con.major
        if c.minor_dirty:
            return False
        if c.patch_dirty:
            return v.minor > con.minor
        return v > con
    if op == "<":
        return v < con
    if op in (">=", "=>"):
        return v >= con
    if op in ("<=", "=<"):
        if not c.dirty:
            return v <= con
        if v.major > con.major:
            return False
        return not (v.major == con.major and v.minor > con.minor and not c.minor_dirty)
    if op in ("", "="):
        return _tilde(v, c) if c.dirty else v.same(con)
    if op in ("~", "~>"):
        return _tilde(v, c)
    return _caret_v3(v, c)


def _not_equal_v3(v: Version, c: Comparator) -> bool:
    con = c.con
    if c.dirty:
        if con.major != v.major:
            return True
        if con.minor != v.minor and not c.minor_dirty:
            return True
        if c.minor_dirty:
            return False
        if con.patch != v.patch and not c.patch_dirty:
            return True
        if c.patch_dirty:
            if v.pre or con.pre:
                return _compare_pre(v.pre, con.pre) != 0
            return False
    return not v.same(con)


def _caret_v3(v: Version, c: Comparator) -> bool:
    con = c.con
    if v < con:
        return False
    if con.major > 0 or c.minor_dirty:
        return v.major == con.major
    if v.major > 0:
        return False
    if con.minor > 0 or c.patch_dirty:
        return v.minor == con.minor
    if v.minor > 0:
        return False
    return v.patch == con.patch


def highest_match(tags: list[str], constraint: Constraints, *,
                  drop_incomplete: bool) -> Version | None:
    """What Crossplane's ``findDependencyVersionToInstall`` picks from a tag list: drop tags
    ``NewVersion`` refuses (and, from v2.1, incomplete ones), sort ascending, keep the last
    that satisfies ``constraint``. Its ``original`` is the tag's spelling.

    Source: crossplane internal/controller/pkg/resolver/reconciler.go
    (``findDependencyVersionToInstall``; sort.Sort(semver.Collection) then Check each).
    """
    best: Version | None = None
    for v in sorted_versions(tags, constraint.flavor, drop_incomplete=drop_incomplete):
        if constraint.check(v):
            best = v
    return best


def sorted_versions(tags: list[str], flavor: Flavor, *, drop_incomplete: bool) -> list[Version]:
    """Parsable (and, if asked, complete) tags as versions, ascending; equal precedence keeps
    the list order as Go's ``sort.Sort`` would not promise — ties are rare (``v1.0.0`` and
    ``1.0.0``) and resolved here by the tag text so the answer is deterministic."""
    out: list[Version] = []
    for t in tags:
        try:
            v = parse_version(t, flavor)
        except SemverError:
            continue
        if drop_incomplete and not v.complete:
            continue
        out.append(v)
    out.sort(key=lambda v: (_SortKey(v), v.original))
    return out


class _SortKey:
    __slots__ = ("v",)

    def __init__(self, v: Version) -> None:
        self.v = v

    def __lt__(self, other: _SortKey) -> bool:
        return self.v.compare(other.v) < 0

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _SortKey) and self.v.compare(other.v) == 0

    __hash__ = None  # type: ignore[assignment]
