"""Writing ``package.yaml`` where the user said (``pull -o``), the way ``cp`` and ``curl -o`` do.

- ``-`` is standard output; a binary file object is written as is.
- A regular file (or a new one) is replaced atomically: a hidden ``.NAME.<pid>-<hex>`` file in
  the same directory, renamed over it once complete. It keeps the replaced file's permissions.
- A device (``/dev/null``), a FIFO or another non-regular file is written in place: it stays
  what it is.
- A symlink stays a symlink: its target is written, by the two rules above.

Every check that can fail (missing directory, a directory given, not writable) happens in
:func:`open_output`, before any download; errors name the path the user gave (exit 2). The
hidden file is locked by its writer, so a crash leftover is removed by the next write to the
same path once its writer is dead (see :func:`crossfetch.cache.owner_gone`).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import stat
import sys
from pathlib import Path
from typing import IO

from .errors import UsageError


class OutputError(UsageError):
    """``-o PATH`` cannot be written."""

    default_cause = "output"


class Output:
    """Where a pulled ``package.yaml`` goes; :meth:`write` it, or :meth:`abort`."""

    def write(self, src: Path) -> None:
        raise NotImplementedError

    def abort(self) -> None:
        """Drop what :func:`open_output` prepared (the pull failed)."""


class _Stream(Output):
    def __init__(self, stream: IO[bytes] | None) -> None:
        self.stream = stream

    def write(self, src: Path) -> None:
        if self.stream is None:  # stdout, looked up late (tests and callers swap it)
            sys.stdout.flush()
            copy_to(src, sys.stdout.buffer)
            sys.stdout.buffer.flush()
        else:
            copy_to(src, self.stream)


class _File(Output):
    def __init__(self, given: str) -> None:
        self.given = given
        path = Path(given)
        self.target = Path(os.path.realpath(path)) if path.is_symlink() else path
        self.shown = given if self.target == path else f"{given} (a symlink to {self.target})"
        self.tmp: Path | None = None
        self._fd = -1
        try:
            st: os.stat_result | None = os.stat(self.target)
        except FileNotFoundError:
            st = None
        except OSError as e:
            raise self._error(e) from None
        if st is not None and stat.S_ISDIR(st.st_mode):
            raise OutputError(f"-o {self.shown} is a directory",
                              fix=f"name a file in it, e.g. -o {Path(given) / 'package.yaml'}")
        if st is not None and stat.S_ISSOCK(st.st_mode):
            raise OutputError(f"-o {self.shown} is a socket, which cannot be written as a file",
                              fix="name a file, a FIFO or a device instead")
        self.in_place = st is not None and not stat.S_ISREG(st.st_mode)
        if self.in_place:
            if not os.access(self.target, os.W_OK):
                raise self._error(PermissionError(13, os.strerror(13)))
            return
        parent = self.target.parent
        if not parent.is_dir():
            raise OutputError(f"-o {self.shown}: directory {parent} does not exist",
                              fix=f"create it first (mkdir -p {parent}) or choose another path")
        if st is not None and not os.access(self.target, os.W_OK):
            raise self._error(PermissionError(13, os.strerror(13)))
        sweep_output_leftovers(self.target)
        self.tmp = parent / f".{self.target.name}.{os.getpid()}-{os.urandom(4).hex()}"
        try:
            self._fd = os.open(self.tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC,
                               0o666)
        except OSError as e:
            self.tmp = None
            raise self._error(e) from None
        fcntl.flock(self._fd, fcntl.LOCK_EX)  # so no other run's sweep takes it
        if st is not None:
            with contextlib.suppress(OSError):
                os.fchmod(self._fd, stat.S_IMODE(st.st_mode))

    def _error(self, e: OSError) -> OutputError:
        where = self.target if getattr(self, "in_place", False) else self.target.parent
        return OutputError(f"cannot write -o {self.shown}: {e.strerror or e}",
                           fix=f"choose a path you can write, or fix the permissions of {where}")

    def write(self, src: Path) -> None:
        try:
            if self.in_place:
                with open(self.target, "wb") as f:
                    copy_to(src, f)
                return
            assert self.tmp is not None
            with os.fdopen(os.dup(self._fd), "wb") as f:
                copy_to(src, f)
            os.replace(self.tmp, self.target)
            self.tmp = None
        except OSError as e:
            raise self._error(e) from None
        finally:
            self.abort()

    def abort(self) -> None:
        if self.tmp is not None:
            self.tmp.unlink(missing_ok=True)
            self.tmp = None
        fd, self._fd = self._fd, -1
        if fd >= 0:
            os.close(fd)

    def __del__(self) -> None:
        self.abort()


def open_output(output: str | Path | IO[bytes]) -> Output:
    """Check ``output`` (a path, ``-`` for stdout, or a binary file object) and prepare it."""
    if output == "-":
        return _Stream(None)
    if isinstance(output, str | Path):
        return _File(str(output))
    return _Stream(output)


def sweep_output_leftovers(target: Path) -> int:
    """Remove ``.NAME.<pid>-<hex>`` files beside ``target`` whose writer is dead."""
    from .cache import owner_gone

    pattern = re.compile(rf"^\.{re.escape(target.name)}\.(\d+)-[0-9a-f]{{8}}$")
    n = 0
    try:
        with os.scandir(target.parent) as it:
            names = [(e.name, m) for e in it if (m := pattern.match(e.name))]
    except OSError:
        return 0
    for name, m in names:
        path = target.parent / name
        if owner_gone(path, int(m.group(1))):
            try:
                path.unlink()
                n += 1
            except OSError:
                pass
    return n


def copy_to(src: Path, out: IO[bytes]) -> None:
    """Copy a file in the kernel where it can (``sendfile``), else in 1 MiB blocks."""
    with open(src, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        try:
            fileno = out.fileno()
        except (AttributeError, OSError, ValueError):
            fileno = -1
        if fileno >= 0 and hasattr(os, "sendfile"):
            out.flush()
            offset = 0
            try:
                while offset < size:
                    sent = os.sendfile(fileno, f.fileno(), offset, size - offset)
                    if sent == 0:
                        break
                    offset += sent
                return
            except OSError:
                if offset:
                    raise
        while block := f.read(1024 * 1024):
            out.write(block)
