"""The layer inflater: ISA-L when installed, stdlib zlib otherwise, the same bytes either way."""

from __future__ import annotations

import gzip
import hashlib
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from crossfetch import _inflate
from crossfetch.errors import PackageError
from tests.unit.test_xpkg_stream import PACKAGE, gz, read, tar


def corrupt_deflate() -> bytes:
    """A gzip member whose header is fine but whose deflate data is not."""
    blob = bytearray(gz(tar(("package.yaml", PACKAGE))))
    blob[10:20] = b"\xff" * 10  # the first deflate block header: an invalid block type
    return bytes(blob)


def test_isal_is_the_inflater_when_installed() -> None:
    pytest.importorskip("isal")  # a runtime dependency: every supported platform has a wheel
    assert _inflate.NAME == "isal"


def test_corrupt_deflate_is_one_package_error_whatever_the_inflater() -> None:
    # ISA-L raises its own error class, not zlib.error: it must still become PackageError.
    with pytest.raises(PackageError) as e:
        read(corrupt_deflate())
    assert e.value.cause == "invalid-layer"


PROBE = textwrap.dedent("""
    import sys
    sys.modules["isal"] = None  # as on a platform without a wheel
    import hashlib
    from crossfetch import _inflate
    from crossfetch.errors import PackageError
    from tests.unit.test_xpkg_stream import read
    blob = open(sys.argv[1], "rb").read()
    print(_inflate.NAME, hashlib.sha256(read(blob)[1]).hexdigest())
    try:
        read(open(sys.argv[2], "rb").read())
    except PackageError as e:
        print(e.cause)
""")


def test_zlib_fallback_reads_the_same_bytes(tmp_path: Path) -> None:
    raw = tar(("a.bin", os.urandom(300_000)), ("package.yaml", PACKAGE))
    blob = gz(raw[:200_000]) + gzip.compress(raw[200_000:], 1, mtime=0)  # multi-member, two levels
    good, bad = tmp_path / "good", tmp_path / "bad"
    good.write_bytes(blob)
    bad.write_bytes(corrupt_deflate())
    run = subprocess.run([sys.executable, "-c", PROBE, str(good), str(bad)],
                         capture_output=True, text=True, timeout=60,
                         cwd=Path(__file__).resolve().parents[2])
    assert run.returncode == 0, run.stderr
    out = run.stdout.split()
    assert out == ["zlib", hashlib.sha256(read(blob)[1]).hexdigest(), "invalid-layer"]
