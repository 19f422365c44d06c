"""Fuzz the tar reader and the layer reader: random bytes, and real tars (ustar, pax, GNU)
with bytes overwritten in their headers (sizes, types, checksums recomputed or not). Only
PackageError and LimitExceeded may escape, and every read ends (no spin: pytest-timeout)."""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import tarfile

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crossfetch.errors import DigestMismatch, LimitExceeded, PackageError
from crossfetch.xpkg import read_package_yaml
from crossfetch.xpkg.tar import TarReader
from tests.support.packages import gz, pax_record, raw_tar, tar_header

EXAMPLES = int(os.environ.get("CROSSFETCH_FUZZ_EXAMPLES", "0")) or 600  # per test, per run
DOCUMENTED = (PackageError, LimitExceeded)
META = (b"apiVersion: meta.pkg.crossplane.io/v1\nkind: Function\nmetadata: {name: f}\n")


def real_tar(fmt: int) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as t:
        for name, data in (("dir/" * 30 + "file.txt", b"x" * 700), ("package.yaml", META)):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
        link = tarfile.TarInfo("l")
        link.type, link.linkname = tarfile.SYMTYPE, "package.yaml"
        t.addfile(link)
    return buf.getvalue()


SEEDS = [real_tar(tarfile.USTAR_FORMAT), real_tar(tarfile.PAX_FORMAT),
         real_tar(tarfile.GNU_FORMAT),
         raw_tar((tar_header(b"p", size=len(pax_record("size", "5")), typeflag=b"x"),
                  pax_record("size", "5")), (tar_header(b"package.yaml", size=len(META)), META))]
FIELDS = [(124, 12), (148, 8), (156, 1), (0, 100), (157, 100), (257, 8), (345, 155), (482, 1)]


def fix_checksum(block: bytearray) -> None:
    block[148:156] = b" " * 8
    block[148:156] = b"%06o\x00 " % sum(block)


PAX_KEYS = st.sampled_from(["size", "size", "size", "path", "linkpath", "GNU.sparse.name"])
PAX_VALUES = st.one_of(st.sampled_from(["-5", "+5", "1_0", "\uff15", " 5", str(10**30), "0",
                                        "../package.yaml", "package.yaml", ""]),
                       st.text(max_size=12))


@st.composite
def pax_tar(draw: st.DrawFn) -> bytes:
    """A pax header with drawn records, then a package.yaml member (sizes may lie)."""
    records = b"".join(pax_record(draw(PAX_KEYS), draw(PAX_VALUES))
                       for _ in range(draw(st.integers(1, 3))))
    size = draw(st.one_of(st.just(len(META)), st.integers(0, 4096)))
    kind = draw(st.sampled_from([b"x", b"x", b"x", b"g", b"L", b"K"]))
    return raw_tar((tar_header(b"pax", size=len(records), typeflag=kind), records),
                   (tar_header(b"package.yaml", size=size), META))


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.one_of(st.sampled_from(SEEDS), pax_tar())))
    for _ in range(draw(st.integers(1, 4))):
        block = draw(st.integers(0, len(data) // 512 - 1)) * 512
        start, length = draw(st.sampled_from(FIELDS))
        value = draw(st.one_of(
            st.binary(min_size=1, max_size=length),
            st.sampled_from([b"-5", b"77777777777", b"\x80" + b"\xff" * 11, b"\xff" * 12,
                             b"1_0", b"+5", b" 5", b"x", b"2", b"1", b"S", b"L", b"x", b"g",
                             b"5 size=-5\n", b"\xd9\xa1"])))
        data[block + start:block + start + len(value[:length])] = value[:length]
        if draw(st.booleans()):
            chunk = data[block:block + 512]
            fix_checksum(chunk)
            data[block:block + 512] = chunk
    if draw(st.booleans()):
        data = data[:draw(st.integers(0, len(data)))]
    return bytes(data)


SETTINGS = settings(max_examples=EXAMPLES, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


def read_all(blob: bytes, piece: int) -> None:
    reader = TarReader(iter([blob[i:i + piece] for i in range(0, len(blob), piece)]))
    for entry in reader:
        assert entry.size >= 0
        for chunk in reader.data():
            assert chunk


@pytest.mark.timeout(600)
@SETTINGS
@given(blob=st.one_of(st.binary(max_size=2048), mutated(), pax_tar()),
       piece=st.integers(1, 1500))
def test_tar_reader_only_raises_documented_errors(blob: bytes, piece: int) -> None:
    with contextlib.suppress(DOCUMENTED):
        read_all(blob, piece)


@pytest.mark.timeout(600)
@SETTINGS
@given(blob=st.one_of(mutated(), pax_tar()), compress=st.booleans())
def test_layer_reader_only_raises_documented_errors(blob: bytes, compress: bool) -> None:
    blob = gz(blob) if compress else blob
    digest = "sha256:" + hashlib.sha256(blob).hexdigest()
    try:
        read_package_yaml(iter([blob]), digest, io.BytesIO(), expected_size=len(blob))
    except (*DOCUMENTED, DigestMismatch):
        pass
