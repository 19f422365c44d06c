"""The ``package.yaml`` stream: a streaming parser and linter, and meta object parsing.

A package stream holds exactly one meta object (group ``meta.pkg.crossplane.io``), anywhere,
and the objects it installs. As in Crossplane, every document is parsed (libyaml events: the
objects are validated and identified without being built, so a Provider's 100 MB of CRDs
never sits in memory as Python objects), the objects are linted against the package type, and
only the meta object is loaded.
"""

from __future__ import annotations

import hashlib
import re
from collections import deque
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, BinaryIO, Literal, NamedTuple

import yaml

from ..errors import LimitExceeded, PackageError

if TYPE_CHECKING:
    from .parallel import Helper

PACKAGE_CAP = 200 * 1024 * 1024
"""Crossplane reads at most 200 MiB of package stream."""
META_CAP = 1024 * 1024
"""The meta object is loaded in memory; it is never near this size."""
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

# libyaml's parser, not a fallback: _identify needs its raw_parse (PyYAML's pure-Python parser
# has none), and the pull path already requires it (policy/objects.py's loader).
_Loader: Any = yaml.CSafeLoader
# Building values can fail outside YAMLError: an impossible date (2024-13-01) raises ValueError,
# a malformed explicit !!timestamp AttributeError. All of them mean "not valid YAML".
_YAML_ERRORS = (yaml.YAMLError, ValueError, TypeError, AttributeError)
_FEED_SLICE = 1024 * 1024
_BACKLOG = 8 * 1024 * 1024
"""Bytes of documents held behind one the helper process has not answered before waiting."""
_BOM = b"\xef\xbb\xbf"


class Dependency(NamedTuple):
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


class Package(NamedTuple):
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
    meta: dict[str, Any]

    def __repr__(self) -> str:  # the meta object can be long: left out, as before
        return (f"Package(api_version={self.api_version!r}, kind={self.kind!r}, "
                f"name={self.name!r}, size={self.size}, sha256={self.sha256!r})")

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


def _meta_kind_check(api: str, kind: str, where: str | None = None) -> None:
    """Refuse a meta object of a kind or version Crossplane's meta scheme does not know."""
    version = api.split("/", 1)[1]
    if kind not in KNOWN_META.get(version, frozenset()):
        known = "; ".join(f"{v}: {', '.join(sorted(k))}" for v, k in KNOWN_META.items())
        at = f" at {where}" if where else ""
        raise PackageError(f"unknown package meta type {api} {kind!r}{at} (known: {known})",
                           cause="unknown-meta-kind",
                           fix="use a meta kind and version Crossplane understands")


def _meta_identity_check(doc: Any) -> tuple[str, str]:
    api, kind = _meta_identity(doc)
    if not is_meta_api_version(api):
        found = (f"apiVersion {api!r}, kind {kind!r}" if isinstance(doc, dict)
                 else f"a YAML {type(doc).__name__}")
        raise PackageError(
            f"the meta object is not a Crossplane package meta object "
            f"(found {found}; expected group {META_GROUP})", cause="no-meta-object",
            fix="add the crossplane.yaml meta object (Provider, Configuration or Function) "
            "to the package and rebuild it")
    _meta_kind_check(api, kind)
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


def _more_than_one_meta(where: str, api: str, kind: str, first: str) -> PackageError:
    return PackageError(
        f"package.yaml holds more than one meta object: {where} is another {api} {kind} "
        f"(the first is {first})", cause="multiple-meta-objects",
        fix="keep exactly one Provider/Configuration/Function meta object in the package")


def _blank(doc: bytes) -> bool:
    """Crossplane's isEmptyYAML: only blank lines, ``---``/``...`` lines and comments.

    Stops at the first line that is none of these (the first line of any object)."""
    pos, n = 0, len(doc)
    while pos <= n:
        end = doc.find(b"\n", pos)
        if end < 0:
            end = n
        s = doc[pos:end].lstrip()
        if s and s not in (b"---", b"...") and not s.startswith(b"#"):
            return False
        pos = end + 1
    return True


# --- the scanner ----------------------------------------------------------------------------
# Crossplane reads package.yaml with Kubernetes' YAMLReader, which splits the stream at lines
# starting with "---" (refusing any content but a comment after it), skips empty documents,
# and decodes EVERY other document: first against the meta scheme (meta.pkg.crossplane.io
# Provider/Configuration/Function), else against the object scheme; a document neither knows,
# or that is not valid YAML, fails the whole package. The linter for the meta object's kind
# then requires exactly one meta object (anywhere in the stream) and restricts the kinds of
# the other objects. Sources, all read at these commits:
#   crossplane-runtime pkg/parser/parser.go (PackageParser.Parse, isEmptyYAML), 0c7b1eb5;
#   k8s.io/apimachinery pkg/util/yaml/decoder.go (YAMLReader.Read: "invalid Yaml document
#   separator");
#   crossplane internal/xpkg/lint.go (NewProviderLinter, NewConfigurationLinter,
#   NewFunctionLinter, OneMeta), 061f4ca7; internal/xpkg/scheme.go (BuildMetaScheme), 02a5fa00;
#   internal/controller/pkg/revision/reconciler.go ("cannot parse package contents",
#   "linting package contents failed").
# The kinds allowed per package type are crossfetch.xpkg.lint.ALLOWED, shared with `build`.
# A cache hit trusts the summary stored when the entry was scanned under these rules
# (crossfetch.client.package_summary): a change to them must bump client.SUMMARY_VERSION, or
# entries stored before it keep passing packages the new rules refuse.

_STR_TAGS = (None, "!", "tag:yaml.org,2002:str")
_TOKEN_START = frozenset(b" \t\r\n[{,")


_TOP_LINE = re.compile(rb"\n[^ \t\r\n#.-]")  # a line that starts a top-level key
_HIDDEN = frozenset(b"\"'?!&*{[%")
# One pass over the stream finds the separator lines (group 1: what follows ``---``) and the
# top-level lines _plain_top_keys looks at (group 2: ``kind``, ``apiVersion`` or a hidden key).
_SCAN = re.compile(rb"\n(?:---([^\n]*)(?=\n)|(kind|apiVersion|[\"'?!&*{\[%]))")
_K, _A = ord("k"), ord("a")


def _plain_top_keys(data: bytes) -> bool:
    """True when ``kind`` and ``apiVersion`` each start at most one line and no line starts
    with a quoted, complex, tagged, anchored or flow key: the first value found is then the
    only one. Only top-level lines are looked at (a handful per object)."""
    kinds = versions = 0
    d = b"\n" + data
    for m in _TOP_LINE.finditer(d):
        start = m.start() + 1
        if d[start] in _HIDDEN:
            return False
        if d.startswith(b"kind", start):
            kinds += 1
        elif d.startswith(b"apiVersion", start):
            versions += 1
        if kinds > 1 or versions > 1:
            return False
    return True


def _may_alias(data: bytes) -> bool:
    """Whether a ``*`` stands where a YAML alias token could start (``find`` beats a regex)."""
    i = data.find(b"*")
    while i >= 0:
        if i == 0 or data[i - 1] in _TOKEN_START:
            return True
        i = data.find(b"*", i + 1)
    return False


def _where(index: int, line: int) -> str:
    return f"document {index + 1} (line {line})"


def _invalid_yaml(where: str, problem: str) -> PackageError:
    return PackageError(f"package.yaml {where} is not valid YAML: {problem}",
                        cause="invalid-yaml",
                        fix="Crossplane parses every document of a package and refuses the "
                        "package if one fails: fix that document and rebuild the package")


def _identify(data: bytes, where: str, line: int, alias_limit: int,
              plain_keys: bool | None = None) -> tuple[str, str]:
    """Parse one document completely (nothing is built, aliases are not expanded) and return
    its top-level ``apiVersion`` and ``kind``. Raises on invalid YAML or UTF-8, a document that
    is not a mapping, or a missing or non-string apiVersion/kind.

    Python walks the events only until both are found, then the same libyaml parser checks
    the rest in C (``raw_parse``: ten times faster than events; one parser, so the text is
    decoded once). A document that may hold aliases (a ``*`` where a YAML token starts) is
    walked to the end, counting them, and so is one whose top-level keys could repeat or hide
    (the last ``kind`` wins, as in Go's decoder). ``plain_keys`` is ``_plain_top_keys(data)``
    when the caller already knows it.
    """
    if plain_keys is None:
        plain_keys = _plain_top_keys(data)
    walk_all = not plain_keys or _may_alias(data)
    parser = _Loader(data)
    found: dict[str, Any] = {}
    try:
        get = parser.get_event
        get()  # StreamStart
        get()  # DocumentStart
        top = get()
        if not isinstance(top, yaml.MappingStartEvent):
            shown = "a sequence" if isinstance(top, yaml.SequenceStartEvent) else "a scalar"
            raise PackageError(
                f"package.yaml {where} is {shown}, not an object with apiVersion and kind",
                cause="invalid-object", fix="every document of a package is a Kubernetes "
                "object; remove the document or rebuild the package")
        depth, is_key, want, aliases = 1, True, "", 0
        while depth:
            ev = get()
            t = type(ev)
            if t is yaml.ScalarEvent:
                if depth == 1:
                    if is_key:
                        want = ev.value if ev.value in ("apiVersion", "kind") else ""
                    elif want:
                        plain_str = not ev.implicit[0] or parser.resolve(
                            yaml.ScalarNode, ev.value, (True, False)) == _STR_TAGS[2]
                        found[want] = ev.value if ev.tag in _STR_TAGS and plain_str else None
                        if not walk_all and len(found) == 2:
                            break
                    is_key = not is_key
            elif t is yaml.MappingStartEvent or t is yaml.SequenceStartEvent:
                if depth == 1:
                    if not is_key and want:
                        found[want] = None
                    is_key = not is_key
                depth += 1
            elif t is yaml.MappingEndEvent or t is yaml.SequenceEndEvent:
                depth -= 1
            elif t is yaml.AliasEvent:
                aliases += 1
                if aliases > alias_limit:
                    raise LimitExceeded(
                        f"package.yaml {where} uses more than {alias_limit} YAML aliases",
                        cause="yaml-aliases",
                        fix="expand the aliases in the package source; crossfetch refuses "
                        "alias-heavy YAML because it can expand exponentially")
                if depth == 1:
                    if not is_key and want:
                        found[want] = None
                    is_key = not is_key
        if not walk_all:
            parser.raw_parse()  # the rest of the document, from where the walk stopped
    except yaml.reader.ReaderError as e:
        raise PackageError(f"package.yaml {where} is not UTF-8 text: {e.reason} (byte "
                           f"{e.character!r} at offset {e.position})", cause="invalid-utf8",
                           fix="a package stream is UTF-8; rebuild the package") from None
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        at = f" at line {line + mark.line}, column {mark.column + 1}" if mark else ""
        problem = " ".join(str(p) for p in (e.context, e.problem) if p) or str(e)
        raise _invalid_yaml(where, f"{problem}{at}") from None
    except yaml.YAMLError as e:
        raise _invalid_yaml(where, str(e).replace("\n", " ")) from None
    finally:
        parser.dispose()
    api, kind = found.get("apiVersion"), found.get("kind")
    if not isinstance(api, str) or not api or not isinstance(kind, str) or not kind:
        missing = [k for k, v in (("apiVersion", api), ("kind", kind))
                   if not isinstance(v, str) or not v]
        raise PackageError(
            f"package.yaml {where} has no string {' or '.join(missing)}",
            cause="invalid-object",
            fix="every object in a package needs apiVersion and kind; fix it and rebuild")
    return api, kind




class _Pending:
    """A document parsed out of order (by the helper process, or while it works)."""

    __slots__ = ("doc", "line", "plain", "result", "waiting", "where")

    def __init__(self, doc: bytes, where: str, line: int, plain: bool) -> None:
        self.doc, self.where, self.line, self.plain = doc, where, line, plain
        self.waiting = False  # sent to the helper, no answer yet
        # (apiVersion, kind), the error the parent's parse raised, or None: parse it again.
        self.result: tuple[str, str] | Exception | None = None


class PackageScanner:
    """Incremental reader of a package stream: feed chunks, then :meth:`finish`.

    Every document is parsed as it completes (as Crossplane does), the one meta object is
    kept for :meth:`finish`, the others are counted by kind and linted against the meta
    object's package type. Results do not depend on how the stream is split into chunks.

    With :attr:`helper` set (a :class:`crossfetch.xpkg.parallel.Helper`), a child process
    parses a share of the documents; results are still taken in stream order, so the first
    failing document decides the error, exactly as without it. Call :meth:`close` when the
    scanner is abandoned before :meth:`finish`.
    """

    def __init__(self, *, max_bytes: int = PACKAGE_CAP, max_meta_bytes: int = META_CAP) -> None:
        self.max_bytes = max_bytes
        self.max_meta_bytes = max_meta_bytes
        self.size = 0
        self._hash = hashlib.sha256()
        self._head: bytes | None = b""  # the first bytes, until a BOM is ruled in or out
        # The unfinished document, after a virtual newline so line 1 is a line start.
        self._buf = bytearray(b"\n")
        self._scan_from = 0
        self._line = 1  # line number where the unfinished document starts
        self._index = 0  # non-empty documents seen
        self._meta: tuple[bytes, str, str, str] | None = None  # (doc, api, kind, where)
        self._counts: dict[str, int] = {}
        self._gvks: dict[tuple[str, str], str] = {}  # (apiVersion, kind) -> first place seen
        # What _SCAN saw of the unfinished document's top-level lines (see _plain_top_keys).
        self._kinds = self._versions = 0
        self._hidden = False
        self.helper: Helper | None = None
        self._pending: deque[_Pending] = deque()  # in stream order, not yet recorded
        self._held = 0  # bytes of documents in _pending
        self._sent: deque[_Pending] = deque()  # those sent to the helper, in order
        self._stolen = 0  # how many at the end of _sent the parent took back

    def feed(self, chunk: bytes | bytearray | memoryview) -> None:
        """Add the next bytes of the stream."""
        n = len(chunk)
        if not n:
            return
        if self.size + n > self.max_bytes:
            self._drain(block=True)  # the documents before it were parsed first
            raise LimitExceeded(
                f"package.yaml is larger than the {self.max_bytes} byte cap",
                cause="package-too-large",
                fix="Crossplane refuses package streams over 200 MiB; split the package")
        self._hash.update(chunk)
        self.size += n
        if self._head is not None:
            # The stream's first bytes: a UTF-8 BOM is dropped however the stream is split.
            head = self._head + bytes(chunk)
            if len(head) < len(_BOM) and _BOM.startswith(head):
                self._head = head
                return
            self._head = None
            chunk = head[len(_BOM):] if head.startswith(_BOM) else head
            n = len(chunk)
        if n > _FEED_SLICE:
            view = memoryview(chunk)
            for i in range(0, n, _FEED_SLICE):
                self._split(view[i:i + _FEED_SLICE])
        else:
            self._split(chunk)

    def _split(self, chunk: bytes | bytearray | memoryview) -> None:
        buf = self._buf
        buf += chunk
        # Only complete lines are scanned: a match never needs bytes that have not arrived,
        # so no match is found twice and none depends on where the stream was cut.
        end = buf.rfind(b"\n") + 1
        start = 1
        view = memoryview(buf)
        try:
            for m in _SCAN.finditer(buf, self._scan_from, end):
                sep = m.group(1)
                if sep is None:  # a top-level kind, apiVersion or hidden key
                    c = buf[m.start() + 1]
                    if c == _K:
                        self._kinds += 1
                    elif c == _A:
                        self._versions += 1
                    else:
                        self._hidden = True
                    continue
                rest = sep.strip()
                if rest and not rest.startswith(b"#"):
                    line = self._line + buf.count(b"\n", start, m.start() + 1)
                    self._drain(block=True)  # an earlier document's error comes first
                    raise _invalid_yaml(f"line {line}", f"invalid document separator "
                                        f"{rest[:40]!r} (only a comment may follow ---)")
                self._document(bytes(view[start:m.start() + 1]))
                self._line += 1  # the separator line
                start = m.end() + 1
        finally:
            view.release()
        if start > 1:
            del buf[1:start]
        self._scan_from = max(buf.rfind(b"\n"), 0)

    def _document(self, doc: bytes) -> None:
        line = self._line
        self._line += doc.count(b"\n")
        plain = not self._hidden and self._kinds <= 1 and self._versions <= 1
        self._kinds = self._versions = 0
        self._hidden = False
        if _blank(doc):
            return
        where = _where(self._index, line)
        self._index += 1
        helper = self.helper
        if helper is None:
            api, kind = _identify(doc, where, line, MAX_ALIASES, plain)
            self._record(doc, api, kind, where)
            return
        p = _Pending(doc, where, line, plain)
        if helper.offer(doc, plain):
            p.waiting = True
            self._sent.append(p)
        elif not self._pending:  # nothing before it is unanswered: take it now
            api, kind = _identify(doc, where, line, MAX_ALIASES, plain)
            self._record(doc, api, kind, where)
            return
        else:
            try:
                p.result = _identify(doc, where, line, MAX_ALIASES, plain)
            except Exception as e:  # raised in its turn, after the helper's earlier answers
                p.result = e
        self._pending.append(p)
        self._held += len(doc)
        # A failure waits for the helper's earlier answers; so does a backlog that grew
        # behind an unanswered document (the wait has a deadline: memory stays bounded).
        block = isinstance(p.result, Exception) or self._held > _BACKLOG
        if block or not self._index % 16:  # answers are read in between when the window fills
            self._settle(helper.poll())
            self._drain(block)

    def _settle(self, answers: list[tuple[str, str] | None]) -> None:
        """Hand the helper's answers to the documents it was sent, in order."""
        sent = self._sent
        for answer in answers:
            p = sent.popleft()
            if not p.waiting:  # the parent took it back: its own result stands
                self._stolen -= 1
                continue
            p.waiting = False
            p.result = answer
        if self.helper is not None and self.helper.dead:  # the parent parses the rest
            for p in sent:
                p.waiting = False
            sent.clear()
            self._stolen = 0

    def _drain(self, block: bool) -> None:
        """Record the documents at the front whose verdict is known, in stream order; with
        ``block``, wait for the helper until none is left."""
        pending = self._pending
        while pending:
            p = pending[0]
            if p.waiting:
                helper = self.helper
                if not block or helper is None:
                    return
                answers = helper.poll()
                if not answers and not helper.dead and len(self._sent) - self._stolen > 1:
                    # Rather than wait, take back the last document the child has not
                    # answered (the stream's tail is shared instead of waited for).
                    q = self._sent[-1 - self._stolen]
                    self._stolen += 1
                    q.waiting = False
                    try:
                        q.result = _identify(q.doc, q.where, q.line, MAX_ALIASES, q.plain)
                    except Exception as e:
                        q.result = e
                    continue
                self._settle(answers or helper.wait())
                continue
            pending.popleft()
            self._held -= len(p.doc)
            result = p.result
            if isinstance(result, Exception):
                raise result
            if result is None:  # the helper could not parse it, or is gone: the parent decides
                result = _identify(p.doc, p.where, p.line, MAX_ALIASES, p.plain)
            self._record(p.doc, result[0], result[1], p.where)

    def close(self) -> None:
        """Stop the helper process, if any (idempotent; :meth:`finish` does it too)."""
        if self.helper is not None:
            self.helper.close()

    def _record(self, doc: bytes, api: str, kind: str, where: str) -> None:
        """Take one parsed document, in stream order: the meta object, or one more object."""
        if is_meta_api_version(api):
            _meta_kind_check(api, kind, where)
            if self._meta is not None:
                raise _more_than_one_meta(where, api, kind, self._meta[3])
            if len(doc) > self.max_meta_bytes:
                raise LimitExceeded(
                    f"the meta object ({where}) is {len(doc)} bytes, over the "
                    f"{self.max_meta_bytes} byte cap", cause="meta-too-large",
                    fix="the meta object holds only metadata and dependencies; rebuild the "
                    "package")
            self._meta = (doc, api, kind, where)
            return
        self._counts[kind] = self._counts.get(kind, 0) + 1
        self._gvks.setdefault((api, kind), where)

    def _lint(self, kind: str) -> None:
        from .lint import ALLOWED

        allowed = ALLOWED.get(kind, ())
        for (api, obj_kind), where in self._gvks.items():
            if (api, obj_kind) not in allowed:
                kinds = ", ".join(sorted({f"{a} {k}" for a, k in allowed})) or "nothing else"
                raise PackageError(
                    f"package.yaml {where} is a {api} {obj_kind}: a {kind} package may hold "
                    f"only {kinds}", cause="disallowed-object",
                    fix="Crossplane's package linter refuses this package; remove the object "
                    "and rebuild the package")

    def finish(self) -> Package:
        """End of stream: parse the meta object, lint, and return the :class:`Package`."""
        if self._head:  # a stream of one or two bytes that began like a BOM
            self._split(self._head)
        self._head = None
        self._split(b"\n")  # a separator on the last line needs its newline
        last = bytes(self._buf[1:-1])
        self._buf = bytearray(b"\n")
        try:
            self._document(last)
            self._drain(block=True)
        finally:
            self.close()
        if self._meta is None:
            if not self._counts:
                raise PackageError("package.yaml holds no objects", cause="empty-package",
                                   fix="the package must contain a crossplane.yaml meta object")
            raise PackageError(
                f"package.yaml holds no Crossplane package meta object (group {META_GROUP}) "
                f"among its {sum(self._counts.values())} objects", cause="no-meta-object",
                fix="add the crossplane.yaml meta object (Provider, Configuration or Function) "
                "and rebuild the package")
        doc, _, kind, _ = self._meta
        self._lint(kind)
        meta = load_safe(doc)
        return package_from_meta(meta, dict(self._counts), self.size, self._hash.hexdigest())


def iter_stream(data: bytes | BinaryIO, chunk: int = _FEED_SLICE) -> Iterator[bytes]:
    if isinstance(data, bytes | bytearray | memoryview):
        yield bytes(data)
        return
    while block := data.read(chunk):
        yield block


def parse_package_stream(data: bytes | BinaryIO, *, full: bool = False,
                         max_bytes: int = PACKAGE_CAP) -> Package:
    """Parse and lint a whole ``package.yaml`` stream with :class:`PackageScanner`.

    Every document is always parsed; ``full`` is kept for callers of the earlier API.
    """
    del full
    scanner = PackageScanner(max_bytes=max_bytes)
    for block in iter_stream(data):
        scanner.feed(block)
    return scanner.finish()
