"""A second process that parses a share of a big ``package.yaml``'s documents.

PyYAML's C parser holds the GIL, so a second thread cannot parse while the scanner does; a
child process can. :class:`Helper` starts ``python -m crossfetch.xpkg.parallel`` (only on a
machine that gives this process two CPUs or more), sends it whole documents over a pipe and
reads one answer per document, in order. The child runs the scanner's own ``_identify`` on
each: ``+`` with apiVersion and kind when the document parses, ``-`` when it does not. The
child first writes :data:`HELLO`, and every answer repeats the length of its document: a child
that writes anything else (a broken interpreter, a ``sitecustomize`` that prints) is dropped.

The child only ever saves time. The scanner records answers in stream order, a ``-`` is
parsed again by the parent (so the error, its message and its cause are the parent's own), and
when the child dies, stalls or cannot start, the parent parses what it had sent. Waits are
bounded; the child is killed and reaped on every way out (and at interpreter exit).
"""

from __future__ import annotations

import contextlib
import os
import select
import struct
import sys
import time
import weakref
from collections import deque
from itertools import islice

WINDOW = 2 * 1024 * 1024
"""Bytes of documents sent and not yet answered (plus the one being offered)."""
MAX_DOCS = 1024
"""Documents sent and not yet answered."""
MIN_DOC = 512
"""Smaller documents cost the parent more to send than to parse."""
MAX_DOC = 8 * 1024 * 1024
"""Larger documents are parsed by the parent: the child never holds more than about
``WINDOW + MAX_DOC`` of the stream."""
STALL = 10.0
"""Seconds without an answer (plus the time a 5 MB/s parser would need) before the child is
declared stuck, killed, and its documents parsed by the parent. libyaml runs at ~50 MB/s."""
SLOW_RATE = 5 * 1024 * 1024
_PIPE_SIZE = 1024 * 1024
_BATCH = 128 * 1024
_F_SETPIPE_SZ = 1031  # Linux fcntl; elsewhere the default pipe size is used
HELLO = b"crossfetch-yaml-helper 1\n"
_HEAD = struct.Struct("!IB")  # document length, plain_keys flag
_ANSWER = struct.Struct("!cIII")  # + or -, document length, apiVersion and kind lengths


def cpus() -> int:
    """CPUs this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _reap(pid: int) -> None:
    """Kill the child and collect it (no zombie)."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, 9)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, 0)


def _grow(fd: int) -> None:
    try:
        import fcntl

        fcntl.fcntl(fd, _F_SETPIPE_SZ, _PIPE_SIZE)
    except (ImportError, OSError):
        pass


class Helper:
    """The parent's end of one child parser. Single-threaded: one caller at a time."""

    def __init__(self, pid: int, to_child: int, from_child: int) -> None:
        self.pid = pid
        self._w = to_child
        self._r = from_child
        os.set_blocking(to_child, False)
        os.set_blocking(from_child, False)
        self._out: deque[memoryview] = deque()  # bytes not yet written to the pipe
        self._unsent = 0  # document bytes offered since the last flush
        self._in = bytearray()  # answer bytes not yet decoded
        self._hello = False  # HELLO was read
        self.answered = 0  # answers received
        self._ready: list[tuple[str, str] | None] = []  # answers read, not yet handed out
        self._sizes: deque[int] = deque()  # the documents in flight, in order
        self._inflight = 0
        self._last = time.monotonic()  # when the child last made progress
        self.dead = False
        self._finalizer = weakref.finalize(self, _reap, pid)

    # -- the scanner's side ------------------------------------------------------------------

    def offer(self, doc: bytes, plain: bool) -> bool:
        """Send ``doc`` to the child if it has room; False when the parent must parse it."""
        n = len(doc)
        if self.dead or n < MIN_DOC or n > MAX_DOC:
            return False
        if self._sizes and (self._inflight + n > WINDOW or len(self._sizes) >= MAX_DOCS):
            self._read()  # answers free room
            if self.dead or (self._sizes and (self._inflight + n > WINDOW
                                              or len(self._sizes) >= MAX_DOCS)):
                return False
        if not self._sizes:
            self._last = time.monotonic()  # the clock runs only while the child has work
        self._out.append(memoryview(_HEAD.pack(n, plain)))
        self._out.append(memoryview(doc))
        self._sizes.append(n)
        self._inflight += n
        self._unsent += n
        # Written in batches (fewer system calls), at once when the child may run short.
        if self._unsent >= _BATCH or self._inflight - self._unsent < _BATCH:
            self._flush()
        return True

    def poll(self) -> list[tuple[str, str] | None]:
        """The answers that have arrived, in the order the documents were sent, without
        waiting: ``(apiVersion, kind)``, or None for a document the child could not parse."""
        if not self.dead:
            self._flush()
            self._read()
        ready, self._ready = self._ready, []
        return ready

    def wait(self) -> list[tuple[str, str] | None]:
        """Like :meth:`poll`, but wait for at least one answer. Returns [] only once the child
        is closed: it died, or gave no answer before its deadline (then it is killed)."""
        while True:
            answers = self.poll()
            if answers or self.dead:
                return answers
            if not self._sizes:  # nothing to wait for
                break
            left = self._last + STALL + self._sizes[0] / SLOW_RATE - time.monotonic()
            if left <= 0:
                break
            poller = select.poll()  # not select(): descriptors may be numbered over 1023
            poller.register(self._r, select.POLLIN)
            if self._out:
                poller.register(self._w, select.POLLOUT)
            poller.poll(min(left, 1.0) * 1000)
        self.close()
        return []

    @property
    def pending(self) -> int:
        """Documents sent and not answered."""
        return len(self._sizes)

    def close(self) -> None:
        """Kill and reap the child; idempotent. Unanswered documents are the parent's again."""
        if self.dead:
            return
        self.dead = True
        for fd in (self._w, self._r):
            with contextlib.suppress(OSError):
                os.close(fd)
        self._out.clear()
        self._finalizer()

    # -- pipes ---------------------------------------------------------------------------------

    def _flush(self) -> None:
        self._unsent = 0
        out = self._out
        while out:
            try:
                k = os.writev(self._w, list(islice(out, 64)))
            except BlockingIOError:
                return
            except OSError:  # the child is gone (EPIPE)
                self.close()
                return
            while k and k >= len(out[0]):
                k -= len(out.popleft())
            if k:
                out[0] = out[0][k:]
                return  # the pipe is full

    def _read(self) -> None:
        """Read the answers that arrived into ``_ready`` (and the window)."""
        eof = False
        for _ in range(16):  # at most 1 MB a call, whatever the child writes
            try:
                data = os.read(self._r, 1 << 16)
            except BlockingIOError:
                break
            except OSError:
                eof = True
                break
            if not data:
                eof = True
                break
            self._in += data
        answers: list[tuple[str, str] | None] = []
        buf, pos = self._in, 0
        if not self._hello:
            if len(buf) < len(HELLO):
                eof = eof or not HELLO.startswith(bytes(buf))
            elif buf.startswith(HELLO):
                self._hello = True
                pos = len(HELLO)
            else:
                eof = True
        sizes = self._sizes
        while self._hello and len(buf) - pos >= _ANSWER.size:
            ok, n, a, k = _ANSWER.unpack_from(buf, pos)
            start = pos + _ANSWER.size
            # Not an answer to the next question: drop the child. (Decoded, apiVersion and
            # kind are at most 1.5 times their source text: "\\L" is U+2028.)
            if (ok not in (b"+", b"-") or len(answers) >= len(sizes)
                    or n != sizes[len(answers)] or a + k > 2 * n):
                eof = True
                break
            if len(buf) - start < a + k:
                break
            if ok == b"+":
                try:
                    answers.append((
                        buf[start:start + a].decode("utf-8", "surrogatepass"),
                        buf[start + a:start + a + k].decode("utf-8", "surrogatepass")))
                except UnicodeDecodeError:
                    eof = True
                    break
            else:
                answers.append(None)
            pos = start + a + k
        del buf[:pos]
        for _ in answers:
            self._inflight -= sizes.popleft()
        if answers:
            self.answered += len(answers)
            self._ready += answers
            self._last = time.monotonic()
        if eof:
            self.close()


def start(args: list[str] | None = None) -> Helper | None:
    """Start a child parser, or None when this machine or interpreter cannot have one.

    ``args`` replaces ``-m crossfetch.xpkg.parallel`` (tests start children that misbehave)."""
    if (cpus() < 2 or not sys.executable or getattr(sys, "frozen", False)
            or not hasattr(os, "posix_spawn")):  # Windows: the scanner parses alone
        return None
    env = dict(os.environ)
    # The child imports exactly the modules the parent would (same interpreter, same path).
    # -P: `python -m` would otherwise put the working directory first on the child's path, and
    # a yaml.py or crossfetch/ there (a cloned repository) would run in the child although the
    # parent never imported it.
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    to_child_r, to_child_w = os.pipe()
    from_child_r, from_child_w = os.pipe()
    try:
        if min(to_child_r, to_child_w, from_child_r, from_child_w) < 3:
            raise OSError("a standard stream of this process is closed")
        _grow(to_child_w)
        pid = os.posix_spawn(
            sys.executable, [sys.executable, "-P", *(args or ["-m", __name__])], env,
            file_actions=[(os.POSIX_SPAWN_DUP2, to_child_r, 0),
                          (os.POSIX_SPAWN_DUP2, from_child_w, 1),
                          (os.POSIX_SPAWN_OPEN, 2, os.devnull, os.O_WRONLY, 0)])
    except OSError:
        os.close(to_child_w)
        os.close(from_child_r)
        return None
    finally:
        os.close(to_child_r)
        os.close(from_child_w)
    return Helper(pid, to_child_w, from_child_r)


# --- the child ------------------------------------------------------------------------------


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def main() -> int:
    """Answer every document read from stdin, in order, until EOF."""
    from .meta import MAX_ALIASES, _identify

    _write_all(1, HELLO)
    buf = bytearray()
    while data := os.read(0, 1 << 20):
        buf += data
        pos = 0
        view = memoryview(buf)
        answers: list[bytes] = []
        while len(buf) - pos >= _HEAD.size:
            n, plain = _HEAD.unpack_from(buf, pos)
            start = pos + _HEAD.size
            if len(buf) - start < n:
                break
            doc = bytes(view[start:start + n])
            pos = start + n
            try:
                api, kind = _identify(doc, "", 1, MAX_ALIASES, bool(plain))
            except Exception:  # the parent parses it again and reports it
                answer = _ANSWER.pack(b"-", n, 0, 0)
            else:
                a = api.encode("utf-8", "surrogatepass")
                k = kind.encode("utf-8", "surrogatepass")
                answer = _ANSWER.pack(b"+", n, len(a), len(k)) + a + k
            answers.append(answer)
            if len(answers) >= 16:  # answered in small batches: the parent's window moves on
                _write_all(1, b"".join(answers))
                answers.clear()
        if answers:  # before a read that may wait
            _write_all(1, b"".join(answers))
        view.release()
        del buf[:pos]
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (KeyboardInterrupt, BrokenPipeError):  # the parent went away
        sys.exit(1)
