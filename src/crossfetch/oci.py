"""OCI and Docker image types: media types, descriptors, manifests, indexes, platform choice.

Pure data: nothing here knows about HTTP. Parsing validates shape and caps counts, so later
layers can trust what they get.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
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

_DIGEST_RE = re.compile(r"^sha256:[a-f0-9]{64}$|^sha512:[a-f0-9]{128}$")


def digest_of(data: bytes, algorithm: str = "sha256") -> str:
    """``algo:hex`` of ``data``."""
    return f"{algorithm}:{hashlib.new(algorithm, data).hexdigest()}"


def check_digest(digest: str) -> str:
    """Return ``digest`` if it is a sha256/sha512 digest crossfetch can verify, else raise."""
    if not _DIGEST_RE.match(digest):
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
        if not isinstance(d, dict):
            raise PackageError(f"{what} is not an object")
        try:
            digest = check_digest(str(d["digest"]))
            size = int(d["size"])
        except (KeyError, TypeError, ValueError) as e:
            raise PackageError(f"{what} lacks a valid digest or size: {e}") from None
        if size < 0:
            raise PackageError(f"{what} has a negative size")
        plat = d.get("platform")
        platform = None
        if isinstance(plat, dict) and plat.get("os") and plat.get("architecture"):
            platform = Platform(str(plat["os"]), str(plat["architecture"]), plat.get("variant"))
        ann = d.get("annotations") or {}
        return cls(
            media_type=str(d.get("mediaType", "")),
            digest=digest,
            size=size,
            annotations={str(k): str(v) for k, v in ann.items()} if isinstance(ann, dict) else {},
            platform=platform,
            urls=tuple(str(u) for u in d.get("urls") or ()),
        )


@dataclass(frozen=True)
class Manifest:
    """An image manifest (OCI or Docker v2 schema 2)."""

    media_type: str
    config: Descriptor
    layers: tuple[Descriptor, ...]
    annotations: dict[str, str]
    raw: bytes = field(repr=False)
    digest: str = ""


@dataclass(frozen=True)
class Index:
    """An image index / manifest list."""

    media_type: str
    manifests: tuple[Descriptor, ...]
    raw: bytes = field(repr=False)
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
    """Parse manifest or index bytes; ``media_type`` is the Content-Type, if any."""
    if len(raw) > MAX_MANIFEST_BYTES:
        raise LimitExceeded(f"manifest is {len(raw)} bytes, above the {MAX_MANIFEST_BYTES} cap")
    try:
        doc = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as e:
        raise PackageError(f"manifest is not valid JSON: {e}") from None
    if not isinstance(doc, dict):
        raise PackageError("manifest is not a JSON object")
    mt = str(doc.get("mediaType") or media_type or "").split(";")[0].strip()
    if not mt:
        mt = OCI_INDEX if "manifests" in doc else OCI_MANIFEST
    if mt in INDEX_TYPES or ("manifests" in doc and "layers" not in doc):
        entries = doc.get("manifests")
        if not isinstance(entries, list):
            raise PackageError("index has no manifests list")
        if len(entries) > MAX_LAYERS:
            raise LimitExceeded(f"index lists {len(entries)} manifests, above {MAX_LAYERS}")
        return Index(mt, tuple(Descriptor.from_dict(m, "index entry") for m in entries), raw,
                     digest)
    if mt not in MANIFEST_TYPES:
        raise PackageError(f"unsupported manifest media type {mt!r}",
                           fix="crossfetch reads OCI and Docker v2 schema 2 images")
    layers = doc.get("layers")
    if not isinstance(layers, list):
        raise PackageError("manifest has no layers list")
    if len(layers) > MAX_LAYERS:
        raise LimitExceeded(f"manifest has {len(layers)} layers, above the cap of {MAX_LAYERS}",
                            fix="a Crossplane package needs only its base layer; rebuild it")
    ann = doc.get("annotations") or {}
    return Manifest(
        media_type=mt,
        config=Descriptor.from_dict(doc.get("config"), "manifest config"),
        layers=tuple(Descriptor.from_dict(x, f"layer {i}") for i, x in enumerate(layers)),
        annotations=dict(ann) if isinstance(ann, dict) else {},
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
