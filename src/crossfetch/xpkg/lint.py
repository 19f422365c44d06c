"""The per-kind package linter ``crossplane xpkg build`` runs before it writes anything.

Rules from crossplane-runtime ``pkg/xpkg/lint.go`` (v2: ``NewProviderLinter``,
``NewConfigurationLinter``, ``NewFunctionLinter``, ``OneMeta``, ``PackageValidSemver``) and the
meta check of ``pkg/xpkg/build.go`` (exactly one meta object). Every error names the file and
the line where the offending document starts, and says what would fix it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple

from ..errors import PackageError
from .meta import META_GROUP

CRD = (("apiextensions.k8s.io/v1", "CustomResourceDefinition"),
       ("apiextensions.k8s.io/v1beta1", "CustomResourceDefinition"))
# What each package kind may carry besides its meta object (lint.go's ObjectLinterFns).
ALLOWED: dict[str, tuple[tuple[str, str], ...]] = {
    "Function": CRD,
    "Provider": (
        *CRD,
        ("apiextensions.crossplane.io/v1alpha1", "ManagedResourceDefinition"),
        ("admissionregistration.k8s.io/v1", "ValidatingWebhookConfiguration"),
        ("admissionregistration.k8s.io/v1", "MutatingWebhookConfiguration")),
    "Configuration": (
        ("apiextensions.crossplane.io/v1", "CompositeResourceDefinition"),
        ("apiextensions.crossplane.io/v2", "CompositeResourceDefinition"),
        ("apiextensions.crossplane.io/v1alpha1", "ManagedResourceActivationPolicy"),
        ("apiextensions.crossplane.io/v1", "Composition"),
        ("ops.crossplane.io/v1alpha1", "Operation"),
        ("ops.crossplane.io/v1alpha1", "CronOperation"),
        ("ops.crossplane.io/v1alpha1", "WatchOperation")),
}
META_VERSIONS = {"Provider": ("v1", "v1alpha1"), "Configuration": ("v1", "v1alpha1"),
                 "Function": ("v1", "v1beta1")}
class Doc(NamedTuple):
    """One YAML document of the package source and where it starts."""

    obj: Any
    file: Path
    line: int

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}"

    @property
    def gvk(self) -> tuple[str, str]:
        o = self.obj if isinstance(self.obj, dict) else {}
        return str(o.get("apiVersion") or ""), str(o.get("kind") or "")


class LintError(PackageError):
    """The package source breaks a rule ``crossplane xpkg build`` enforces."""

    exit_code = 1
    default_cause = "lint"


def _valid_constraint(value: Any) -> bool:
    """``semver.NewConstraint`` succeeds (Masterminds/semver v3, which crossplane-runtime v2
    links)."""
    from ..resolve.semver import SemverError, parse_constraint

    if not isinstance(value, str):
        return False
    try:
        parse_constraint(value)
    except SemverError:
        return False
    return True


def is_meta(doc: Doc) -> bool:
    return doc.gvk[0].split("/", 1)[0] == META_GROUP


def lint(docs: list[Doc], root: Path) -> tuple[Doc, list[Doc]]:
    """Check ``docs`` the way the upstream linter for their package kind does; return the meta
    document and the objects in order."""
    for d in docs:
        if not isinstance(d.obj, dict):
            raise LintError(f"{d.where}: a package document must be a YAML mapping (an object "
                            f"with apiVersion and kind), not {type(d.obj).__name__}",
                            cause="not-an-object", fix="remove the document or make it an object")
        api, kind = d.gvk
        if not api or not kind:
            raise LintError(f"{d.where}: the object has no {'apiVersion' if not api else 'kind'}",
                            cause="no-gvk", fix="every object needs apiVersion and kind")
    metas = [d for d in docs if is_meta(d)]
    if len(metas) != 1:
        where = ", ".join(f"{d.where} ({d.gvk[1]})" for d in metas) or f"no file under {root}"
        raise LintError(f"not exactly one package meta type: found {len(metas)} ({where})",
                        cause="meta-count",
                        fix="keep exactly one crossplane.yaml with apiVersion "
                        f"{META_GROUP}/v1 and kind Provider, Configuration or Function")
    meta = metas[0]
    api, kind = meta.gvk
    version = api.split("/", 1)[1] if "/" in api else ""
    if kind not in META_VERSIONS or version not in META_VERSIONS[kind]:
        raise LintError(f"{meta.where}: {api} {kind} is not a package meta type",
                        cause="meta-kind", fix=f"use apiVersion {META_GROUP}/v1 and kind "
                        "Provider, Configuration or Function")
    name = (meta.obj.get("metadata") or {}).get("name") if isinstance(
        meta.obj.get("metadata"), dict) else None
    if not isinstance(name, str) or not name:
        raise LintError(f"{meta.where}: the {kind} has no metadata.name", cause="no-name",
                        fix="set metadata.name (it names the package and the .xpkg file)")
    spec = meta.obj.get("spec")
    cp = spec.get("crossplane") if isinstance(spec, dict) else None
    # A crossplane block without a version is the empty constraint, which semver refuses.
    constraint = cp.get("version", "") if isinstance(cp, dict) else None
    if constraint is not None and not _valid_constraint(constraint):
        raise LintError(f"{meta.where}: package version constraints are poorly formatted: "
                        f"spec.crossplane.version {constraint!r}", cause="bad-constraint",
                        fix="write a semver constraint such as \">=v1.14.0\"")
    objects = [d for d in docs if d is not meta]
    allowed = ALLOWED[kind]
    for d in objects:
        if d.gvk not in allowed:
            kinds = sorted({k for _, k in allowed})
            raise LintError(f"{d.where}: a {kind} package may not contain {d.gvk[0]} "
                            f"{d.gvk[1]}; it may contain only {', '.join(kinds)}",
                            cause="object-kind",
                            fix="move the object out of the package root (examples belong in "
                            "--examples-root) or pass --ignore for its file")
    return meta, objects
