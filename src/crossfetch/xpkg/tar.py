"""A pull-based tar reader over an iterator of byte chunks: nothing is extracted or buffered.

Handles ustar prefixes, pax (``path``, ``linkpath``, ``size``, GNU sparse names) and GNU long
names. Member data is handed out in the chunks it arrived in, so reading a 100 MB member
costs no copies; data the consumer does not read is skipped.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import NamedTuple

from ..errors import PackageError

BLOCK = 512
MAX_META = 1024 * 1024  # pax records and GNU long names are held in memory: cap them
REGULAR = frozenset({b"0", b"\x00", b"7"})
HEADER_ONLY = frozenset({b"1", b"2", b"3", b"4", b"5", b"6"})  # no data blocks, whatever size says
TYPE_NAMES = {b"0": "file", b"\x00": "file", b"7": "file", b"1": "hardlink", b"2": "symlink",
              b"3": "char device", b"4": "block device", b"5": "directory", b"6": "fifo",
              b"S": "GNU sparse file"}


class TarEntry(NamedTuple):
    name: str
    type: bytes
    size: int
    linkname: str = ""
    sparse: bool = False

    @property
    def is_regular(self) -> bool:
        return self.type in REGULAR and not self.sparse

    @property
    def type_name(self) -> str:
        if self.sparse:
            return "sparse file"
        return TYPE_NAMES.get(self.type, f"type {self.type!r} entry")


def _bad(what: str) -> PackageError:
    return PackageError(f"layer is not a valid tar archive: {what}", cause="invalid-layer",
                        fix="rebuild the package with `crossplane xpkg build`")


_OCTAL = re.compile(rb"[0-7]+")
_DECIMAL = re.compile(r"[0-9]+")  # ASCII only: int() takes "+5", "5_0", full-width


def _number(field: bytes) -> int:
    """A numeric header field: octal text (NUL/space padded) or GNU base-256."""
    if field[:1] and field[0] & 0x80:  # GNU base-256, two's complement when 0xff
        value = int.from_bytes(field[1:], "big")
        return value - (1 << (8 * len(field) - 8)) if field[0] == 0xFF else value
    text = field.split(b"\x00", 1)[0].strip(b" ")
    if not text:
        return 0
    if not _OCTAL.fullmatch(text):
        raise _bad(f"bad numeric field {field!r}")
    return int(text, 8)


def _size(value: int | str, what: str) -> int:
    """A member size from a header or a pax record: a non-negative whole number."""
    if isinstance(value, str):
        if not _DECIMAL.fullmatch(value):
            raise _bad(f"{what} size {value[:40]!r} is not a whole number")
        value = int(value)
    if value < 0:
        raise _bad(f"{what} size {value} is negative")
    return value


def _pax_records(data: bytes) -> dict[str, str]:
    out: dict[str, str] = {}
    pos = 0
    while pos < len(data):
        if data[pos:pos + 1] == b"\x00":
            break
        sp = data.find(b" ", pos)
        if sp < 0:
            raise _bad("malformed pax record")
        if not data[pos:sp].isdigit():  # bytes.isdigit is ASCII-only
            raise _bad("malformed pax record length")
        length = int(data[pos:sp])
        record = data[sp + 1:pos + length]
        if length <= 0 or not record.endswith(b"\n") or b"=" not in record:
            raise _bad("malformed pax record")
        key, _, value = record[:-1].partition(b"=")
        out[key.decode("utf-8", "replace")] = value.decode("utf-8", "surrogateescape")
        pos += length
    return out


class ChunkReader:
    """Exact reads and pass-through streaming over an iterator of ``bytes`` chunks."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._it = chunks
        self._buf = b""
        self._pos = 0

    def _fill(self) -> bool:
        for chunk in self._it:
            if chunk:
                self._buf, self._pos = chunk, 0
                return True
        return False

    def read(self, n: int) -> bytes:
        """Up to ``n`` bytes; fewer only at the end of the stream."""
        parts: list[bytes] = []
        while n > 0:
            if self._pos >= len(self._buf) and not self._fill():
                break
            take = self._buf[self._pos:self._pos + n]
            self._pos += len(take)
            n -= len(take)
            parts.append(take)
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def stream(self, n: int) -> Iterator[bytes]:
        """Yield exactly ``n`` bytes in pieces (whole chunks when possible, no copy)."""
        if n < 0:  # a negative count would never reach 0: refuse instead of spinning
            raise _bad(f"negative length {n}")
        while n > 0:
            if self._pos >= len(self._buf) and not self._fill():
                raise _bad("archive ends in the middle of a member")
            avail = len(self._buf) - self._pos
            if self._pos == 0 and avail <= n:
                piece = self._buf
            else:
                piece = self._buf[self._pos:self._pos + n]
            self._pos += len(piece)
            n -= len(piece)
            yield piece

    def skip(self, n: int) -> None:
        for _ in self.stream(n):
            pass


class TarReader:
    """Iterate a tar stream's entries; read the current entry's data with :meth:`data`."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._r = ChunkReader(chunks)
        self._pending = 0  # unread data + padding of the current entry
        self._padding = 0
        self._done = False

    def _finish_entry(self) -> None:
        if self._pending or self._padding:
            self._r.skip(self._pending + self._padding)
            self._pending = self._padding = 0

    def data(self) -> Iterator[bytes]:
        """The current entry's data, in chunks. Call at most once per entry."""
        for piece in self._r.stream(self._pending):
            self._pending -= len(piece)
            yield piece

    def _header(self) -> bytes | None:
        block = self._r.read(BLOCK)
        if not block:
            return None
        if len(block) < BLOCK:
            raise _bad("archive ends inside a header")
        if block.count(0) == BLOCK:
            return None  # end-of-archive marker; trailing blocks are irrelevant
        stored = _number(block[148:156])
        actual = sum(block[:148]) + 8 * 32 + sum(block[156:])
        if stored != actual:
            raise _bad("header checksum mismatch")
        return block

    def _read_meta(self, size: int) -> bytes:
        if size > MAX_META:
            raise _bad(f"pax or long-name record of {size} bytes")
        data = self._r.read(size)
        if len(data) < size:
            raise _bad("archive ends inside a pax record")
        self._r.skip(-size % BLOCK)
        return data

    def next(self) -> TarEntry | None:
        """The next entry (skipping what was not read of the previous one), or ``None``."""
        if self._done:
            return None
        self._finish_entry()
        pax: dict[str, str] = {}
        long_name: str | None = None
        long_link: str | None = None
        while True:
            block = self._header()
            if block is None:
                self._done = True
                return None
            typ = block[156:157]
            size = _size(_number(block[124:136]), "member")
            if typ in (b"x", b"g", b"L", b"K"):
                data = self._read_meta(size)
                if typ == b"x":
                    pax.update(_pax_records(data))
                elif typ == b"L":
                    long_name = data.split(b"\x00", 1)[0].decode("utf-8", "surrogateescape")
                elif typ == b"K":
                    long_link = data.split(b"\x00", 1)[0].decode("utf-8", "surrogateescape")
                continue  # global pax headers ("g") carry nothing a reader of names needs
            break
        name_b = block[:100].split(b"\x00", 1)[0]
        if block[257:263] == b"ustar\x00":  # POSIX ustar: name may have a prefix
            prefix = block[345:500].split(b"\x00", 1)[0]
            if prefix:
                name_b = prefix + b"/" + name_b
        name = name_b.decode("utf-8", "surrogateescape")
        linkname = block[157:257].split(b"\x00", 1)[0].decode("utf-8", "surrogateescape")
        name = pax.get("GNU.sparse.name") or pax.get("path") or long_name or name
        linkname = pax.get("linkpath") or long_link or linkname
        if "size" in pax:
            size = _size(pax["size"], "pax")
        sparse = typ == b"S" or any(k.startswith("GNU.sparse.") for k in pax)
        if typ == b"S" and block[482]:
            # Old GNU sparse with extension headers: skip them to reach the data.
            while True:
                ext = self._r.read(BLOCK)
                if len(ext) < BLOCK:
                    raise _bad("archive ends inside a sparse header")
                if not ext[504]:
                    break
        data_size = 0 if typ in HEADER_ONLY else size
        self._pending = data_size
        self._padding = -data_size % BLOCK
        return TarEntry(name, typ, data_size, linkname, sparse)

    def __iter__(self) -> Iterator[TarEntry]:
        while (entry := self.next()) is not None:
            yield entry
