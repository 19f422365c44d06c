"""Run the crossfetch CLI in-process and capture what it prints (stdout, stderr, and both
interleaved as a person would see them), its exit code, and any stray exception."""

from __future__ import annotations

import io
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass


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
    """``crossfetch ARGS`` in this process, with ``input`` on stdin and ``env`` set."""
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
    return CliResult(code, out.own.getvalue(), err.own.getvalue(), both.getvalue(), exc)
