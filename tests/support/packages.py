"""Deterministic Crossplane package builders writing OCI image layouts by hand.

Each builder writes ``oci-layout``, ``index.json`` and ``blobs/sha256/*`` into a directory and
returns a :class:`BuiltPackage` holding every byte it wrote, so tests can compare what a client
fetched with what was built. Tar entries and gzip streams have zeroed timestamps and fixed
owners, so the same builder always yields the same digests.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import random
import re
import tarfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .testdata import TESTDATA

XPKG_FILE = TESTDATA / "xpkg" / "function-conditional-patch-and-transform.xpkg"

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
XPKG_ANNOTATION = "io.crossplane.xpkg"


@dataclass(frozen=True)
class BuiltPackage:
    """A package as built: the layout on disk plus every byte of it, keyed by digest."""

    layout: Path
    tag: str
    manifest_digest: str
    manifest: bytes
    media_type: str
    blobs: dict[str, bytes]
    package_yaml: bytes
    base_layer_digest: str | None
    runtime_layer_digest: str | None
    # For an index: platform ("linux/amd64") -> the image chosen for it. package_yaml and
    # base_layer_digest above are those of linux/amd64, the platform Crossplane picks.
    platforms: dict[str, BuiltPackage] = field(default_factory=dict)


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _canonical(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), sort_keys=True).encode()


# -- package.yaml streams -------------------------------------------------------------------
def _doc(text: str) -> str:
    """One YAML document without a leading ``---`` line, ending in a newline."""
    if text.startswith("---\n"):
        text = text[4:]
    return text if text.endswith("\n") else text + "\n"


def package_stream(meta: str, objects: list[str]) -> bytes:
    """``---`` + meta, then every object after its own ``---`` (the package.yaml layout)."""
    return "".join("---\n" + _doc(d) for d in [meta, *objects]).encode()


def _annotate(meta: str, key: str, value: str) -> str:
    """Add a metadata annotation to a meta object (every testdata meta has ``annotations:``)."""
    marker = "\n  annotations:\n"
    if marker not in meta:
        raise ValueError("meta object has no metadata.annotations block")
    return meta.replace(marker, f"{marker}    {key}: {value}\n", 1)


def _read(rel: str) -> str:
    return (TESTDATA / rel).read_text()


def _crds(rel_dir: str) -> list[str]:
    return [p.read_text() for p in sorted((TESTDATA / rel_dir).glob("*.yaml"))]


# -- tar / gzip --------------------------------------------------------------------------------
def make_tar(files: dict[str, bytes]) -> bytes:
    """A deterministic tar of regular files (sorted names, mtime 0, root-owned, 0644)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name in sorted(files):
            data = files[name]
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o755 if name.endswith(("function", "provider")) else 0o644
            info.mtime = 0
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def gz(data: bytes, level: int = 6) -> bytes:
    return gzip.compress(data, compresslevel=level, mtime=0)


# -- hand-made tar headers (for archives that lie: tarfile refuses to write them) ------------
def tar_header(name: bytes, *, size: int | bytes = 0, typeflag: bytes = b"0",
               linkname: bytes = b"") -> bytes:
    """One ustar header block. ``size`` is written as octal, or as raw bytes if given so."""
    h = bytearray(512)
    h[0:len(name[:100])] = name[:100]
    h[100:108] = b"0000644\x00"
    h[108:116] = h[116:124] = b"0000000\x00"
    field_ = (b"%011o\x00" % size) if isinstance(size, int) else size.ljust(12, b"\x00")[:12]
    h[124:136] = field_
    h[136:148] = b"00000000000\x00"
    h[148:156] = b" " * 8
    h[156:157] = typeflag
    h[157:157 + len(linkname[:100])] = linkname[:100]
    h[257:265] = b"ustar\x0000"
    h[148:156] = b"%06o\x00 " % sum(h)
    return bytes(h)


def pax_record(key: str, value: str) -> bytes:
    """One pax extended-header record, ``"<len> key=value\\n"`` (len counts itself)."""
    body = f" {key}={value}\n".encode()
    n = len(body) + 1
    while len(str(n).encode()) + len(body) != n:
        n += 1
    return str(n).encode() + body


def _pad(data: bytes) -> bytes:
    return data + b"\x00" * (-len(data) % 512)


def raw_tar(*members: tuple[bytes, bytes]) -> bytes:
    """A tar from (header block(s), data) pairs, each data padded, plus the end marker."""
    return b"".join(h + _pad(d) for h, d in members) + b"\x00" * 1024


def lying_tar(data: bytes, *, size: int | bytes | None = None, pax: dict[str, str] | None = None,
              name: bytes = b"package.yaml") -> bytes:
    """A tar whose ``name`` member holds ``data`` but whose header says ``size`` (octal int or
    raw field bytes) and/or whose pax header overrides it (e.g. ``{"size": "-5"}``)."""
    members: list[tuple[bytes, bytes]] = []
    if pax:
        records = b"".join(pax_record(k, v) for k, v in pax.items())
        members.append((tar_header(b"PaxHeaders/" + name, size=len(records), typeflag=b"x"),
                        records))
    members.append((tar_header(name, size=len(data) if size is None else size), data))
    return raw_tar(*members)


# -- layout writing ----------------------------------------------------------------------------
class _Image:
    """Collects the layers and config of one image, then renders its manifest."""

    def __init__(self, blobs: dict[str, bytes], docker: bool = False) -> None:
        self.blobs = blobs
        self.docker = docker
        self.layers: list[dict[str, Any]] = []
        self.diff_ids: list[str] = []
        self.labels: dict[str, str] = {}

    def layer(
        self,
        tar: bytes,
        *,
        compress: bool = True,
        media_type: str | None = None,
        annotations: dict[str, str] | None = None,
        level: int = 6,
    ) -> str:
        blob = gz(tar, level) if compress else tar
        digest = sha256(blob)
        self.blobs[digest] = blob
        self.diff_ids.append(sha256(tar))
        desc: dict[str, Any] = {
            "mediaType": media_type or (DOCKER_LAYER_GZIP if self.docker else OCI_LAYER_GZIP),
            "digest": digest,
            "size": len(blob),
        }
        if annotations:
            desc["annotations"] = annotations
        self.layers.append(desc)
        return digest

    def manifest(self, arch: str = "amd64") -> bytes:
        config = _canonical(
            {
                "architecture": arch,
                "os": "linux",
                "config": {"Labels": self.labels} if self.labels else {},
                "rootfs": {"type": "layers", "diff_ids": self.diff_ids},
            }
        )
        self.blobs[sha256(config)] = config
        return _canonical(
            {
                "schemaVersion": 2,
                "mediaType": DOCKER_MANIFEST if self.docker else OCI_MANIFEST,
                "config": {
                    "mediaType": DOCKER_CONFIG if self.docker else OCI_CONFIG,
                    "digest": sha256(config),
                    "size": len(config),
                },
                "layers": self.layers,
            }
        )


def _write_layout(
    directory: Path, tag: str, top: bytes, media_type: str, blobs: dict[str, bytes]
) -> str:
    """Write an OCI layout whose index.json names ``top`` as ``tag``; return its digest."""
    digest = sha256(top)
    blobs[digest] = top
    blob_dir = directory / "blobs" / "sha256"
    blob_dir.mkdir(parents=True, exist_ok=True)
    for d, data in blobs.items():
        path = blob_dir / d.removeprefix("sha256:")
        if not path.exists() or path.stat().st_size != len(data):
            path.write_bytes(data)
    (directory / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    index = {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [
            {
                "mediaType": media_type,
                "digest": digest,
                "size": len(top),
                "annotations": {"org.opencontainers.image.ref.name": tag},
            }
        ],
    }
    (directory / "index.json").write_bytes(_canonical(index))
    return digest


def _single(
    directory: Path,
    tag: str,
    image: _Image,
    package_yaml: bytes,
    base: str | None,
    runtime: str | None,
) -> BuiltPackage:
    manifest = image.manifest()
    media_type = DOCKER_MANIFEST if image.docker else OCI_MANIFEST
    digest = _write_layout(directory, tag, manifest, media_type, image.blobs)
    return BuiltPackage(
        layout=directory,
        tag=tag,
        manifest_digest=digest,
        manifest=manifest,
        media_type=media_type,
        blobs=dict(image.blobs),
        package_yaml=package_yaml,
        base_layer_digest=base,
        runtime_layer_digest=runtime,
    )


_CACHE: dict[tuple[str, Path, tuple[Any, ...]], BuiltPackage] = {}


def _cached(
    fn: Callable[..., BuiltPackage],
) -> Callable[..., BuiltPackage]:
    """Build once per (builder, directory, args) in this process; later calls reuse it."""

    def wrapper(directory: Path, *args: Any, **kwargs: Any) -> BuiltPackage:
        key = (fn.__name__, Path(directory).resolve(), (*args, *sorted(kwargs.items())))
        if key not in _CACHE:
            _CACHE[key] = fn(Path(directory), *args, **kwargs)
        return _CACHE[key]

    wrapper.__name__ = fn.__name__
    wrapper.__doc__ = fn.__doc__
    return wrapper


BASE = {XPKG_ANNOTATION: "base"}


# -- builders ----------------------------------------------------------------------------------
@_cached
def function_with_runtime(directory: Path, runtime_mb: int = 30) -> BuiltPackage:
    """Function (go-templating) with an annotated base layer and an incompressible runtime."""
    yaml = package_stream(
        _read("function-go-templating/crossplane.yaml"), _crds("function-go-templating/input")
    )
    image = _Image({})
    base = image.layer(make_tar({"package.yaml": yaml}), annotations=BASE)
    noise = random.Random(5798).randbytes(runtime_mb * 1024 * 1024)
    # Level 1: random bytes don't shrink anyway, so spend as little CPU as possible.
    runtime = image.layer(make_tar({"function": noise}), level=1)
    return _single(directory, "v0.1.0", image, yaml, base, runtime)


@_cached
def provider_kubernetes(directory: Path) -> BuiltPackage:
    """provider-kubernetes: meta + its 9 CRDs in an annotated base layer, plus a small runtime."""
    yaml = package_stream(
        _read("provider-kubernetes/crossplane.yaml"), _crds("provider-kubernetes/crds")
    )
    image = _Image({})
    base = image.layer(make_tar({"package.yaml": yaml}), annotations=BASE)
    runtime = image.layer(make_tar({"provider": b"\x7fELF not really a provider\n"}))
    return _single(directory, "v0.15.0", image, yaml, base, runtime)


@_cached
def configuration(directory: Path) -> BuiltPackage:
    """platform-ref-aws Configuration (meta with dependsOn) in one annotated layer."""
    yaml = package_stream(_read("configuration-platform-ref-aws/crossplane.yaml"), [])
    image = _Image({})
    base = image.layer(make_tar({"package.yaml": yaml}), annotations=BASE)
    return _single(directory, "v1.0.0", image, yaml, base, None)


@_cached
def two_platform_index(directory: Path) -> BuiltPackage:
    """OCI index: linux/amd64 and linux/arm64 images whose package.yaml differ by annotation."""
    meta = _read("function-auto-ready/crossplane.yaml")
    crds = _crds("function-auto-ready/input")
    blobs: dict[str, bytes] = {}
    children: dict[str, BuiltPackage] = {}
    entries = []
    for arch in ("amd64", "arm64"):
        platform = f"linux/{arch}"
        yaml = package_stream(_annotate(meta, "crossfetch.test/platform", platform), crds)
        image = _Image(blobs)
        base = image.layer(make_tar({"package.yaml": yaml}), annotations=BASE)
        runtime = image.layer(make_tar({"function": f"runtime for {platform}\n".encode()}))
        manifest = image.manifest(arch)
        digest = sha256(manifest)
        blobs[digest] = manifest
        child_blobs = {d: blobs[d] for d in (base, runtime, digest)}
        child_blobs[json.loads(manifest)["config"]["digest"]] = blobs[
            json.loads(manifest)["config"]["digest"]
        ]
        children[platform] = BuiltPackage(
            layout=directory,
            tag="v1",
            manifest_digest=digest,
            manifest=manifest,
            media_type=OCI_MANIFEST,
            blobs=child_blobs,
            package_yaml=yaml,
            base_layer_digest=base,
            runtime_layer_digest=runtime,
        )
        entries.append(
            {
                "mediaType": OCI_MANIFEST,
                "digest": digest,
                "size": len(manifest),
                "platform": {"architecture": arch, "os": "linux"},
            }
        )
    index = _canonical({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries})
    digest = _write_layout(directory, "v1", index, OCI_INDEX, blobs)
    amd = children["linux/amd64"]
    return BuiltPackage(
        layout=directory,
        tag="v1",
        manifest_digest=digest,
        manifest=index,
        media_type=OCI_INDEX,
        blobs=dict(blobs),
        package_yaml=amd.package_yaml,
        base_layer_digest=amd.base_layer_digest,
        runtime_layer_digest=amd.runtime_layer_digest,
        platforms=children,
    )


@_cached
def docker_v2_config_label(directory: Path) -> BuiltPackage:
    """Docker v2 schema 2 image; the base layer is marked ONLY by a config label."""
    meta = _annotate(
        _read("function-go-templating/crossplane.yaml"), "crossfetch.test/fixture", "docker-label"
    )
    yaml = package_stream(meta, _crds("function-go-templating/input"))
    image = _Image({}, docker=True)
    # The non-base layer comes first so that "first layer" guessing would be wrong.
    extra = image.layer(make_tar({".up/examples.yaml": b"---\nkind: Example\n"}))
    base = image.layer(make_tar({"package.yaml": yaml}))
    image.labels = {f"{XPKG_ANNOTATION}:{base}": "base", f"{XPKG_ANNOTATION}:{extra}": "upbound"}
    return _single(directory, "v1", image, yaml, base, None)


@_cached
def unmarked(directory: Path) -> BuiltPackage:
    """No marks at all: three layers, package.yaml only in the second one."""
    yaml = package_stream(_read("configuration-aws-network/crossplane.yaml"), [])
    image = _Image({})
    image.layer(make_tar({"etc/os-release": b"ID=crossfetch-test\n", "README": b"not here\n"}))
    base = image.layer(make_tar({"package.yaml": yaml}))
    image.layer(make_tar({"bin/tool": b"#!/bin/sh\nexit 0\n"}))
    return _single(directory, "v1", image, yaml, base, None)


@_cached
def uncompressed_under_gzip_type(directory: Path) -> BuiltPackage:
    """The (annotated) package layer is a plain tar although its media type says tar+gzip."""
    yaml = package_stream(
        _read("function-patch-and-transform/crossplane.yaml"),
        _crds("function-patch-and-transform/input"),
    )
    image = _Image({})
    base = image.layer(
        make_tar({"package.yaml": yaml}),
        compress=False,
        media_type=OCI_LAYER_GZIP,
        annotations=BASE,
    )
    return _single(directory, "v1", image, yaml, base, None)


_GROUP = re.compile(r"kubernetes(\.m)?\.crossplane\.io")


@_cached
def big_provider(directory: Path, target_mb: int = 100) -> BuiltPackage:
    """Provider whose package.yaml is ~target_mb MB of distinct, valid CRDs (renamed groups)."""
    crds = _crds("provider-kubernetes/crds")
    chunk = sum(len(c) for c in crds)
    objects: list[str] = []
    size = 0
    i = 0
    while size < target_mb * 1024 * 1024:
        # A distinct API group per copy keeps every CRD name unique.
        copies = [_GROUP.sub(rf"r{i}.\g<0>", c) for c in crds]
        objects.extend(copies)
        size += chunk
        i += 1
    yaml = package_stream(_read("provider-kubernetes/crossplane.yaml"), objects)
    image = _Image({})
    base = image.layer(make_tar({"package.yaml": yaml}), annotations=BASE, level=1)
    runtime = image.layer(make_tar({"provider": b"\x7fELF small runtime\n"}))
    return _single(directory, "v1", image, yaml, base, runtime)


def from_xpkg_file() -> tuple[Path, bytes]:
    """The committed ``crossplane xpkg build`` file and the package.yaml bytes it carries."""
    files = read_xpkg_file()
    return XPKG_FILE, files["package.yaml"]


def read_xpkg_file() -> dict[str, bytes]:
    """Members of the xpkg tarball plus ``package.yaml`` (from its base layer)."""
    with tarfile.open(XPKG_FILE) as outer:
        members = {m.name: outer.extractfile(m).read() for m in outer if m.isfile()}  # type: ignore[union-attr]
    config_name = json.loads(members["manifest.json"])[0]["Config"]
    labels = json.loads(members[config_name])["config"]["Labels"]
    base = next(k.split(":", 1)[1] for k, v in labels.items() if v == "base")
    layer = members[base.removeprefix("sha256:") + ".tar.gz"]
    with tarfile.open(fileobj=io.BytesIO(layer), mode="r:gz") as inner:
        member = inner.extractfile("package.yaml")
        assert member is not None
        members["package.yaml"] = member.read()
    return members


def xpkg_package(tag: str = "v1") -> BuiltPackage:
    """The xpkg file as ``crossplane xpkg push`` would publish it: a Docker v2 manifest over the
    tarball's config and its gzip layers unchanged, so the config labels still name the layers.

    (``skopeo copy docker-archive:`` recompresses the layers, which breaks those labels; push
    this one with :func:`tests.support.push.raw_push`.)
    """
    files = read_xpkg_file()
    entry = json.loads(files["manifest.json"])[0]
    config = files[entry["Config"]]
    layers = [files[name] for name in entry["Layers"]]
    blobs = {sha256(config): config} | {sha256(layer): layer for layer in layers}
    manifest = _canonical(
        {
            "schemaVersion": 2,
            "mediaType": DOCKER_MANIFEST,
            "config": {"mediaType": DOCKER_CONFIG, "digest": sha256(config), "size": len(config)},
            "layers": [
                {"mediaType": DOCKER_LAYER_GZIP, "digest": sha256(layer), "size": len(layer)}
                for layer in layers
            ],
        }
    )
    labels = json.loads(config)["config"]["Labels"]
    base = next(k.split(":", 1)[1] for k, v in labels.items() if v == "base")
    return BuiltPackage(
        layout=XPKG_FILE,
        tag=tag,
        manifest_digest=sha256(manifest),
        manifest=manifest,
        media_type=DOCKER_MANIFEST,
        blobs=blobs,
        package_yaml=files["package.yaml"],
        base_layer_digest=base,
        runtime_layer_digest=None,
    )


# -- hostile packages ------------------------------------------------------------------------
def image(layers: list[bytes], *, compress: bool = True, base: int | None = 0,
          labels: dict[str, str] | None = None, config: bytes | None = None,
          package_yaml: bytes = b"", tag: str = "v1") -> BuiltPackage:
    """A single-image package from raw layer tars, for :func:`tests.support.push.raw_push`.

    ``base`` is the index of the layer annotated ``io.crossplane.xpkg: base`` (None: no
    annotation, so the config is read and, without labels, the layers are flattened).
    ``config`` replaces the generated image config byte for byte. No layout is written.
    """
    img = _Image({})
    for i, tar in enumerate(layers):
        img.layer(tar, compress=compress, annotations=BASE if i == base else None, level=1)
    img.labels = dict(labels or {})
    manifest = img.manifest()
    if config is not None:
        doc = json.loads(manifest)
        img.blobs.pop(doc["config"]["digest"])
        img.blobs[sha256(config)] = config
        doc["config"].update(digest=sha256(config), size=len(config))
        manifest = _canonical(doc)
    return BuiltPackage(layout=Path("."), tag=tag, manifest_digest=sha256(manifest),
                        manifest=manifest, media_type=OCI_MANIFEST, blobs=dict(img.blobs),
                        package_yaml=package_yaml, base_layer_digest=None,
                        runtime_layer_digest=None)


def gzip_bomb_layer(inflated: int, package: bytes, chunk: int = 64 * 1024 * 1024) -> bytes:
    """A gzip layer that inflates to about ``inflated`` bytes: one tar member of zeros (as
    concatenated gzip members of one compressed block, so building it is cheap) and then a
    ``package.yaml`` the reader never reaches."""
    pad = max(inflated - 2048, chunk)
    pad -= pad % 512
    head = tar_header(b"padding", size=pad)
    zeros = gzip.compress(b"\x00" * chunk, compresslevel=1, mtime=0)
    n, rest = divmod(pad, chunk)
    members = [gz(head), *([zeros] * n)]
    if rest:
        members.append(gz(b"\x00" * rest))
    members.append(gz(raw_tar((tar_header(b"package.yaml", size=len(package)), package))))
    return b"".join(members)
