"""OCI and Docker image types: media types, descriptors, manifests, indexes, platform choice.

Pure data: nothing here knows about HTTP. Parsing validates shape and caps counts, so later
layers can trust what they get.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator, Mapping
from types import MappingProxyType
from typing import Any, NamedTuple, Protocol

from .errors import DigestMismatch, LimitExceeded, PackageError

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"

MANIFEST_TYPES = (OCI_MANIFEST, DOCKER_MANIFEST)
INDEX_TYPES = (OCI_INDEX, DOCKER_LIST)
ACCEPT = ", ".join((OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_LIST))
"""Registry 2.8 answers 404 for OCI manifests unless Accept lists them: always send all four."""

MAX_MANIFEST_BYTES = 4 * 1024 * 1024
_NO_ANNOTATIONS: Mapping[str, str] = MappingProxyType({})
MAX_LAYERS = 256
DEFAULT_PLATFORM = "linux/amd64"

_DIGEST_RE = re.compile(r"sha256:[a-f0-9]{64}|sha512:[a-f0-9]{128}")  # used with fullmatch


def digest_of(data: bytes, algorithm: str = "sha256") -> str:
    """``algo:hex`` of ``data``."""
    return f"{algorithm}:{hashlib.new(algorithm, data).hexdigest()}"


def check_digest(digest: str) -> str:
    """Return ``digest`` if it is a sha256/sha512 digest crossfetch can verify, else raise."""
    if not isinstance(digest, str) or not _DIGEST_RE.fullmatch(digest):
        raise PackageError(f"unsupported or malformed digest {digest!r}",
                           fix="only sha256 and sha512 digests can be verified")
    return digest


def verify_bytes(data: bytes, digest: str, what: str, url: str | None = None) -> None:
    """Raise :class:`DigestMismatch` unless ``data`` hashes to ``digest``."""
    algo = check_digest(digest).split(":", 1)[0]
    actual = digest_of(data, algo)
    if actual != digest:
        raise DigestMismatch(
            f"{what} does not match its digest: expected {digest}, got {actual}",
            url=url, fix="the registry or a proxy altered the content; retry, and if it "
            "persists re-push the package",
        )


class Platform(NamedTuple):
    os: str
    architecture: str
    variant: str | None = None

    @classmethod
    def parse(cls, s: str) -> Platform:
        parts = s.split("/")
        if len(parts) not in (2, 3) or not all(parts):
            raise ValueError(f"invalid platform {s!r}: use os/arch[/variant], e.g. linux/arm64")
        return cls(parts[0], parts[1], parts[2] if len(parts) == 3 else None)

    def __str__(self) -> str:
        return "/".join(p for p in (self.os, self.architecture, self.variant) if p)


class Descriptor(NamedTuple):
    media_type: str
    digest: str
    size: int
    annotations: Mapping[str, str] = _NO_ANNOTATIONS
    platform: Platform | None = None
    urls: tuple[str, ...] = ()

    @classmethod
    def from_dict(cls, d: Any, what: str = "descriptor") -> Descriptor:
        """Validate one descriptor object: every field the OCI image spec types is checked."""
        d = _object(d, what)
        if "digest" not in d or "size" not in d:
            raise _invalid(f"{what} lacks a digest or a size")
        digest = _typed(d, "digest", str, what) or ""
        if not _DIGEST_RE.fullmatch(digest):
            raise _invalid(f"{what}.digest {digest[:80]!r} is malformed or not sha256/sha512")
        size = _size(d, what)
        _typed(d, "artifactType", str, what)
        _typed(d, "data", str, what)
        platform = None
        plat = _typed(d, "platform", dict, what)
        if plat is not None:
            where = f"{what}.platform"
            os_, arch = _typed(plat, "os", str, where), _typed(plat, "architecture", str, where)
            variant = _typed(plat, "variant", str, where)
            _typed(plat, "os.version", str, where)
            _str_list(plat, "os.features", where)
            _str_list(plat, "features", where)
            if os_ and arch:
                platform = Platform(os_, arch, variant or None)
        return cls(
            media_type=_typed(d, "mediaType", str, what) or "",
            digest=digest,
            size=size,
            annotations=_str_map(d, "annotations", what),
            platform=platform,
            urls=_str_list(d, "urls", what),
        )


# --- field validation -----------------------------------------------------------------------
# A manifest is untrusted input: a number where a list belongs, a list where a string belongs,
# "size": 1e999 or 50 levels of nesting must each be a PackageError naming the field, never a
# TypeError/OverflowError/RecursionError. Types follow the OCI image spec (descriptor.md,
# manifest.md, image-index.md, config.md, v1.1.0), as Go's encoding/json enforces them.

_TYPE_NAMES: dict[type, str] = {str: "a string", dict: "an object", list: "an array",
                                 int: "an integer"}
_FIX = "the registry holds a malformed image; rebuild and re-push the package"
_MAX_SIZE = 2**63 - 1  # int64, as Go decodes it


def _invalid(message: str) -> PackageError:
    return PackageError(message, cause="invalid-manifest", fix=_FIX)


def _json_kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    return _TYPE_NAMES.get(type(value), "a value")


def _object(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _invalid(f"{what} is {_json_kind(value)}, not a JSON object")
    return value


def _typed(d: dict[str, Any], key: str, typ: type, what: str) -> Any:
    """``d[key]`` if absent or null (None) or of ``typ``; otherwise a PackageError."""
    value = d.get(key)
    if value is None or (isinstance(value, typ) and not isinstance(value, bool)):
        return value
    raise _invalid(f"{what}.{key} is {_json_kind(value)}, not {_TYPE_NAMES[typ]}")


def _size(d: dict[str, Any], what: str) -> int:
    value = d.get("size")
    if isinstance(value, bool) or not isinstance(value, int):
        shown = repr(value) if isinstance(value, float) else _json_kind(value)
        raise _invalid(f"{what}.size is {shown}, not a whole number of bytes")
    if value < 0:
        raise _invalid(f"{what}.size {value} is negative")
    if value > _MAX_SIZE:
        raise _invalid(f"{what}.size {value} is above the int64 maximum")
    return value


def _str_map(d: dict[str, Any], key: str, what: str) -> dict[str, str]:
    value = _typed(d, key, dict, what) or {}
    for k, v in value.items():
        if not isinstance(v, str):
            raise _invalid(f"{what}.{key}[{k!r}] is {_json_kind(v)}, not a string")
    return dict(value)


def _str_list(d: dict[str, Any], key: str, what: str) -> tuple[str, ...]:
    value = _typed(d, key, list, what) or []
    for i, v in enumerate(value):
        if not isinstance(v, str):
            raise _invalid(f"{what}.{key}[{i}] is {_json_kind(v)}, not a string")
    return tuple(value)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def load_json(raw: bytes, what: str) -> Any:
    """Parse untrusted JSON (a manifest, config, tag list): every failure is a PackageError.

    ``NaN``/``Infinity`` are refused (Go's encoding/json does too); nesting deeper than the
    interpreter's recursion limit is refused instead of raising RecursionError.
    """
    try:
        return json.loads(raw, parse_constant=_no_constant)
    except RecursionError:
        raise _invalid(f"{what} nests JSON too deeply to be an image document") from None
    except (ValueError, UnicodeDecodeError) as e:
        raise _invalid(f"{what} is not valid JSON: {e}") from None


def check_config(value: Any, what: str = "image config") -> dict[str, Any]:
    """Validate the types of an image config's fields (OCI config.md / Docker image v1)."""
    doc = _object(value, what)
    for key in ("architecture", "os", "variant", "os.version", "created", "author",
                "docker_version", "id", "parent", "container"):
        _typed(doc, key, str, what)
    _str_list(doc, "os.features", what)
    for section in ("config", "container_config"):
        sub = _typed(doc, section, dict, what)
        if sub is not None:
            where = f"{what}.{section}"
            _str_map(sub, "Labels", where)
            for key in ("Env", "Entrypoint", "Cmd"):
                _str_list(sub, key, where)
            for key in ("User", "WorkingDir", "StopSignal"):
                _typed(sub, key, str, where)
    rootfs = _typed(doc, "rootfs", dict, what)
    if rootfs is not None:
        _typed(rootfs, "type", str, f"{what}.rootfs")
        _str_list(rootfs, "diff_ids", f"{what}.rootfs")
    history = _typed(doc, "history", list, what) or []
    for i, entry in enumerate(history):
        _object(entry, f"{what}.history[{i}]")
    return doc


class Manifest(NamedTuple):
    """An image manifest (OCI or Docker v2 schema 2)."""

    media_type: str
    config: Descriptor
    layers: tuple[Descriptor, ...]
    annotations: dict[str, str]
    raw: bytes
    digest: str = ""


class Index(NamedTuple):
    """An image index / manifest list."""

    media_type: str
    manifests: tuple[Descriptor, ...]
    raw: bytes
    digest: str = ""

    def select(self, platform: Platform | str | None = None) -> Descriptor:
        """The entry for ``platform`` (default ``linux/amd64``)."""
        want = Platform.parse(platform) if isinstance(platform, str) else platform
        want = want or Platform.parse(DEFAULT_PLATFORM)
        candidates = [m for m in self.manifests if m.platform is not None
                      and m.platform.os == want.os
                      and m.platform.architecture == want.architecture
                      and (want.variant is None or m.platform.variant == want.variant)]
        if not candidates:
            have = ", ".join(str(m.platform) for m in self.manifests if m.platform) or "none"
            raise PackageError(
                f"the index has no manifest for platform {want} (it has: {have})",
                cause="platform-not-found", fix="pass --platform with one of the listed platforms",
            )
        return candidates[0]


def parse_manifest(raw: bytes, media_type: str | None = None, digest: str = "") -> Manifest | Index:
    """Parse manifest or index bytes; ``media_type`` is the Content-Type, if any.

    Every field's type is checked; anything malformed is a :class:`PackageError`.
    """
    if len(raw) > MAX_MANIFEST_BYTES:
        raise LimitExceeded(f"manifest is {len(raw)} bytes, above the {MAX_MANIFEST_BYTES} cap")
    name = f"manifest {digest}" if digest else "manifest"
    doc = _object(load_json(raw, name), name)
    _typed(doc, "schemaVersion", int, name)
    _typed(doc, "artifactType", str, name)
    if doc.get("subject") is not None:
        Descriptor.from_dict(doc["subject"], f"{name} subject")
    declared = _typed(doc, "mediaType", str, name)
    mt = str(declared or media_type or "").split(";")[0].strip()
    if not mt:
        mt = OCI_INDEX if "manifests" in doc else OCI_MANIFEST
    annotations = _str_map(doc, "annotations", name)
    if mt in INDEX_TYPES or ("manifests" in doc and "layers" not in doc):
        entries = _typed(doc, "manifests", list, name)
        if entries is None:
            raise _invalid("index has no manifests list")
        if len(entries) > MAX_LAYERS:
            raise LimitExceeded(f"index lists {len(entries)} manifests, above {MAX_LAYERS}")
        return Index(mt, tuple(Descriptor.from_dict(m, f"index entry {i}")
                               for i, m in enumerate(entries)), raw, digest)
    if mt not in MANIFEST_TYPES:
        raise PackageError(f"unsupported manifest media type {mt!r}",
                           fix="crossfetch reads OCI and Docker v2 schema 2 images")
    layers = _typed(doc, "layers", list, name)
    if layers is None:
        raise _invalid("manifest has no layers list")
    if len(layers) > MAX_LAYERS:
        raise LimitExceeded(f"manifest has {len(layers)} layers, above the cap of {MAX_LAYERS}",
                            fix="a Crossplane package needs only its base layer; rebuild it")
    if doc.get("config") is None:
        raise _invalid(f"{name} has no config descriptor")
    return Manifest(
        media_type=mt,
        config=Descriptor.from_dict(doc.get("config"), "manifest config"),
        layers=tuple(Descriptor.from_dict(x, f"layer {i}") for i, x in enumerate(layers)),
        annotations=annotations,
        raw=raw,
        digest=digest,
    )


class BlobSource(Protocol):
    """Where manifests and blobs come from: a registry, a runtime's content store, a file.

    The xpkg pipeline consumes this, so the direct path and the node (CRI) path share it.
    """

    def fetch_manifest(self, identifier: str) -> tuple[bytes, str, str]:
        """(raw bytes, media type, digest) of the manifest for a tag or digest. Verified."""

    def open_blob(self, desc: Descriptor) -> Iterator[bytes]:
        """Stream a blob's bytes. The consumer verifies the digest as it reads."""


def resolve_image(source: BlobSource, raw: bytes, media_type: str, digest: str,
                  platform: Platform | str | None = None) -> tuple[Manifest, str | None]:
    """The image manifest ``raw`` stands for: itself, or an index's entry for ``platform``
    (default ``linux/amd64``) fetched from ``source``. Also returns the platform chosen."""
    parsed = parse_manifest(raw, media_type, digest)
    chosen = None
    if isinstance(parsed, Index):
        entry = parsed.select(platform)
        chosen = str(entry.platform)  # select() only returns entries that name a platform
        parsed = parse_manifest(*source.fetch_manifest(entry.digest))
        if isinstance(parsed, Index):
            raise PackageError(f"index entry {entry.digest} is itself an index",
                               fix="point the reference at an image or a one-level index")
    return parsed, chosen


class BaseLayer(NamedTuple):
    """The layer a package was read from and how it was chosen: ``annotation`` (layer
    annotation ``io.crossplane.xpkg: base``), ``label`` (the config label) or ``flattened``
    (no layer marked: every layer read). ``note`` says anything unusual about the choice."""

    digest: str
    size: int
    how: str
    note: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"digest": self.digest, "size": self.size, "how": self.how}
        if self.note:
            out["note"] = self.note
        return out

    @classmethod
    def from_dict(cls, data: Any) -> BaseLayer | None:
        """From a cache entry's metadata; ``None`` when absent or not of this shape."""
        if not isinstance(data, dict):
            return None
        digest, size, how = data.get("digest"), data.get("size"), data.get("how")
        if not (isinstance(digest, str) and isinstance(size, int) and isinstance(how, str)):
            return None
        note = data.get("note")
        return cls(digest, size, how, note if isinstance(note, str) else None)
