"""``crossfetch push``: package files to a registry, as ``crossplane xpkg push`` writes them.

Upstream behaviour (crossplane/cli ``cmd/crossplane/xpkg/push.go`` at d29df87, crossplane-runtime
``pkg/xpkg/layers.go`` ``AnnotateLayers``, go-containerregistry ``remote.Write``):

- a package file is a ``docker save`` archive (``tarball.ImageFromPath``); pushed, it is a
  Docker v2 manifest whose layers carry the annotation ``io.crossplane.xpkg`` taken from the
  config labels ``io.crossplane.xpkg:<layer digest>`` (``base``, ``upbound``); the config is
  uploaded unchanged;
- one file goes to the tag; several are each pushed by digest, then an OCI image index goes to
  the tag, each entry's platform (architecture, os, os.version) copied from that image's config;
- ``-a key=value`` annotations go on each manifest, and on the index.

The distribution API: a blob already in the repository (``HEAD``) is skipped; with
``--mount-from`` a cross-repository mount is tried first; otherwise ``POST`` an upload and send
the blob in one ``PUT`` (monolithic) or in ``PATCH`` chunks (``--chunk-size``), streamed from
the file so memory stays flat. Requests go under the same policy and credentials as a pull,
with tokens asked for ``pull,push``; a registry that answers ``insufficient_scope`` gets one
retry with the wider scope (``transport/auth.py``). A push never goes to a mirror nor through a
``rewriteImage``: it goes to the reference as written, and says so when one would have applied.
"""

from __future__ import annotations

import functools
import hashlib
import json
import tarfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from .errors import FetchError, PolicyRefused, UsageError
from .oci import DOCKER_CONFIG, DOCKER_MANIFEST, OCI_INDEX, check_digest
from .policy.model import PUSH, Decision, Endpoint
from .reference import Reference
from .transport.connection import Body
from .xpkg.build import DOCKER_LAYER, go_json
from .xpkg.layers import ANNOTATION, LABEL_PREFIX

if TYPE_CHECKING:
    from .client import Client, Progress
    from .transport.connection import Auth, Response

CHUNK = 1024 * 1024
MAX_CONFIG = 4 * 1024 * 1024
_GZIP_MAGIC = b"\x1f\x8b"


@dataclass(frozen=True)
class ArchiveBlob:
    """A blob inside a package file: where it is and what it is."""

    digest: str
    size: int
    offset: int
    annotation: str | None = None


@dataclass
class PackageFile:
    """A ``docker save`` package archive, indexed (nothing but the config is read into memory)."""

    path: Path
    config: bytes
    config_digest: str
    layers: list[ArchiveBlob]

    @classmethod
    def open(cls, path: str | Path) -> PackageFile:
        """Index ``path``: its ``manifest.json``, config and gzip layers."""
        p = Path(path)
        try:
            with tarfile.open(p, "r:") as t:
                members = {m.name: m for m in t.getmembers()}
                entry = members.get("manifest.json")
                if entry is None or not entry.isfile():
                    raise UsageError(f"{p} is not a package file: it has no manifest.json",
                                     fix="build one with `crossfetch build` (or crossplane "
                                     "xpkg build)")
                manifest = json.loads(_read_member(t, entry, MAX_CONFIG, p))
                if not isinstance(manifest, list) or len(manifest) != 1:
                    count = len(manifest) if isinstance(manifest, list) else 0
                    raise UsageError(f"{p} holds {count} images; a package file holds one",
                                     fix="push one image per package file")
                image = manifest[0]
                cfg_member = members.get(str(image.get("Config")))
                if cfg_member is None:
                    raise UsageError(f"{p}: manifest.json names config {image.get('Config')!r}, "
                                     "which is not in the archive", fix="rebuild the package")
                config = _read_member(t, cfg_member, MAX_CONFIG, p)
                layer_names = [str(x) for x in image.get("Layers") or []]
                refs = [members.get(n) for n in layer_names]
        except (OSError, tarfile.TarError) as e:
            raise UsageError(f"cannot read package file {p}: {e}",
                             fix="give a .xpkg written by crossfetch build or crossplane xpkg "
                             "build") from None
        except (ValueError, AttributeError) as e:
            raise UsageError(f"{p}: manifest.json is not valid: {e}",
                             fix="rebuild the package") from None
        cfg_digest = "sha256:" + hashlib.sha256(config).hexdigest()
        try:
            labels = json.loads(config).get("config", {}).get("Labels") or {}
        except (ValueError, AttributeError):
            raise UsageError(f"{p}: the image config is not a JSON object",
                             fix="rebuild the package") from None
        layers: list[ArchiveBlob] = []
        for name, m in zip(layer_names, refs, strict=True):
            if m is None or not m.isfile():
                raise UsageError(f"{p}: layer {name} is not in the archive",
                                 fix="rebuild the package")
            digest = _layer_digest(p, name, m)
            label = labels.get(f"{LABEL_PREFIX}{digest}")
            layers.append(ArchiveBlob(digest, m.size, m.offset_data,
                                      str(label) if label is not None else None))
        return cls(p, config, cfg_digest, layers)

    @property
    def platform(self) -> dict[str, str]:
        """``architecture``, ``os`` and ``os.version`` from the config (push.go copies these)."""
        cfg = json.loads(self.config)
        out = {"architecture": str(cfg.get("architecture") or ""), "os": str(cfg.get("os") or "")}
        if cfg.get("os.version"):
            out["os.version"] = str(cfg["os.version"])
        return out

    def manifest(self, annotations: dict[str, str] | None = None) -> bytes:
        """The manifest ``AnnotateLayers`` + ``remote.Write`` produce (ggcr field order)."""
        layers = []
        for x in self.layers:
            d: dict[str, Any] = {"mediaType": DOCKER_LAYER, "size": x.size, "digest": x.digest}
            if x.annotation is not None:
                d["annotations"] = {ANNOTATION: x.annotation}
            layers.append(d)
        m: dict[str, Any] = {
            "schemaVersion": 2, "mediaType": DOCKER_MANIFEST,
            "config": {"mediaType": DOCKER_CONFIG, "size": len(self.config),
                       "digest": self.config_digest},
            "layers": layers}
        if annotations:
            m["annotations"] = dict(sorted(annotations.items()))
        return go_json(m)

    def read(self, blob: ArchiveBlob, start: int = 0, end: int | None = None,
             progress: Callable[[int], None] | None = None) -> Iterator[bytes]:
        """Stream ``blob[start:end]`` from the archive."""
        stop = blob.size if end is None else end
        with self.path.open("rb") as f:
            f.seek(blob.offset + start)
            left = stop - start
            while left > 0:
                chunk = f.read(min(CHUNK, left))
                if not chunk:
                    raise FetchError(f"{self.path} ended inside layer {blob.digest}",
                                     fix="the file is truncated: build it again")
                left -= len(chunk)
                if progress:
                    progress(len(chunk))
                yield chunk


def _read_member(t: tarfile.TarFile, m: tarfile.TarInfo, cap: int, p: Path) -> bytes:
    if m.size > cap:
        raise UsageError(f"{p}: {m.name} is {m.size} bytes, above the {cap} byte cap",
                         fix="this is not a package file")
    f = t.extractfile(m)
    if f is None:
        raise UsageError(f"{p}: {m.name} is not a file", fix="rebuild the package")
    return f.read()


def _layer_digest(p: Path, name: str, m: tarfile.TarInfo) -> str:
    """A layer's digest: from its ``<hex>.tar.gz`` name (the registry verifies it on upload),
    else hashed; a layer must be gzip (ggcr would compress it, and so change its digest)."""
    with p.open("rb") as f:
        f.seek(m.offset_data)
        if f.read(2) != _GZIP_MAGIC:
            raise UsageError(f"{p}: layer {name} is not gzip-compressed",
                             fix="rebuild the package with `crossfetch build` (its layers are "
                             "gzip, as crossplane xpkg build writes them)")
        stem = Path(name).name.removesuffix(".tar.gz")
        if len(stem) == 64 and all(c in "0123456789abcdef" for c in stem):
            return "sha256:" + stem
        f.seek(m.offset_data)
        h, left = hashlib.sha256(), m.size
        while left > 0:
            chunk = f.read(min(CHUNK, left))
            if not chunk:
                break
            h.update(chunk)
            left -= len(chunk)
        return "sha256:" + h.hexdigest()


def parse_annotations(values: list[str]) -> dict[str, str]:
    """``key=value`` pairs (push.go ``parseAnnotations``)."""
    out: dict[str, str] = {}
    for v in values:
        key, sep, value = v.partition("=")
        if not sep or not key:
            raise UsageError(f"annotation {v!r} is not key=value",
                             fix="write -a org.opencontainers.image.source=https://…")
        out[key] = value
    return out


def parse_destination(ref: str, client: Client) -> Reference:
    """A fully qualified tag (``name.StrictValidation``): registry, repository and a tag."""
    parsed = client.parse(ref)
    tail = ref.rsplit("/", 1)[-1]
    if parsed.digest or ":" not in tail:
        raise UsageError(f"push destination {ref!r} is not a fully qualified tag",
                         cause="not-a-tag",
                         fix="write registry/repository:tag, e.g. "
                         "reg.local:5000/fns/function-foo:v0.1.0")
    return parsed


@dataclass
class PushedImage:
    path: str
    digest: str
    size: int
    platform: dict[str, str]


@dataclass
class PushResult:
    """What a push did."""

    reference: str
    digest: str
    media_type: str
    endpoint: str
    images: list[PushedImage] = field(default_factory=list)
    uploaded: int = 0
    skipped: int = 0
    mounted: int = 0
    bytes_sent: int = 0
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"reference": self.reference, "digest": self.digest, "mediaType": self.media_type,
                "endpoint": self.endpoint,
                "images": [{"path": i.path, "digest": i.digest, "size": i.size,
                            "platform": i.platform} for i in self.images],
                "blobs": {"uploaded": self.uploaded, "skipped": self.skipped,
                          "mounted": self.mounted, "bytesSent": self.bytes_sent},
                "notes": self.notes}


class Pusher:
    """Pushes package files to one repository under ``client``'s policy."""

    def __init__(self, client: Client, ref: str, *, chunk_size: int = 0,
                 mount_from: tuple[str, ...] = (), progress: Progress | None = None) -> None:
        self.client = client
        self.ref = parse_destination(ref, client)
        self.chunk_size = chunk_size
        self.mount_from = mount_from
        self.progress = progress
        self.notes: list[str] = []
        self.decision = self._decide()
        self.endpoint = self._upstream()
        self.auth: Auth | None = client.auth_factory(self.decision)(self.endpoint, "pull,push")
        self.repo = self.ref.repository
        self.result = PushResult(str(self.ref), "", "", self.endpoint.url,
                                 notes=self.notes)

    # --- policy ---

    def _decide(self) -> Decision:
        policy = self.client.policy
        as_pulled = policy.decide(self.ref)
        if as_pulled.blocked is not None:
            raise PolicyRefused(f"{self.ref} is blocked by {as_pulled.blocked}", cause="blocked",
                                fix=f"remove or narrow the blocking rule in "
                                f"{as_pulled.blocked.name}")
        if as_pulled.rewrite_source is not None and as_pulled.resolved != self.ref:
            self.notes.append(
                f"{as_pulled.rewrite_source} rewrites pulls of this reference to "
                f"{as_pulled.resolved}; a push goes to {self.ref} as written")
        return policy.decide(self.ref, rewrite=False)

    def _upstream(self) -> Endpoint:
        eps = self.decision.endpoints
        for ep in eps:
            if ep.role != "upstream":
                self.notes.append(f"mirror {ep.url} ({ep.source}) serves pulls of "
                                  f"{self.ref.registry}; a push goes to the registry itself")
        upstream = eps[-1]
        if upstream.role != "upstream":
            raise PolicyRefused(f"no upstream endpoint for {self.ref.registry}",
                                cause="no-endpoint", fix="check hosts.toml's server setting")
        if not upstream.can(PUSH):
            raise PolicyRefused(
                f"{upstream.url} does not have the push capability ({upstream.source})",
                cause="no-push-capability", url=upstream.url,
                fix="add \"push\" to the host's capabilities in hosts.toml")
        return upstream

    # --- HTTP plumbing ---

    def _base(self) -> str:
        return self.client.transport.effective_url(self.endpoint)

    def _api(self, tail: str) -> str:
        return self.endpoint.repo_path(self.repo, tail)

    def _send(self, method: str, tail: str, **kw: Any) -> Response:
        return self.client.transport.send(self.endpoint, method, self._api(tail),
                                          auth=self.auth, **kw)

    def _send_url(self, method: str, url: str, **kw: Any) -> Response:
        return self.client.transport.request(self.endpoint, method, url, auth=self.auth, **kw)

    def _location(self, resp: Response) -> str:
        """The upload URL from ``Location``; it must stay on the registry's own origin (our
        credentials go nowhere else)."""
        loc = resp.headers.get("location")
        if not loc:
            raise FetchError(f"{resp.request.url} answered {resp.status_code} without a "
                             "Location for the upload", url=str(resp.request.url),
                             fix="the registry does not follow the distribution API")
        url = str(resp.request.url.join(loc))
        own, got = urlsplit(self._base()), urlsplit(url)
        if (own.scheme, own.netloc) != (got.scheme, got.netloc):
            raise PolicyRefused(f"the registry sent the upload to {got.scheme}://{got.netloc}, "
                                f"another origin than {own.scheme}://{own.netloc}",
                                url=str(resp.request.url), cause="upload-elsewhere",
                                fix="crossfetch sends uploads and credentials only to the "
                                "registry itself; check the registry's http.host setting")
        return url

    def _error(self, resp: Response, what: str) -> FetchError:
        from .registry import status_error

        return status_error(resp, what,
                            retry_after_max=self.client.transport.retry.retry_after_max)

    # --- blobs ---

    def blob_exists(self, digest: str) -> bool:
        resp = self._send("HEAD", f"blobs/{digest}")
        if resp.status_code == 200:
            return True
        if resp.status_code == 404:
            return False
        raise self._error(resp, f"HEAD blob {digest[:19]}")

    def _start(self, digest: str) -> tuple[str | None, bool]:
        """An upload URL, or (None, True) when a cross-repository mount already did it."""
        for src in self.mount_from:
            if src == self.repo:
                continue
            q = urlencode({"mount": digest, "from": src})
            resp = self._send("POST", f"blobs/uploads/?{q}")
            if resp.status_code == 201:
                return None, True
            if resp.status_code == 202:  # not mountable: the registry opened a normal upload
                return self._location(resp), False
            raise self._error(resp, f"mount {digest[:19]} from {src}")
        resp = self._send("POST", "blobs/uploads/")
        if resp.status_code != 202:
            raise self._error(resp, "start a blob upload")
        return self._location(resp), False

    def upload(self, digest: str, size: int,
               opener: Callable[[int, int, Callable[[int], None] | None], Iterator[bytes]],
               what: str) -> str:
        """Upload one blob unless the repository has it; ``uploaded``, ``mounted`` or
        ``skipped``."""
        if self.blob_exists(digest):
            self.result.skipped += 1
            return "skipped"
        url, mounted = self._start(digest)
        if mounted:
            self.result.mounted += 1
            return "mounted"
        assert url is not None
        tick = self.progress.start(what, size) if self.progress else None
        if self.chunk_size and size > self.chunk_size:
            for start in range(0, size, self.chunk_size):
                end = min(size, start + self.chunk_size)
                body = Body(end - start, functools.partial(opener, start, end, tick))
                resp = self._send_url("PATCH", url, content=body, headers={
                    "Content-Type": "application/octet-stream",
                    "Content-Range": f"{start}-{end - 1}"})
                if resp.status_code != 202:
                    raise self._error(resp, f"upload chunk {start}-{end - 1} of {digest[:19]}")
                url = self._location(resp)
            body = Body(0, lambda: iter(()))
        else:
            body = Body(size, lambda: opener(0, size, tick))
        resp = self._send_url("PUT", _with_digest(url, digest), content=body,
                              headers={"Content-Type": "application/octet-stream"})
        if resp.status_code != 201:
            raise self._error(resp, f"upload blob {digest[:19]}")
        self.result.uploaded += 1
        self.result.bytes_sent += size
        return "uploaded"

    # --- manifests ---

    def put_manifest(self, ident: str, raw: bytes, media_type: str) -> str:
        digest = "sha256:" + hashlib.sha256(raw).hexdigest()
        resp = self._send("PUT", f"manifests/{ident}", content=raw,
                          headers={"Content-Type": media_type})
        if resp.status_code != 201:
            raise self._error(resp, f"PUT manifest {ident}")
        said = resp.headers.get("docker-content-digest")
        if said and said != digest:
            from .errors import DigestMismatch

            raise DigestMismatch(f"the registry stored the manifest as {said}, not {digest}",
                                 url=str(resp.request.url),
                                 fix="the registry or a proxy altered the manifest")
        return digest

    def push_file(self, pkg: PackageFile, ident: str | None,
                  annotations: dict[str, str]) -> PushedImage:
        """Blobs, then the manifest (to ``ident``; its digest when ``None``)."""
        name = pkg.path.name
        for i, blob in enumerate(pkg.layers):
            self.upload(blob.digest, blob.size, functools.partial(pkg.read, blob),
                        f"{name} layer {i + 1}/{len(pkg.layers)}")
        self.upload(pkg.config_digest, len(pkg.config),
                    lambda s, e, p: _slice(pkg.config, s, e, p), f"{name} config")
        raw = pkg.manifest(annotations)
        digest = "sha256:" + hashlib.sha256(raw).hexdigest()
        self.put_manifest(ident or digest, raw, DOCKER_MANIFEST)
        return PushedImage(str(pkg.path), digest, len(raw), pkg.platform)

    def push(self, files: list[Path], annotations: dict[str, str] | None = None) -> PushResult:
        """Push one file to the tag, or several by digest plus an index at the tag."""
        ann = annotations or {}
        pkgs = [PackageFile.open(f) for f in files]
        tag = self.ref.tag or "latest"
        try:
            if len(pkgs) == 1:
                img = self.push_file(pkgs[0], tag, ann)
                self.result.images.append(img)
                self.result.digest, self.result.media_type = img.digest, DOCKER_MANIFEST
                return self.result
            for pkg in pkgs:
                self.result.images.append(self.push_file(pkg, None, ann))
            plats = [json.dumps(i.platform, sort_keys=True) for i in self.result.images]
            if len(set(plats)) != len(plats):
                self.notes.append("two package files have the same platform "
                                  f"({', '.join(sorted(set(plats)))}); Crossplane picks "
                                  "linux/amd64 from an index, so build each with its own "
                                  "runtime image")
            index: dict[str, Any] = {
                "schemaVersion": 2, "mediaType": OCI_INDEX,
                "manifests": [{"mediaType": DOCKER_MANIFEST, "size": i.size, "digest": i.digest,
                               "platform": i.platform} for i in self.result.images]}
            if ann:
                index["annotations"] = dict(sorted(ann.items()))
            self.result.digest = self.put_manifest(tag, go_json(index), OCI_INDEX)
            self.result.media_type = OCI_INDEX
            return self.result
        finally:
            if self.progress:
                self.progress.finish()


def _slice(data: bytes, start: int, end: int,
           progress: Callable[[int], None] | None) -> Iterator[bytes]:
    if progress:
        progress(end - start)
    yield data[start:end]


def _with_digest(url: str, digest: str) -> str:
    parts = urlsplit(url)
    query = [*parse_qsl(parts.query, keep_blank_values=True), ("digest", check_digest(digest))]
    return urlunsplit(parts._replace(query=urlencode(query)))


def find_package_file(cwd: Path) -> Path:
    """The single ``.xpkg`` in ``cwd`` (push.go ``FindXpkgInDir``)."""
    found = sorted(p for p in cwd.glob("*.xpkg") if p.is_file())
    if len(found) != 1:
        raise UsageError(f"found {len(found)} .xpkg files in {cwd}, need exactly one"
                         + (f" ({', '.join(p.name for p in found)})" if found else ""),
                         cause="no-package-file",
                         fix="name the file(s) with -f/--package-files")
    return found[0]


def push(client: Client, ref: str, files: list[str | Path], *,
         annotations: dict[str, str] | None = None, chunk_size: int = 0,
         mount_from: tuple[str, ...] = ()) -> PushResult:
    """Push ``files`` to ``ref`` (a fully qualified tag) under ``client``'s policy."""
    pusher = Pusher(client, ref, chunk_size=chunk_size, mount_from=mount_from,
                    progress=client.progress)
    return pusher.push([Path(f) for f in files], annotations)


__all__ = ["PackageFile", "PushResult", "Pusher", "find_package_file",
           "parse_annotations", "push"]
