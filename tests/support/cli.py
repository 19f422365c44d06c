"""Run the crossfetch CLI in-process and capture what it prints (stdout, stderr, and both
interleaved as a person would see them), its exit code, and any stray exception.

Zero tracebacks across the suite: :func:`invoke` fails any run that raised a stray exception
or printed "Traceback", and :func:`guard_subprocess_run` (installed for every test by
``tests/conftest.py``) does the same for every ``crossfetch`` run in a subprocess.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

TRACEBACK = "Traceback (most recent call last)"


class TracebackInOutput(AssertionError):
    """A crossfetch run printed a Python traceback: every failure must be an ``error:`` line."""


def check_no_traceback(args: Sequence[Any], stderr: str | bytes | None,
                       exc: BaseException | None = None) -> None:
    """Fail when a crossfetch run crashed (a stray exception, or a traceback on stderr)."""
    text = stderr.decode("utf-8", "replace") if isinstance(stderr, bytes) else stderr or ""
    if exc is not None or TRACEBACK in text:
        detail = repr(exc) if exc is not None else text[-3000:]
        raise TracebackInOutput(f"crossfetch {' '.join(map(str, args))} crashed with a "
                                f"traceback instead of an error line:\n{detail}") from exc


def _is_crossfetch(argv: Any) -> bool:
    if isinstance(argv, str | bytes) or not isinstance(argv, Sequence):
        return False
    parts = [str(a) for a in argv]
    return "crossfetch.cli.main" in parts or any(
        os.path.basename(a) == "crossfetch" for a in parts[:1])


def guard_subprocess_run(original: Callable[..., Any]) -> Callable[..., Any]:
    """``subprocess.run`` that fails a ``crossfetch`` run whose captured stderr holds a
    traceback (runs that do not capture stderr are not inspected)."""

    def run(*popenargs: Any, **kwargs: Any) -> Any:
        result = original(*popenargs, **kwargs)
        argv = popenargs[0] if popenargs else kwargs.get("args")
        if _is_crossfetch(argv) and isinstance(result, subprocess.CompletedProcess):
            check_no_traceback(argv, result.stderr)
        return result

    run.__wrapped__ = original  # type: ignore[attr-defined]
    return run


class _Tee(io.TextIOBase):
    def __init__(self, both: io.StringIO) -> None:
        self.own = io.StringIO()
        self.both = both
        self.buffer = _BytesTee(self)

    def write(self, s: str) -> int:
        self.own.write(s)
        self.both.write(s)
        return len(s)

    def isatty(self) -> bool:
        return False


class _BytesTee(io.RawIOBase):
    def __init__(self, text: _Tee) -> None:
        self.text = text

    def write(self, b: bytes) -> int:  # type: ignore[override]
        self.text.write(bytes(b).decode("utf-8", "replace"))
        return len(b)

    def writable(self) -> bool:
        return True


@dataclass
class CliResult:
    exit_code: int
    stdout: str
    stderr: str
    output: str
    exception: BaseException | None = None


def invoke(args: Sequence[str], *, input: str | None = None,
           env: Mapping[str, str] | None = None, catch_exceptions: bool = True) -> CliResult:
    """``crossfetch ARGS`` in this process, with ``input`` on stdin and ``env`` set.

    Raises :class:`TracebackInOutput` when the run crashed instead of printing an error.
    """
    from crossfetch.cli.main import main

    both = io.StringIO()
    out, err = _Tee(both), _Tee(both)
    saved = sys.stdin, sys.stdout, sys.stderr
    saved_env = {k: os.environ.get(k) for k in (env or {})}
    sys.stdin = io.StringIO(input or "")
    sys.stdout, sys.stderr = out, err  # type: ignore[assignment]
    os.environ.update(env or {})
    code, exc = 0, None
    try:
        code = main(list(args))
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    except Exception as e:
        if not catch_exceptions:
            raise
        code, exc = 1, e
    finally:
        sys.stdin, sys.stdout, sys.stderr = saved
        for k, v in saved_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    check_no_traceback(args, err.own.getvalue(), exc)
    return CliResult(code, out.own.getvalue(), err.own.getvalue(), both.getvalue(), exc)
