"""Tar headers that lie about sizes and names, on the base-layer and flatten paths.

Every case ends in a PackageError (or a LimitExceeded cap) naming the layer: never a hang
(a negative pax size used to spin forever), never a traceback. pytest-timeout bounds each case.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterator
from pathlib import Path

import pytest

from crossfetch.errors import LimitExceeded, PackageError
from crossfetch.oci import Descriptor
from crossfetch.xpkg import read_flattened, read_package_yaml
from crossfetch.xpkg.tar import TarReader
from tests.support.packages import gz, lying_tar, raw_tar, tar_header
from tests.support.testdata import TESTDATA

META = (TESTDATA / "function-auto-ready/crossplane.yaml").read_bytes()
GZ_TYPE = "application/vnd.oci.image.layer.v1.tar+gzip"

LIES: dict[str, dict[str, object]] = {
    "pax size negative": {"pax": {"size": "-5"}},
    "pax size non-numeric": {"pax": {"size": "abc"}},
    "pax size with a sign": {"pax": {"size": "+5"}},
    "pax size with underscores": {"pax": {"size": "1_0"}},
    "pax size in full-width digits": {"pax": {"size": "\uff11\uff10"}},
    "pax size huge": {"pax": {"size": str(10**30)}},
    "pax size beyond the stream": {"pax": {"size": str(len(META) + 4096)}},
    "header size beyond the stream": {"size": len(META) + 100_000},
    "header size huge (base-256)": {"size": b"\x80" + b"\xff" * 11},
    "header size negative (base-256)": {"size": b"\xff" * 12},
    "header size non-numeric": {"size": b"12a45\x00"},
    "header size with underscores": {"size": b"1_0\x00"},
}


def digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def chunks(blob: bytes, size: int = 509) -> Iterator[bytes]:
    for i in range(0, len(blob), size):
        yield blob[i:i + size]


def errors() -> tuple[type[Exception], ...]:
    return (PackageError, LimitExceeded)


@pytest.mark.timeout(20)
@pytest.mark.parametrize("compress", [True, False], ids=["gzip", "plain"])
@pytest.mark.parametrize("lie", list(LIES), ids=list(LIES))
def test_lying_size_on_the_base_layer_path(lie: str, compress: bool) -> None:
    blob = lying_tar(META, **LIES[lie])  # type: ignore[arg-type]
    blob = gz(blob) if compress else blob
    with pytest.raises(errors()) as e:
        read_package_yaml(chunks(blob), digest(blob), io.BytesIO(), expected_size=len(blob))
    assert digest(blob) in str(e.value) or "tar" in str(e.value)


@pytest.mark.timeout(20)
@pytest.mark.parametrize("lie", list(LIES), ids=list(LIES))
def test_lying_size_on_the_flatten_path(lie: str, tmp_path: Path) -> None:
    blob = gz(lying_tar(META, **LIES[lie]))  # type: ignore[arg-type]
    layer = Descriptor(GZ_TYPE, digest(blob), len(blob))
    with pytest.raises(errors()):
        read_flattened([(layer, chunks(blob))], io.BytesIO(), tmp_dir=tmp_path)
    assert list(tmp_path.iterdir()) == []  # no candidate file left behind


def test_pax_size_can_legitimately_shrink_a_member() -> None:
    """A true pax size wins over the header's, as in POSIX: the reader follows it."""
    blob = lying_tar(META, size=0, pax={"size": str(len(META))})
    sink = io.BytesIO()
    pkg = read_package_yaml(chunks(blob), digest(blob), sink, expected_size=len(blob))
    assert sink.getvalue() == META and pkg.kind == "Function"


@pytest.mark.parametrize("record", [b"-5 size=1\n", b"5x size=1\n", b"99 size=1\n",
                                    b"0 size=1\n", b"\xd9\xa1 a=b\n", b"nospace",
                                    b"12 novalue\n"])
def test_malformed_pax_records_are_invalid_layers(record: bytes) -> None:
    blob = raw_tar((tar_header(b"pax", size=len(record), typeflag=b"x"), record),
                   (tar_header(b"package.yaml", size=len(META)), META))
    with pytest.raises(PackageError, match="not a valid tar"):
        list(TarReader(iter([blob])))


def test_gnu_long_name_larger_than_the_cap_is_refused() -> None:
    head = tar_header(b"././@LongLink", size=2 * 1024 * 1024, typeflag=b"L")
    with pytest.raises(PackageError, match="long-name record"):
        list(TarReader(iter([head + b"a" * 4096])))


def test_gnu_long_name_names_the_package() -> None:
    name = b"package.yaml\x00"
    blob = raw_tar((tar_header(b"././@LongLink", size=len(name), typeflag=b"L"), name),
                   (tar_header(b"something-else", size=len(META)), META))
    sink = io.BytesIO()
    read_package_yaml(chunks(blob), digest(blob), sink, expected_size=len(blob))
    assert sink.getvalue() == META


def test_a_gnu_long_name_with_traversal_never_matches() -> None:
    name = b"../package.yaml\x00"
    blob = raw_tar((tar_header(b"././@LongLink", size=len(name), typeflag=b"L"), name),
                   (tar_header(b"x", size=len(META)), META))
    with pytest.raises(PackageError, match=r"holds no package\.yaml"):
        read_package_yaml(chunks(blob), digest(blob), io.BytesIO(), expected_size=len(blob))
