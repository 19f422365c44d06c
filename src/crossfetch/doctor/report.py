"""The doctor's result: an ordered list of checks, each with a cause, detail and fix."""

from __future__ import annotations

import enum
from typing import Any


class Status(enum.StrEnum):
    PASS = "pass"  # noqa: S105 - a status, not a password
    FAIL = "fail"
    WARN = "warn"
    SKIP = "skip"


STAGES = ("reference", "policy", "runtime", "dns", "tcp", "tls", "registry", "auth", "manifest",
          "package", "networkpolicy")
"""Stage names in run order, as they appear in JSON (``manifest`` appears twice: HEAD, GET)."""
DIRECT_ONLY = frozenset({"dns", "tcp", "tls", "registry", "auth", "manifest"})
"""Stages the node path (``--via cri``) leaves to the runtime; ``runtime`` is its own."""


class Check:
    """One stage's verdict (mutable: a later stage may soften a failure to a warning).

    A plain class, as the other records on the doctor's path: ``dataclasses`` would add its
    own import (and ``inspect``'s) to every run."""


    def __init__(self, name: str, status: Status, cause: str | None = None, detail: str = "",
                 fix: str | None = None, seconds: float = 0.0, method: str | None = None,
                 data: dict[str, Any] | None = None) -> None:
        self.name = name
        self.status = status
        self.cause = cause
        """Machine-readable reason for ``fail``/``warn`` (e.g. ``untrusted-certificate``)."""
        self.detail = detail
        self.fix = fix
        """Ready-to-paste configuration or commands."""
        self.seconds = seconds
        self.method = method
        """``HEAD`` or ``GET`` for the two ``manifest`` checks."""
        self.data: dict[str, Any] = {} if data is None else data
        """Structured evidence (addresses, certificate, challenge, verdicts)."""

    def __repr__(self) -> str:
        return (f"Check({self.label!r}, {self.status.value}, cause={self.cause!r}, "
                f"detail={self.detail[:60]!r})")

    @property
    def label(self) -> str:
        return f"{self.name} ({self.method})" if self.method else self.name

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name}
        if self.method:
            out["method"] = self.method
        out.update({"status": self.status.value, "cause": self.cause, "detail": self.detail,
                    "fix": self.fix, "ms": round(self.seconds * 1000, 1)})
        if self.data:
            out["data"] = self.data
        return out


class Verdict:
    """Whether a given Crossplane release would pull the package, and why (not)."""


    def __init__(self, version: str, ok: bool, cause: str | None = None, detail: str = "",
                 fix: str | None = None, data: dict[str, Any] | None = None) -> None:
        self.version = version
        self.ok = ok
        self.cause = cause
        self.detail = detail
        self.fix = fix
        self.data: dict[str, Any] = {} if data is None else data

    def __repr__(self) -> str:
        return f"Verdict({self.version!r}, ok={self.ok}, cause={self.cause!r})"

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"version": self.version, "ok": self.ok, "cause": self.cause,
                               "detail": self.detail, "fix": self.fix}
        if self.data:
            out["data"] = self.data
        return out


class Report:
    """Everything ``doctor`` found for one reference."""


    def __init__(self, reference: str, checks: list[Check] | None = None, seconds: float = 0.0,
                 crossplane: Verdict | None = None, interrupted: bool = False) -> None:
        self.reference = reference
        self.checks: list[Check] = [] if checks is None else checks
        self.seconds = seconds
        self.crossplane = crossplane
        """The second verdict: would that Crossplane release, in its pod, pull this?"""
        self.interrupted = interrupted
        """Ctrl-C stopped the run; the finished checks are kept."""

    def __repr__(self) -> str:
        return f"Report({self.reference!r}, ok={self.ok}, checks={len(self.checks)})"

    @property
    def ok(self) -> bool:
        """True when a pull would succeed: no check failed (warnings allowed)."""
        return not any(c.status is Status.FAIL for c in self.checks)

    @property
    def failure(self) -> Check | None:
        return next((c for c in self.checks if c.status is Status.FAIL), None)

    def get(self, name: str, method: str | None = None) -> Check | None:
        return next((c for c in self.checks
                     if c.name == name and (method is None or c.method == method)), None)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"reference": self.reference, "ok": self.ok,
                               "ms": round(self.seconds * 1000, 1),
                               "checks": [c.to_dict() for c in self.checks]}
        if self.crossplane is not None:
            out["crossplane"] = self.crossplane.to_dict()
        if self.interrupted:
            out["interrupted"] = True
        return out


_MARK = {Status.PASS: "ok  ", Status.FAIL: "FAIL", Status.WARN: "warn", Status.SKIP: "skip"}
LABEL_WIDTH = len("manifest (HEAD)")
"""Width of the stage column (the longest label), fixed so lines can be printed live."""


def render_header(report: Report) -> str:
    return f"crossfetch doctor {report.reference}\n"


def render_check(c: Check, *, verbose: bool = False, width: int = LABEL_WIDTH) -> str:
    """One check: its line with timing, then (unless it simply passed) detail and fix."""
    ms = "" if c.status is Status.SKIP else f"{c.seconds * 1000:7.1f} ms"
    head = c.detail.splitlines()[0] if c.detail else ""
    if c.cause and c.status in (Status.FAIL, Status.WARN):
        head = f"{c.cause}: {head}"
    lines = [f"  [{_MARK[c.status]}] {c.label:<{width}} {ms:>10}  {head}".rstrip()]
    if c.status in (Status.FAIL, Status.WARN) or verbose:
        lines += [f"{' ' * 11}{line}" for line in c.detail.splitlines()[1:]]
    if c.fix and c.status in (Status.FAIL, Status.WARN):
        lines.append(f"{' ' * 11}fix:")
        lines += [f"{' ' * 13}{line}" if line else "" for line in c.fix.splitlines()]
    return "\n".join(lines) + "\n"


def render_result(report: Report) -> str:
    """The closing lines: crossfetch's verdict, then the Crossplane release's."""
    total = f"{report.seconds * 1000:.0f} ms"
    lines: list[str] = []
    if report.interrupted:
        lines.append(f"result: interrupted; the checks above are the ones that finished  "
                     f"[{total}]")
    elif report.ok:
        warns = [c.label for c in report.checks if c.status is Status.WARN]
        extra = f" (warnings: {', '.join(warns)})" if warns else ""
        lines.append(f"result: a pull would succeed{extra}  [{total}]")
    else:
        bad = report.failure
        assert bad is not None
        lines.append(f"result: a pull would fail at {bad.label}: {bad.cause}  [{total}]")
    v = report.crossplane
    if v is not None:
        head = v.detail.splitlines()[0] if v.detail else ""
        if v.ok:
            lines.append(f"crossplane: Crossplane {v.version} would pull it: {head}".rstrip(": "))
        else:
            lines.append(f"crossplane: Crossplane {v.version} would NOT pull it: {v.cause}: "
                         f"{head}")
        lines += [f"{' ' * 11}{line}" for line in v.detail.splitlines()[1:]]
        if v.fix and not v.ok:
            lines.append(f"{' ' * 11}fix for Crossplane {v.version}:")
            lines += [f"{' ' * 13}{line}" if line else "" for line in v.fix.splitlines()]
    return "\n".join(lines) + "\n"


def render_text(report: Report, *, verbose: bool = False) -> str:
    """The human checklist: one line per check with its timing, then cause, detail and fix
    for every check that did not simply pass (all details with ``verbose``), then both
    verdicts."""
    width = max([LABEL_WIDTH, *(len(c.label) for c in report.checks)])
    return (render_header(report)
            + "".join(render_check(c, verbose=verbose, width=width) for c in report.checks)
            + render_result(report))
