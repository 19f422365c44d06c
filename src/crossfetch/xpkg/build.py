"""``crossfetch build``: a package file exactly like ``crossplane xpkg build`` writes.

Upstream behaviour reproduced (crossplane/cli ``cmd/crossplane/xpkg/build.go`` at 0fd8cd8,
crossplane-runtime v2 ``pkg/xpkg/build.go``, ``layer.go``/``layers.go``, ``name.go`` and
``pkg/parser/fsreader.go``; go-containerregistry ``pkg/v1/tarball/write.go`` and ``mutate``):

- **Inputs.** Every ``.yaml``/``.yml`` file under the package root, in Go ``Walk`` order (byte
  order per directory, depth first), skipping directories, empty files, ``--ignore`` globs
  (matched against ``root/GLOB``) and any path containing the examples root. The examples root is
  read the same way; its files are joined as ``fsreader.go`` joins them (``\\n...\\n`` then
  ``\\n---\\n`` after each file) and stored unchanged.
- **package.yaml** is ``---\\n`` + meta + ``---\\n`` + each object + ``---\\n``, every object
  re-encoded as Kubernetes' serializer writes it (:mod:`.goyaml`), after the zero values its Go
  type adds (``metadata.creationTimestamp: null``; ``spec: {}`` on a meta object; a CRD's
  ``status``).
- **Layers.** One tar entry each (``package.yaml``; ``.up/examples.yaml``), a USTAR header with
  only name, mode 0644 and size (Go's ``archive/tar``: no timestamps, no owner names, no
  padding to a 10 KiB record), gzip at BestSpeed with a zero mtime (ggcr's default).
- **Config.** ggcr's ``ConfigFile`` field order; ``created`` and each history entry's
  ``created`` are the zero time ``0001-01-01T00:00:00Z``; labels
  ``io.crossplane.xpkg:sha256:<compressed layer digest>`` = ``base`` / ``upbound``.
- **Archive.** ``docker save`` layout as ``tarball.Write(nil, img, f)`` writes it: the config as
  ``sha256:<hex>``, each layer as ``<hex>.tar.gz``, then ``manifest.json`` with ``"RepoTags":
  null``; default name ``FriendlyID(metadata.name, digest hex)`` + ``.xpkg`` in the package root.

Identical inputs give identical bytes. The compressed layers differ from the Go CLI's (Go's
deflate is not zlib's), so digests differ while every diffID (the uncompressed layer) matches.
"""

from __future__ import annotations

import contextlib
import fnmatch
import gzip
import hashlib
import io
import json
import os
import shutil
import tarfile
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO, Any

import yaml

from ..errors import CrossfetchError, PackageError, UsageError
from ..oci import DOCKER_CONFIG, DOCKER_MANIFEST
from . import goyaml
from .layers import ANNOTATION, BASE, LABEL_PREFIX
from .lint import Doc, LintError, is_meta, lint

DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
STREAM_FILE = "package.yaml"
EXAMPLES_FILE = ".up/examples.yaml"
EXAMPLES = "upbound"
ZERO_TIME = "0001-01-01T00:00:00Z"
FILE_MODE = 0o644
CHUNK = 1024 * 1024
MAX_SOURCE_FILE = 200 * 1024 * 1024  # Crossplane reads at most 200 MiB of package stream
_GZIP_MAGIC = b"\x1f\x8b"
# ggcr v1.ConfigFile / v1.Config JSON field order (pkg/v1/config.go).
_CONFIG_FILE_ORDER = ("architecture", "author", "container", "created", "docker_version",
                      "history", "os", "rootfs", "config", "os.version", "variant",
                      "os.features")
_CONFIG_ORDER = ("AttachStderr", "AttachStdin", "AttachStdout", "Cmd", "Healthcheck",
                 "Domainname", "Entrypoint", "Env", "Hostname", "Image", "Labels", "OnBuild",
                 "OpenStdin", "StdinOnce", "Tty", "User", "Volumes", "WorkingDir",
                 "ExposedPorts", "ArgsEscaped", "NetworkDisabled", "MacAddress", "StopSignal",
                 "Shell")


class BuildError(CrossfetchError):
    """The package cannot be built from these inputs."""

    default_cause = "build-failed"


@dataclass(frozen=True)
class Layer:
    """A layer as it goes into the archive: gzip file, digests, sizes, label value."""

    path: Path
    digest: str
    diff_id: str
    size: int
    label: str | None = None


@dataclass
class BuildResult:
    """What a build wrote."""

    path: Path
    digest: str
    """The image (manifest) digest; its first 12 hex digits are in the default file name."""
    kind: str
    name: str
    config_digest: str
    layers: list[Layer] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"path": str(self.path), "digest": self.digest, "kind": self.kind,
                "name": self.name, "config": self.config_digest, "size": self.path.stat().st_size,
                "layers": [{"digest": x.digest, "diffID": x.diff_id, "size": x.size,
                            **({"annotation": x.label} if x.label else {})}
                           for x in self.layers]}


# --- inputs ---------------------------------------------------------------------------------


def walk(root: Path, *, ignore: tuple[str, ...] = (), skip_containing: str | None = None
         ) -> list[Path]:
    """The files ``crossplane xpkg build`` reads under ``root``, in its order (fsreader.go's
    ``afero.Walk`` with ``SkipDirs``, ``SkipNotYAML``, ``SkipEmpty``, ``SkipPath`` and
    ``SkipContains``). Symbolic links are not followed into directories."""
    patterns = [os.path.join(str(root), g) for g in ignore]
    out: list[Path] = []

    def visit(path: str) -> None:
        try:
            st = os.lstat(path)
        except OSError as e:
            raise BuildError(f"cannot read {path}: {e.strerror}",
                             fix="check the path and its permissions") from None
        if os.path.isdir(path) and not os.path.islink(path):
            try:
                names = sorted(os.listdir(path))
            except OSError as e:
                raise BuildError(f"cannot list {path}: {e.strerror}",
                                 fix="check the directory's permissions") from None
            for name in names:
                visit(os.path.join(path, name))
            return
        if os.path.splitext(path)[1] not in (".yaml", ".yml") or st.st_size == 0:
            return
        if any(_go_match(p, path) for p in patterns):
            return
        if skip_containing and skip_containing in path:
            return
        out.append(Path(path))

    visit(str(root))
    return out


def _go_match(pattern: str, path: str) -> bool:
    """``filepath.Match``: ``*`` and ``?`` never cross a ``/`` (fnmatch's do)."""
    pp, sp = pattern.split("/"), path.split("/")
    return len(pp) == len(sp) and all(fnmatch.fnmatchcase(s, p) for p, s in zip(pp, sp,
                                                                               strict=True))


def _read(path: Path) -> bytes:
    try:
        if path.stat().st_size > MAX_SOURCE_FILE:
            raise BuildError(f"{path} is larger than {MAX_SOURCE_FILE} bytes, the most "
                             "Crossplane reads of a package", cause="too-large",
                             fix="split the file or keep generated data out of the package root")
        return path.read_bytes()
    except OSError as e:
        raise BuildError(f"cannot read {path}: {e.strerror}",
                         fix="check the file's permissions") from None


def read_docs(files: list[Path]) -> list[Doc]:
    """Every non-empty YAML document of ``files`` with the line it starts on."""
    from .meta import check_aliases

    docs: list[Doc] = []
    for f in files:
        data = _read(f)
        try:
            text = data.decode("utf-8")
            loader = goyaml.loader()(text)
            try:
                nodes = []
                while loader.check_node():  # syntax errors surface here, with their line
                    node = loader.get_node()
                    if node is not None:
                        nodes.append(node)
                check_aliases(text)  # before anything is expanded
                for node in nodes:
                    obj = loader.construct_document(node)
                    if obj is not None:
                        docs.append(Doc(obj, f, node.start_mark.line + 1))
            finally:
                loader.dispose()
        except UnicodeDecodeError:
            raise LintError(f"{f}: not UTF-8 text", cause="invalid-yaml",
                            fix="save the file as UTF-8") from None
        except yaml.MarkedYAMLError as e:
            line = (e.problem_mark or e.context_mark)
            at = f"{f}:{line.line + 1}" if line else str(f)
            raise LintError(f"{at}: invalid YAML: {e.problem or e}", cause="invalid-yaml",
                            fix="fix the YAML syntax at that line") from None
        except (yaml.YAMLError, ValueError, TypeError) as e:
            raise LintError(f"{f}: invalid YAML: {e}", cause="invalid-yaml",
                            fix="fix the YAML in this file") from None
        except PackageError as e:
            e.message = f"{f}: {e.message}"
            raise
    return docs


def _typed_defaults(obj: dict[str, Any], meta: bool) -> dict[str, Any]:
    """The zero values encoding the object's Go type adds (a field without ``omitempty``, or a
    struct, which ``omitempty`` never omits): ``metav1.ObjectMeta.CreationTimestamp`` (null);
    on a meta object ``spec``, a Provider's ``spec.controller``, ``spec.crossplane.version`` and
    each ``dependsOn[].version`` (crossplane ``apis/pkg/meta/v1`` ``meta.go``,
    ``provider_types.go``, ``function_types.go``); a CRD's ``status`` (``apiextensions/v1``
    ``CustomResourceDefinitionStatus``)."""
    out = dict(obj)
    md = dict(out.get("metadata") or {})
    md.setdefault("creationTimestamp", None)
    out["metadata"] = md
    if meta:
        spec = out.get("spec")
        spec = dict(spec) if isinstance(spec, dict) else ({} if spec is None else spec)
        if isinstance(spec, dict):
            if out.get("kind") == "Provider":
                spec.setdefault("controller", {})
            if isinstance(spec.get("crossplane"), dict):
                spec["crossplane"] = {"version": "", **spec["crossplane"]}
            if isinstance(spec.get("dependsOn"), list):
                spec["dependsOn"] = [{**d, "version": d.get("version", "")}
                                     if isinstance(d, dict) else d for d in spec["dependsOn"]]
        out["spec"] = spec
    elif out.get("kind") == "CustomResourceDefinition" and str(
            out.get("apiVersion", "")).startswith("apiextensions.k8s.io/"):
        out.setdefault("status", {"acceptedNames": {"kind": "", "plural": ""},
                                  "conditions": None, "storedVersions": None})
    return out


def package_stream(meta: Doc, objects: list[Doc]) -> bytes:
    """``package.yaml`` as crossplane-runtime's ``encode`` writes it."""
    parts = ["---\n", goyaml.dump(_typed_defaults(meta.obj, True)), "---\n"]
    for o in objects:
        parts += [goyaml.dump(_typed_defaults(o.obj, False)), "---\n"]
    return "".join(parts).encode("utf-8")


def examples_stream(files: list[Path]) -> bytes:
    """The examples layer content: each file, then ``\\n...\\n`` and ``\\n---\\n``
    (``FsReadCloser.Read``), parsed once for validity as upstream does."""
    buf = io.BytesIO()
    for f in files:
        data = _read(f)
        buf.write(data)
        buf.write(b"\n...\n\n---\n")
    out = buf.getvalue()
    read_docs(files)  # the examples parser only needs valid YAML objects
    return out


# --- layers and archive ---------------------------------------------------------------------


def tar_header(name: str, size: int, mode: int = FILE_MODE) -> bytes:
    """A USTAR header with only name, mode and size set, byte for byte as Go's ``archive/tar``
    writes it (numeric fields zero-filled octal, device numbers included; Python's ``tarfile``
    leaves those empty for regular files)."""
    raw = name.encode("utf-8")
    if len(raw) > 100 or size >= 8**11:
        raise BuildError(f"tar entry {name!r} ({size} bytes) does not fit a USTAR header",
                         fix="keep entry names under 100 bytes and sizes under 8 GiB")
    octal = "{:0%do}\0"
    hdr = bytearray(512)
    hdr[0:len(raw)] = raw
    for off, width, value in ((100, 8, mode), (108, 8, 0), (116, 8, 0), (124, 12, size),
                              (136, 12, 0), (329, 8, 0), (337, 8, 0)):
        hdr[off:off + width] = (octal % (width - 1)).format(value).encode()
    hdr[148:156] = b" " * 8
    hdr[156:157] = b"0"
    hdr[257:265] = b"ustar\x0000"
    hdr[148:156] = b"%06o\0 " % sum(hdr)
    return bytes(hdr)


def _pad(n: int) -> bytes:
    return b"\0" * (-n % 512)


def single_file_tar(name: str, data: bytes) -> bytes:
    """One-entry tar: header, data, padding and the two zero blocks (no record padding)."""
    return tar_header(name, len(data)) + data + _pad(len(data)) + b"\0" * 1024


class _Hashing:
    """A write-only file that hashes and counts what passes through to ``out``."""

    def __init__(self, out: IO[bytes]) -> None:
        self.out, self.h, self.n = out, hashlib.sha256(), 0

    def write(self, data: Any) -> int:
        self.h.update(data)
        self.n += len(data)
        return self.out.write(data)

    def flush(self) -> None:
        self.out.flush()


def gzip_to(src: Iterator[bytes], dest: Path) -> tuple[str, str, int]:
    """gzip ``src`` into ``dest`` at BestSpeed with a zero mtime and no file name (the header
    ggcr writes); return (compressed digest, diffID, compressed size)."""
    diff = hashlib.sha256()
    with dest.open("wb") as raw:
        out = _Hashing(raw)
        with gzip.GzipFile(filename="", mode="wb", compresslevel=1, fileobj=out, mtime=0) as gz:
            for chunk in src:
                diff.update(chunk)
                gz.write(chunk)
    return f"sha256:{out.h.hexdigest()}", f"sha256:{diff.hexdigest()}", out.n


def go_json(obj: Any) -> bytes:
    """``encoding/json`` output for plain data: compact, HTML characters escaped."""
    text = json.dumps(obj, separators=(",", ":"), ensure_ascii=False)
    for ch, esc in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"),
                    ("\u2028", "\\u2028"), ("\u2029", "\\u2029")):
        text = text.replace(ch, esc)
    return text.encode("utf-8")


def _ordered(d: dict[str, Any], order: tuple[str, ...]) -> dict[str, Any]:
    return {**{k: d[k] for k in order if k in d}, **{k: v for k, v in d.items() if k not in order}}


def config_json(base: dict[str, Any] | None, layers: list[Layer], n_new: int) -> bytes:
    """The image config: the base's (or an empty one), the new layers' diffIDs and zero-time
    history appended, their labels merged (``mutate.AppendLayers`` + ``mutate.Config``)."""
    cfg: dict[str, Any] = dict(base or {})
    cfg.setdefault("architecture", "")
    cfg.setdefault("created", ZERO_TIME)
    cfg.setdefault("os", "")
    history = list(cfg.get("history") or [])
    history += [{"created": ZERO_TIME} for _ in range(n_new)]
    cfg["history"] = history
    cfg["rootfs"] = {"type": "layers", "diff_ids": [x.diff_id for x in layers]}
    inner = dict(cfg.get("config") or {})
    labels = dict(inner.get("Labels") or {})
    for x in layers:
        if x.label:
            labels[f"{LABEL_PREFIX}{x.digest}"] = x.label
    inner["Labels"] = dict(sorted(labels.items()))
    cfg["config"] = _ordered(inner, _CONFIG_ORDER)
    return go_json(_ordered(cfg, _CONFIG_FILE_ORDER))


def manifest_json(config: bytes, layers: list[Layer]) -> bytes:
    """The Docker v2 manifest ggcr computes for the built image (its digest names the file)."""
    m = {"schemaVersion": 2, "mediaType": DOCKER_MANIFEST,
         "config": {"mediaType": DOCKER_CONFIG, "size": len(config),
                    "digest": "sha256:" + hashlib.sha256(config).hexdigest()},
         "layers": [{"mediaType": DOCKER_LAYER, "size": x.size, "digest": x.digest}
                    for x in layers]}
    return go_json(m)


def to_dns_label(s: str) -> str:
    """crossplane-runtime ``name.go`` ``ToDNSLabel``: keep ``[a-z0-9]``, turn ``./:-`` into
    ``-`` (not at the ends or at index 62), stop after index 62, trim ``-``."""
    out = []
    for i, ch in enumerate(s):
        if "a" <= ch <= "z" or "0" <= ch <= "9":
            out.append(ch)
        if ch in "./:-" and i not in (0, 62, len(s) - 1):
            out.append("-")
        if i == 62:
            break
    return "".join(out).strip("-")


def friendly_id(name: str, hex_digest: str) -> str:
    """``FriendlyID``: the name cut to 50, a dash, 12 hex digits of the digest."""
    return to_dns_label(f"{name[:50]}-{hex_digest[:12]}")


def write_archive(dest: Path, config: bytes, layers: list[Layer]) -> None:
    """The ``docker save`` archive, written to a temporary file beside ``dest`` and renamed."""
    cfg_name = "sha256:" + hashlib.sha256(config).hexdigest()
    names = [x.digest.split(":", 1)[1] + ".tar.gz" for x in layers]
    manifest = go_json([{"Config": cfg_name, "RepoTags": None, "Layers": names}])
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".xpkg-", dir=dest.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(tar_header(cfg_name, len(config)) + config + _pad(len(config)))
            for x, name in zip(layers, names, strict=True):
                out.write(tar_header(name, x.size))
                with x.path.open("rb") as f:
                    shutil.copyfileobj(f, out, CHUNK)
                out.write(_pad(x.size))
            out.write(tar_header("manifest.json", len(manifest)) + manifest + _pad(len(manifest)))
            out.write(b"\0" * 1024)
        os.chmod(tmp, 0o644)
        os.replace(tmp, dest)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


# --- runtime image --------------------------------------------------------------------------


class _Source:
    """Read members of a ``docker save`` tarball or an OCI layout (directory or tarball)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.tar: tarfile.TarFile | None = None
        if path.is_dir():
            return
        try:
            self.tar = tarfile.open(path, "r:")  # noqa: SIM115 - closed by close()
        except (OSError, tarfile.TarError) as e:
            raise BuildError(f"cannot read runtime image tarball {path}: {e}",
                             fix="give a `docker save` tarball or an OCI layout") from None

    def has(self, name: str) -> bool:
        if self.tar is None:
            return (self.path / name).is_file()
        try:
            self.tar.getmember(name)
            return True
        except KeyError:
            return False

    def open(self, name: str) -> IO[bytes]:
        name = name.lstrip("./") if name.startswith("./") else name
        if ".." in Path(name).parts or name.startswith("/"):
            raise BuildError(f"runtime image {self.path} names {name!r}, outside the image",
                             cause="unsafe-path", fix="rebuild the runtime image tarball")
        try:
            if self.tar is None:
                return (self.path / name).open("rb")
            f = self.tar.extractfile(name)
        except (KeyError, OSError, tarfile.TarError) as e:
            raise BuildError(f"runtime image {self.path} has no {name}: {e}",
                             fix="give a complete `docker save` tarball or OCI layout") from None
        if f is None:
            raise BuildError(f"runtime image {self.path}: {name} is not a file",
                             fix="give a complete `docker save` tarball or OCI layout")
        return f

    def json(self, name: str) -> Any:
        with self.open(name) as f:
            data = f.read(4 * 1024 * 1024 + 1)
        if len(data) > 4 * 1024 * 1024:
            raise BuildError(f"runtime image {self.path}: {name} is above 4 MiB",
                             cause="too-large", fix="give a real image tarball")
        try:
            return json.loads(data)
        except ValueError as e:
            raise BuildError(f"runtime image {self.path}: {name} is not JSON: {e}",
                             fix="give a `docker save` tarball or OCI layout") from None

    def close(self) -> None:
        if self.tar is not None:
            self.tar.close()


def _chunks(f: IO[bytes], first: bytes = b"") -> Iterator[bytes]:
    if first:
        yield first
    while chunk := f.read(CHUNK):
        yield chunk


def _blob_path(digest: str) -> str:
    algo, _, hexd = digest.partition(":")
    return f"blobs/{algo}/{hexd}"


def runtime_base(path: Path, workdir: Path) -> tuple[dict[str, Any], list[Layer]]:
    """Config and layers (gzip, in ``workdir``) of the runtime image to embed, read the way
    ggcr's ``tarball.ImageFromPath`` reads it: compressed layers are kept, uncompressed ones
    gzipped at BestSpeed."""
    src = _Source(path)
    try:
        if src.has("manifest.json"):
            m = src.json("manifest.json")
            if not isinstance(m, list) or len(m) != 1 or not isinstance(m[0], dict):
                count = len(m) if isinstance(m, list) else 0
                raise BuildError(f"runtime image tarball {path} holds {count} images, not one",
                                 fix="docker save exactly one image")
            config = src.json(str(m[0].get("Config", "")))
            paths = [str(x) for x in m[0].get("Layers") or []]
        elif src.has("index.json"):
            idx = src.json("index.json")
            descs = idx.get("manifests") if isinstance(idx, dict) else None
            if not descs:
                raise BuildError(f"OCI layout {path} has no manifest in index.json",
                                 fix="give an OCI layout with one image")
            man = src.json(_blob_path(str(descs[0].get("digest", ""))))
            if "manifests" in man:  # a nested index: take its first image
                man = src.json(_blob_path(str(man["manifests"][0]["digest"])))
            config = src.json(_blob_path(str(man["config"]["digest"])))
            paths = [_blob_path(str(d["digest"])) for d in man.get("layers") or []]
        else:
            raise BuildError(f"{path} is neither a `docker save` tarball (manifest.json) nor "
                             "an OCI layout (index.json)", cause="not-an-image",
                             fix="docker save IMAGE -o runtime.tar, or skopeo copy to oci:DIR")
        if not isinstance(config, dict):
            raise BuildError(f"runtime image {path}: its config is not a JSON object",
                             fix="give a real image")
        diff_ids = list((config.get("rootfs") or {}).get("diff_ids") or [])
        layers: list[Layer] = []
        for i, p in enumerate(paths):
            dest = workdir / f"base-{i}.tar.gz"
            with src.open(p) as f:
                head = f.read(2)
                if head == _GZIP_MAGIC:
                    digest, n, h = "", 0, hashlib.sha256()
                    with dest.open("wb") as out:
                        for chunk in _chunks(f, head):
                            h.update(chunk)
                            n += len(chunk)
                            out.write(chunk)
                    digest = f"sha256:{h.hexdigest()}"
                    diff = diff_ids[i] if i < len(diff_ids) else ""
                    layers.append(Layer(dest, digest, str(diff), n))
                else:
                    digest, diff, n = gzip_to(_chunks(f, head), dest)
                    layers.append(Layer(dest, digest, diff, n))
        return config, layers
    finally:
        src.close()


# --- the build ------------------------------------------------------------------------------


def build(package_root: str | Path = ".", *, examples_root: str | Path | None = None,
          ignore: tuple[str, ...] = (), output: str | Path | None = None,
          runtime_image: str | Path | None = None) -> BuildResult:
    """Build a package file from ``package_root`` (see the module docstring)."""
    root = Path(package_root).absolute()
    if not root.is_dir():
        raise UsageError(f"package root {root} is not a directory",
                         fix="pass -f/--package-root DIR, the directory holding crossplane.yaml")
    ex = Path(examples_root if examples_root is not None else "./examples").absolute()
    files = walk(root, ignore=ignore, skip_containing=str(ex))
    docs = read_docs(files)
    meta, objects = lint(docs, root)
    kind = meta.gvk[1]
    name = str(meta.obj["metadata"]["name"])
    pkg = package_stream(meta, objects)
    with tempfile.TemporaryDirectory(prefix="crossfetch-build-") as tmpd:
        work = Path(tmpd)
        base_cfg: dict[str, Any] | None = None
        layers: list[Layer] = []
        if runtime_image is not None:  # upstream embeds it whatever the package kind
            base_cfg, layers = runtime_base(Path(runtime_image), work)
        new: list[tuple[str, bytes, str]] = [(STREAM_FILE, pkg, BASE)]
        if ex.is_dir():
            ex_files = walk(ex, ignore=ignore)
            new.append((EXAMPLES_FILE, examples_stream(ex_files), EXAMPLES))
        for i, (fname, data, label) in enumerate(new):
            dest = work / f"pkg-{i}.tar.gz"
            tar = single_file_tar(fname, data)
            digest, diff, n = gzip_to(iter([tar]), dest)
            layers.append(Layer(dest, digest, diff, n, label))
        config = config_json(base_cfg, layers, len(new))
        manifest = manifest_json(config, layers)
        digest = "sha256:" + hashlib.sha256(manifest).hexdigest()
        if output is None:
            dest = root / (friendly_id(name, digest.split(":", 1)[1]) + ".xpkg")
        else:
            dest = Path(output)
        write_archive(dest, config, layers)
        stored = [replace(x, path=dest) for x in layers]  # now inside the archive
    return BuildResult(dest, digest, kind, name,
                       "sha256:" + hashlib.sha256(config).hexdigest(), stored)


__all__ = ["ANNOTATION", "BuildError", "BuildResult", "LintError", "build", "friendly_id",
           "is_meta", "walk"]
