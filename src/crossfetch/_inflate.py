"""The gzip inflater for layer streams: ISA-L (``isal``) when importable, else stdlib zlib.

Both produce the same bytes (inflate is exact); ISA-L takes about a third of zlib's CPU time on
a 105 MB ``package.yaml`` (bench/inflate.py, docs/benchmarks.md). Only decompression uses it:
ISA-L's deflate output differs from zlib's, so ``crossfetch build`` keeps zlib and its digests.
"""

from __future__ import annotations

from typing import Protocol, cast


class Inflater(Protocol):
    """The part of ``zlib.Decompress`` the stream reader uses."""

    @property
    def eof(self) -> bool: ...
    @property
    def unused_data(self) -> bytes: ...
    @property
    def unconsumed_tail(self) -> bytes: ...
    def decompress(self, data: bytes, max_length: int = 0, /) -> bytes: ...


try:
    from isal import isal_zlib as _impl

    NAME = "isal"
    # isal's stubs type ``error`` as an instance; at run time it is the IsalError class.
    errors: tuple[type[Exception], ...] = (cast("type[Exception]", _impl.error),)
except ImportError:  # no wheel for this platform: the stdlib is exact, only slower
    import zlib as _impl  # type: ignore[no-redef]

    NAME = "zlib"
    errors = (cast("type[Exception]", _impl.error),)


def gzip_inflater() -> Inflater:
    """A streaming decompressor for one gzip member (``wbits=31``: header and CRC checked)."""
    return _impl.decompressobj(31)
