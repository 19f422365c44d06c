"""The ``package.yaml`` stream: a fast scanner for big streams, and meta object parsing.

A package stream is one meta object (group ``meta.pkg.crossplane.io``) followed by the objects
it installs. Only the meta object needs a real YAML parse; the other documents (a Provider's
CRDs can be 100 MB) are only counted by ``kind``, which a regex over column-0 lines does at
memory speed. ``parse_package_stream(..., full=True)`` parses everything for validation.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, BinaryIO, Literal

import yaml

from ..errors import LimitExceeded, PackageError

PACKAGE_CAP = 200 * 1024 * 1024
"""Crossplane reads at most 200 MiB of package stream."""
META_CAP = 1024 * 1024
"""The meta object (first document) is parsed in memory; it is never near this size."""
MAX_ALIASES = 64
"""More YAML aliases than this in one document is refused (billion laughs)."""

META_GROUP = "meta.pkg.crossplane.io"
KNOWN_META: dict[str, frozenset[str]] = {
    "v1": frozenset({"Provider", "Configuration", "Function"}),
    "v1alpha1": frozenset({"Provider", "Configuration"}),
    "v1beta1": frozenset({"Function"}),
}
LEGACY_KEYS: dict[str, str] = {
    "provider": "Provider", "configuration": "Configuration", "function": "Function"}
LEGACY_API_VERSION = "pkg.crossplane.io/v1"

_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
# Building values can fail outside YAMLError: an impossible date (2024-13-01) raises ValueError,
# a malformed explicit !!timestamp AttributeError. All of them mean "not valid YAML".
_YAML_ERRORS = (yaml.YAMLError, ValueError, TypeError, AttributeError)
_FEED_SLICE = 1024 * 1024
_TAIL_KEEP = 4096  # only a line's start matters to the scanner; long lines are cut to this
_BOM = b"\xef\xbb\xbf"

# A separator line (``---``/``...``, optionally followed by content) in the capture phase.
_SEP_LINE = re.compile(rb"\n(?:---|\.\.\.)(?:[ \t\r][^\n]*)?(?=\n)")
# Column-0 markers in the counting phase; every match starts at the newline before the line.
_MARKS = re.compile(
    rb"\n(?:(?:---|\.\.\.)(?=[ \t\r\n])|kind:(?=[ \t\r\n])[ \t]*([^\n]*)"
    rb"|apiVersion:(?=[ \t\r\n])[ \t]*([^\n]*))")


@dataclass(frozen=True)
class Dependency:
    """One ``spec.dependsOn`` entry, normalised to the new form."""

    api_version: str
    kind: str
    package: str
    version: str
    form: Literal["new", "legacy"]
    legacy_key: str | None = None

    def to_dict(self) -> dict[str, str]:
        out = {"apiVersion": self.api_version, "kind": self.kind, "package": self.package,
               "version": self.version, "form": self.form}
        if self.legacy_key:
            out[self.legacy_key] = self.package
        return out


@dataclass(frozen=True)
class Package:
    """What a ``package.yaml`` stream says. ``sha256`` is the hex digest of the stream."""

    api_version: str
    kind: str
    name: str
    crossplane: str | None
    depends_on: list[Dependency]
    objects: dict[str, int]
    annotations: dict[str, str]
    size: int
    sha256: str
    meta: dict[str, Any] = field(repr=False, compare=False)

    @property
    def digest(self) -> str:
        return f"sha256:{self.sha256}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "apiVersion": self.api_version, "kind": self.kind, "name": self.name,
            "crossplane": self.crossplane,
            "dependsOn": [d.to_dict() for d in self.depends_on],
            "objects": dict(self.objects), "annotations": dict(self.annotations),
            "size": self.size, "packageDigest": self.digest,
        }


# --- safe YAML ------------------------------------------------------------------------------


def check_aliases(text: bytes | str, limit: int = MAX_ALIASES) -> None:
    """Refuse YAML with more than ``limit`` aliases in any one document, before loading it."""
    count = 0
    try:
        for event in yaml.parse(text, Loader=_Loader):
            if isinstance(event, yaml.DocumentStartEvent):
                count = 0
            elif isinstance(event, yaml.AliasEvent):
                count += 1
                if count > limit:
                    raise LimitExceeded(
                        f"package.yaml document uses more than {limit} YAML aliases",
                        cause="yaml-aliases",
                        fix="expand the aliases in the package source; crossfetch refuses "
                        "alias-heavy YAML because it can expand exponentially")
    except yaml.YAMLError as e:
        raise PackageError(f"package.yaml is not valid YAML: {e}", cause="invalid-yaml",
                           fix="run `crossplane xpkg build` again or fix the YAML") from None


def load_safe(text: bytes | str) -> Any:
    """Load one YAML document with the C safe loader, after the alias guard."""
    check_aliases(text)
    try:
        return yaml.load(text, Loader=_Loader)  # noqa: S506 - the safe C loader
    except _YAML_ERRORS as e:
        raise PackageError(f"package.yaml is not valid YAML: {e}", cause="invalid-yaml",
                           fix="run `crossplane xpkg build` again or fix the YAML") from None


# --- meta object ----------------------------------------------------------------------------


def _str_map(value: Any) -> dict[str, str]:
    if not isinstance(value, dict):
        return {}
    return {str(k): "" if v is None else str(v) for k, v in value.items()}


def _dependency(i: int, d: Any) -> Dependency:
    where = f"spec.dependsOn[{i}]"
    if not isinstance(d, dict):
        raise PackageError(f"{where} is not a mapping", fix="each dependency is a mapping")
    version = d.get("version")
    if version is not None and not isinstance(version, str):
        raise PackageError(f"{where}.version is {version!r}, not a string",
                           fix="quote the version constraint, e.g. version: \">=v1.2.0\"")
    version = version or ""
    api, kind, pkg = (d.get(k) for k in ("apiVersion", "kind", "package"))
    if (isinstance(api, str) and isinstance(kind, str) and isinstance(pkg, str)
            and api and kind and pkg and version):
        return Dependency(api, kind, pkg, version, "new")
    legacy = [k for k in LEGACY_KEYS if isinstance(d.get(k), str) and d.get(k)]
    if len(legacy) > 1:
        raise PackageError(f"{where} names more than one of {', '.join(legacy)}",
                           fix="split it into one dependency per package")
    if legacy:
        key = legacy[0]
        return Dependency(LEGACY_API_VERSION, LEGACY_KEYS[key], str(d[key]), version, "legacy",
                          key)
    if isinstance(d.get("package"), str) and d.get("package"):
        # New form with apiVersion/kind/version partly missing: keep what is there.
        return Dependency(str(d.get("apiVersion") or ""), str(d.get("kind") or ""),
                          str(d["package"]), version, "new")
    raise PackageError(f"{where} names no package",
                       fix="set apiVersion, kind, package and version (or provider/"
                       "configuration/function and version)")


def _meta_identity(doc: Any) -> tuple[str, str]:
    if not isinstance(doc, dict):
        return "", type(doc).__name__
    return str(doc.get("apiVersion") or ""), str(doc.get("kind") or "")


def is_meta_api_version(api_version: str) -> bool:
    return api_version.startswith(META_GROUP + "/")


def _meta_identity_check(doc: Any) -> tuple[str, str]:
    api, kind = _meta_identity(doc)
    if not is_meta_api_version(api):
        found = (f"apiVersion {api!r}, kind {kind!r}" if isinstance(doc, dict)
                 else f"a YAML {type(doc).__name__}")
        raise PackageError(
            f"the first object in package.yaml is not a Crossplane package meta object "
            f"(found {found}; expected group {META_GROUP})", cause="no-meta-object",
            fix="put the crossplane.yaml meta object (Provider, Configuration or Function) "
            "first in the package and rebuild it")
    version = api.split("/", 1)[1]
    if kind not in KNOWN_META.get(version, frozenset()):
        known = "; ".join(f"{v}: {', '.join(sorted(k))}" for v, k in KNOWN_META.items())
        raise PackageError(f"unknown package meta type {api} {kind!r} (known: {known})",
                           cause="unknown-meta-kind",
                           fix="use a meta kind and version Crossplane understands")
    return api, kind


def package_from_meta(doc: Any, objects: dict[str, int], size: int, sha256: str) -> Package:
    """Validate the meta object ``doc`` and build the :class:`Package`."""
    api, kind = _meta_identity_check(doc)
    metadata = doc.get("metadata") if isinstance(doc.get("metadata"), dict) else {}
    spec = doc.get("spec") if isinstance(doc.get("spec"), dict) else {}
    xp = spec.get("crossplane")
    constraint = xp.get("version") if isinstance(xp, dict) else None
    deps = spec.get("dependsOn") or []
    if not isinstance(deps, list):
        raise PackageError("spec.dependsOn is not a list", fix="make spec.dependsOn a list")
    return Package(
        api_version=api, kind=kind, name=str(metadata.get("name") or ""),
        crossplane=None if constraint is None else str(constraint),
        depends_on=[_dependency(i, d) for i, d in enumerate(deps)],
        objects=objects, annotations=_str_map(metadata.get("annotations")),
        size=size, sha256=sha256, meta=doc,
    )


def _more_than_one_meta(api: str, kind: str) -> PackageError:
    return PackageError(
        f"package.yaml holds more than one meta object (another {api} {kind or 'object'} "
        "after the first)", cause="multiple-meta-objects",
        fix="keep exactly one Provider/Configuration/Function meta object in the package")


def _blank(doc: bytes) -> bool:
    """True for a document of only blank lines, comments and directives."""
    for line in doc.splitlines():
        s = line.strip()
        if s and not s.startswith((b"#", b"%")):
            return False
    return True


def _clean_value(raw: bytes) -> str:
    v = raw.split(b" #", 1)[0].strip().strip(b"'\"")
    return v.decode("utf-8", "replace")


# --- the scanner ----------------------------------------------------------------------------


class PackageScanner:
    """Incremental reader of a package stream: feed chunks, then :meth:`finish`.

    Captures the first non-empty document (the meta object, at most ``max_meta_bytes``) and
    counts later documents by their column-0 ``kind:``. Results do not depend on how the
    stream is split into chunks.
    """

    def __init__(self, *, max_bytes: int = PACKAGE_CAP, max_meta_bytes: int = META_CAP) -> None:
        self.max_bytes = max_bytes
        self.max_meta_bytes = max_meta_bytes
        self.size = 0
        self._hash = hashlib.sha256()
        # Capture phase: the buffer starts with a virtual newline so line 1 is a line start.
        self._buf: bytearray | None = bytearray(b"\n")
        self._doc_start = 1
        self._scan_from = 0
        self._first: bytes | None = None
        # Counting phase: the unfinished line, always starting with the newline before it.
        self._tail = b"\n"
        self._kind: str | None = None
        self._api: str | None = None
        self._counts: dict[str, int] = {}

    def feed(self, chunk: bytes | bytearray | memoryview) -> None:
        """Add the next bytes of the stream."""
        n = len(chunk)
        if not n:
            return
        if self.size + n > self.max_bytes:
            raise LimitExceeded(
                f"package.yaml is larger than the {self.max_bytes} byte cap",
                cause="package-too-large",
                fix="Crossplane refuses package streams over 200 MiB; split the package")
        if self.size == 0 and bytes(chunk[:3]) == _BOM:
            self._hash.update(chunk[:3])
            self.size = 3
            chunk = chunk[3:]
            n -= 3
        self._hash.update(chunk)
        self.size += n
        if n > _FEED_SLICE:
            view = memoryview(chunk)
            for i in range(0, n, _FEED_SLICE):
                self._route(bytes(view[i:i + _FEED_SLICE]))
        else:
            self._route(chunk if isinstance(chunk, bytes) else bytes(chunk))

    def _route(self, chunk: bytes) -> None:
        if self._buf is not None:
            self._capture(chunk)
        else:
            self._count(chunk)

    def _capture(self, chunk: bytes) -> None:
        buf = self._buf
        assert buf is not None
        buf += chunk
        for m in _SEP_LINE.finditer(buf, self._scan_from):
            doc = bytes(buf[self._doc_start:m.start() + 1])
            if _blank(doc):
                self._doc_start = m.end() + 1
                continue
            self._first = doc
            rest = bytes(buf[m.end():])  # starts with the newline ending the separator line
            self._buf = None
            self._count(rest[1:], tail=b"\n")
            return
        self._scan_from = max(buf.rfind(b"\n"), self._doc_start - 1, 0)
        if len(buf) - self._doc_start > self.max_meta_bytes:
            raise LimitExceeded(
                f"the first document of package.yaml is over {self.max_meta_bytes} bytes",
                cause="meta-too-large",
                fix="the meta object must come first and be small; rebuild the package")

    def _count(self, chunk: bytes, tail: bytes | None = None) -> None:
        if tail is not None:
            self._tail = tail
        k = chunk.rfind(b"\n")
        if k < 0:
            if len(self._tail) < _TAIL_KEEP:
                self._tail += chunk[:_TAIL_KEEP - len(self._tail)]
            return
        first_nl = chunk.find(b"\n")
        self._marks(self._tail + chunk[:first_nl + 1], 0, None)
        if first_nl < k:
            self._marks(chunk, first_nl, k + 1)
        self._tail = chunk[k:k + _TAIL_KEEP]

    def _marks(self, data: bytes, pos: int, endpos: int | None) -> None:
        it = (_MARKS.finditer(data, pos) if endpos is None
              else _MARKS.finditer(data, pos, endpos))
        for m in it:
            kind, api = m.group(1), m.group(2)
            if kind is not None:
                if self._kind is None:
                    self._kind = _clean_value(kind)
            elif api is not None:
                if self._api is None:
                    self._api = _clean_value(api)
                    if is_meta_api_version(self._api):
                        # A misplaced meta object is reported as such, not as a second one.
                        assert self._first is not None
                        _meta_identity_check(load_safe(self._first))
                        raise _more_than_one_meta(self._api, self._kind or "")
            else:
                self._end_document()

    def _end_document(self) -> None:
        if self._kind:
            self._counts[self._kind] = self._counts.get(self._kind, 0) + 1
        self._kind = self._api = None

    def finish(self) -> Package:
        """End of stream: parse the meta object and return the :class:`Package`."""
        if self._buf is not None:
            doc = bytes(self._buf[self._doc_start:])
            if _blank(doc):
                raise PackageError("package.yaml holds no objects", cause="empty-package",
                                   fix="the package must contain a crossplane.yaml meta object")
            self._first = doc
            self._buf = None
        else:
            self._marks(self._tail + b"\n", 0, None)
            self._end_document()
        assert self._first is not None
        meta = load_safe(self._first)
        return package_from_meta(meta, dict(self._counts), self.size, self._hash.hexdigest())


def iter_stream(data: bytes | BinaryIO, chunk: int = _FEED_SLICE) -> Iterator[bytes]:
    if isinstance(data, bytes | bytearray | memoryview):
        yield bytes(data)
        return
    while block := data.read(chunk):
        yield block


def parse_package_stream(data: bytes | BinaryIO, *, full: bool = False,
                         max_bytes: int = PACKAGE_CAP) -> Package:
    """Parse a whole ``package.yaml`` stream.

    The default uses :class:`PackageScanner`. ``full=True`` loads every document with the safe
    loader (alias guard per document) and requires each to have ``apiVersion`` and ``kind``.
    """
    scanner = PackageScanner(max_bytes=max_bytes)
    if not full:
        for block in iter_stream(data):
            scanner.feed(block)
        return scanner.finish()
    parts: list[bytes] = []
    for block in iter_stream(data):
        scanner.feed(block)  # enforces the cap, hashes, and checks meta placement early
        parts.append(block)
    scanned = scanner.finish()
    text = b"".join(parts)
    del parts
    check_aliases(text)
    counts: dict[str, int] = {}
    meta: Any = None
    try:
        docs = yaml.load_all(text, Loader=_Loader)
        for i, doc in enumerate(docs):
            if doc is None:
                continue
            api, kind = _meta_identity(doc)
            if not isinstance(doc, dict) or not api or not kind:
                raise PackageError(
                    f"document {i} of package.yaml lacks apiVersion or kind "
                    f"(found apiVersion {api!r}, kind {kind!r})", cause="invalid-object",
                    fix="every object in a package needs apiVersion and kind")
            if meta is None:
                meta = doc
            elif is_meta_api_version(api):
                raise _more_than_one_meta(api, kind)
            else:
                counts[kind] = counts.get(kind, 0) + 1
    except _YAML_ERRORS as e:
        raise PackageError(f"package.yaml is not valid YAML: {e}", cause="invalid-yaml",
                           fix="fix the YAML and rebuild the package") from None
    return package_from_meta(meta, counts, scanned.size, scanned.sha256)
