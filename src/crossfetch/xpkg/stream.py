"""Read ``package.yaml`` straight out of layer blobs as they download: verify, inflate, untar.

Nothing is extracted to disk: the blob's bytes are hashed as they pass, gzip is sniffed from
the first bytes (media types lie: plain tars under a gzip type exist) and inflated in bounded
steps, the tar is parsed incrementally and only ``package.yaml`` is written to the caller's
sink while :class:`~crossfetch.xpkg.meta.PackageScanner` reads it. When the digest does not
match, :class:`DigestMismatch` is raised after the whole blob passed, and whatever was written
to the sink must be discarded by the caller.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Iterable, Iterator, Sequence
from itertools import chain
from typing import BinaryIO

from .._inflate import errors as _inflate_errors
from .._inflate import gzip_inflater
from ..errors import DigestMismatch, LimitExceeded, PackageError
from ..oci import MAX_LAYERS, Descriptor, check_digest
from .meta import PACKAGE_CAP, Package, PackageScanner
from .tar import TarEntry, TarReader

LAYER_CAP = 1024 * 1024 * 1024
"""Default cap on decompressed tar bytes read (per base layer, or in total when flattening)."""
PACKAGE_FILE = "package.yaml"
WHITEOUTS = frozenset({".wh.package.yaml", ".wh..wh..opq"})
_OUT_CHUNK = 1024 * 1024  # inflate output per step: bounds memory whatever the ratio
_THREAD_MIN = 4 * 1024 * 1024  # below this a writer thread costs more than it saves
# From this size a child process parses a share of the documents (xpkg/parallel.py): its
# start-up (~0.1 s of the other CPU) is then well repaid.
_PARALLEL_MIN = 16 * 1024 * 1024
_GZIP = b"\x1f\x8b"
_ZSTD = b"\x28\xb5\x2f\xfd"
_XZ = b"\xfd7zXZ\x00"


class _Blob:
    """The raw blob stream: hashed and counted as it passes."""

    def __init__(self, chunks: Iterable[bytes], digest: str, size: int | None) -> None:
        self.digest = check_digest(digest)
        self._hash = hashlib.new(digest.split(":", 1)[0])
        self._it = iter(chunks)
        self.size = size
        self.read = 0
        self.broken = False  # the source itself failed: do not touch it again

    def __iter__(self) -> Iterator[bytes]:
        while True:
            try:
                chunk = next(self._it)
            except StopIteration:
                return
            except BaseException:
                self.broken = True
                raise
            self._hash.update(chunk)
            self.read += len(chunk)
            if self.size is not None and self.read > self.size:
                self.broken = True
                raise DigestMismatch(
                    f"blob {self.digest} is longer than its descriptor's {self.size} bytes",
                    cause="size-mismatch",
                    fix="the registry or a proxy altered the content; retry, and if it "
                    "persists re-push the package")
            yield chunk

    def drain(self) -> None:
        for _ in self:
            pass

    def verify(self) -> None:
        actual = f"{self.digest.split(':', 1)[0]}:{self._hash.hexdigest()}"
        if actual != self.digest or (self.size is not None and self.read != self.size):
            raise DigestMismatch(
                f"layer {self.digest} does not match its digest: got {actual} "
                f"({self.read} bytes); discard what was read",
                fix="the registry or a proxy altered the content; retry, and if it persists "
                "re-push the package")


class _Budget:
    """Decompressed bytes allowed, shared by the layers of one read."""

    def __init__(self, cap: int) -> None:
        self.left = cap
        self.cap = cap

    def spend(self, n: int) -> None:
        self.left -= n
        if self.left < 0:
            raise LimitExceeded(
                f"layer data decompresses to more than {self.cap} bytes", cause="gzip-bomb",
                fix="a package's base layer holds only package.yaml; rebuild the package, "
                "or raise the decompression cap if this layer is legitimately large")


def _gunzip(chunks: Iterator[bytes], budget: _Budget) -> Iterator[bytes]:
    d = gzip_inflater()
    try:
        for chunk in chunks:
            data = chunk
            if d.eof:  # a multi-member gzip continues, anything else is trailing junk
                if data[:2] != _GZIP:
                    return
                d = gzip_inflater()
            while True:
                out = d.decompress(data, _OUT_CHUNK)
                if out:
                    budget.spend(len(out))
                    yield out
                if d.eof:
                    data = d.unused_data
                    if not data:
                        break
                    if data[:2] != _GZIP:
                        return
                    d = gzip_inflater()
                    continue
                data = d.unconsumed_tail
                # A full output step may leave output pending inside zlib: ask again.
                if not data and len(out) < _OUT_CHUNK:
                    break
    except _inflate_errors as e:
        raise PackageError(f"layer looks gzip-compressed but does not inflate: {e}",
                           cause="invalid-layer",
                           fix="the layer is corrupt; re-push the package") from None


def _layer_stream(blob: Iterable[bytes], budget: _Budget) -> Iterator[bytes]:
    """The tar bytes of a layer: gzip is inflated, a plain tar passes through."""
    it = iter(blob)
    head = b""
    for chunk in it:
        head += chunk
        if len(head) >= 6:
            break
    rest = chain((head,), it)
    if head[:2] == _GZIP:
        yield from _gunzip(rest, budget)
        return
    if head[:4] == _ZSTD or head[:6] == _XZ:
        kind = "zstd" if head[:4] == _ZSTD else "xz"
        raise PackageError(f"layer is {kind}-compressed; crossfetch reads gzip and plain tar",
                           cause="unsupported-compression",
                           fix="rebuild the package with `crossplane xpkg build` (gzip layers)")
    for chunk in rest:
        budget.spend(len(chunk))
        yield chunk


def normalise(name: str) -> str:
    """A member name as compared with ``package.yaml``: leading ``./`` and trailing ``/`` go.

    Absolute names and ``..`` components are kept, so they never match.
    """
    while name.startswith("./"):
        name = name[2:]
    return name.rstrip("/") if name != "/" else name


class _Writer:
    """Runs ``sink.write`` + ``scanner.feed`` on a worker thread.

    Inflating (zlib drops the GIL) then overlaps hashing, scanning and writing, which nearly
    doubles throughput on big packages. The queue is bounded, so memory stays flat.
    """

    def __init__(self, sink: BinaryIO, scanner: PackageScanner) -> None:
        self._sink = sink
        self._scanner = scanner
        import queue

        self._q: queue.Queue[bytes | None] = queue.Queue(maxsize=8)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="xpkg-writer", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (piece := self._q.get()) is not None:
            if self._error is None:  # after a failure keep taking, so put() never blocks
                try:
                    self._sink.write(piece)
                    self._scanner.feed(piece)
                except BaseException as e:
                    self._error = e

    def put(self, piece: bytes) -> None:
        if self._error is not None:
            raise self._error
        self._q.put(piece)

    def close(self) -> BaseException | None:
        """Wait for the worker; the error it hit, if any."""
        self._q.put(None)
        self._thread.join()
        return self._error


def _share(scanner: PackageScanner, size: int) -> None:
    """Give the scanner of a ``package.yaml`` of ``size`` bytes a helper process when that
    pays (:data:`_PARALLEL_MIN`)."""
    if size >= _PARALLEL_MIN and scanner.helper is None:
        from .parallel import start

        scanner.helper = start()


def _copy(pieces: Iterator[bytes], size: int, sink: BinaryIO, scanner: PackageScanner) -> None:
    if size < _THREAD_MIN:
        for piece in pieces:
            sink.write(piece)
            scanner.feed(piece)
        return
    _share(scanner, size)
    writer = _Writer(sink, scanner)
    try:
        for piece in pieces:
            writer.put(piece)
    finally:
        error = writer.close()
    if error is not None:
        raise error


def _check_member(entry: TarEntry, digest: str, cap: int) -> None:
    if not entry.is_regular:
        target = f" -> {entry.linkname}" if entry.linkname else ""
        raise PackageError(
            f"layer {digest}: package.yaml is a {entry.type_name}{target}, not a regular file",
            cause="unsafe-package-yaml",
            fix="package.yaml must be a regular file; rebuild the package")
    if entry.size > cap:
        raise LimitExceeded(
            f"layer {digest}: package.yaml is {entry.size} bytes, above the {cap} byte cap",
            cause="package-too-large",
            fix="Crossplane refuses package streams over 200 MiB; split the package")


def _finish(blob: _Blob, error: BaseException | None) -> None:
    """Hash the rest of the blob and verify it; a mismatch explains an earlier parse error."""
    if blob.broken:
        return
    blob.drain()
    if error is None:
        blob.verify()
        return
    try:
        blob.verify()
    except DigestMismatch as mismatch:
        raise mismatch from error


def read_package_yaml(chunks: Iterable[bytes], expected_digest: str, sink: BinaryIO, *,
                      expected_size: int | None = None,
                      max_package_bytes: int = PACKAGE_CAP,
                      max_decompressed: int = LAYER_CAP) -> Package:
    """Copy ``package.yaml`` from one layer blob into ``sink`` and parse it.

    ``chunks`` is the raw blob as downloaded. The first regular ``package.yaml`` member is
    taken (as Crossplane does); the rest of the blob is hashed but not inflated.
    """
    blob = _Blob(chunks, expected_digest, expected_size)
    scanner: PackageScanner | None = None
    try:
        try:
            tar = TarReader(_layer_stream(blob, _Budget(max_decompressed)))
            for entry in tar:
                if normalise(entry.name) != PACKAGE_FILE:
                    continue
                _check_member(entry, blob.digest, max_package_bytes)
                scanner = PackageScanner(max_bytes=max_package_bytes)
                _copy(tar.data(), entry.size, sink, scanner)
                break
        except (PackageError, LimitExceeded) as e:
            _finish(blob, e)
            raise
        _finish(blob, None)
        if scanner is None:
            raise PackageError(f"layer {blob.digest} holds no package.yaml",
                               cause="no-package-yaml",
                               fix="the layer marked io.crossplane.xpkg: base must contain "
                               "package.yaml; rebuild the package with `crossplane xpkg build`")
        return scanner.finish()
    finally:
        if scanner is not None:  # a helper process never outlives the read
            scanner.close()


class FlattenResult:
    """The package found by flattening, and the layer (and its index) that provided it."""

    __slots__ = ("index", "layer", "package")

    def __init__(self, package: Package, layer: Descriptor, index: int) -> None:
        self.package, self.layer, self.index = package, layer, index


def _scan_layer(desc: Descriptor, chunks: Iterable[bytes], budget: _Budget, tmp_dir: str,
                cap: int) -> tuple[str | None, bool]:
    """(temp file holding the layer's package.yaml or None, whether it whites one out)."""
    blob = _Blob(chunks, desc.digest, desc.size)
    path: str | None = None
    whiteout = False
    try:
        tar = TarReader(_layer_stream(blob, budget))
        for entry in tar:
            name = normalise(entry.name)
            if name in WHITEOUTS:
                whiteout = True
            elif name == PACKAGE_FILE and path is None:  # first one in a layer wins
                _check_member(entry, blob.digest, cap)
                import tempfile

                fd, path = tempfile.mkstemp(prefix="package-", suffix=".yaml", dir=tmp_dir)
                with os.fdopen(fd, "wb") as f:
                    for piece in tar.data():
                        f.write(piece)
        _finish(blob, None)
    except BaseException as e:
        if path is not None:
            os.unlink(path)
        if isinstance(e, PackageError | LimitExceeded):
            _finish(blob, e)
        raise
    return path, whiteout


def read_flattened(layers: Sequence[tuple[Descriptor, Iterable[bytes]]], sink: BinaryIO, *,
                   tmp_dir: str | os.PathLike[str],
                   max_package_bytes: int = PACKAGE_CAP,
                   max_decompressed: int = LAYER_CAP) -> FlattenResult:
    """Find ``package.yaml`` in the union of ``layers`` (no base layer is marked).

    Later layers override earlier ones; an OCI whiteout (``.wh.package.yaml``, or the opaque
    ``.wh..wh..opq`` at the root) deletes a lower layer's file. Candidates are buffered in
    ``tmp_dir``; the winner is copied to ``sink``. ``max_decompressed`` caps all layers together.
    """
    if len(layers) > MAX_LAYERS:
        raise LimitExceeded(f"image has {len(layers)} layers, above the cap of {MAX_LAYERS}")
    budget = _Budget(max_decompressed)
    best: tuple[str, int] | None = None
    try:
        for i, (desc, chunks) in enumerate(layers):
            path, whiteout = _scan_layer(desc, chunks, budget, os.fspath(tmp_dir),
                                         max_package_bytes)
            if path is not None or whiteout:
                if best is not None:
                    os.unlink(best[0])
                best = None if path is None else (path, i)
        if best is None:
            raise PackageError(
                f"no package.yaml in any of the image's {len(layers)} layers",
                cause="no-package-yaml",
                fix="this image is not a Crossplane package; build it with "
                "`crossplane xpkg build`")
        scanner = PackageScanner(max_bytes=max_package_bytes)
        try:
            _share(scanner, os.path.getsize(best[0]))
            with open(best[0], "rb") as f:
                while block := f.read(_OUT_CHUNK):
                    sink.write(block)
                    scanner.feed(block)
            return FlattenResult(scanner.finish(), layers[best[1]][0], best[1])
        finally:
            scanner.close()
    finally:
        if best is not None and os.path.exists(best[0]):
            os.unlink(best[0])
