"""Bounds on how long a request may take, enforced at every socket read.

A per-read timeout alone never ends a server that sends one byte a second: each read
succeeds. So every read here first asks a :class:`Pace` how long it may wait:

- a :class:`Deadline` bounds a whole request (connect, request, headers and, except for a
  streamed blob, the body);
- a :class:`Floor` bounds a blob body: at least ``rate`` bytes/s over each ``window`` seconds;
- :func:`budget` sets an ambient deadline for everything one piece of work sends in this
  context (``doctor``'s package stage uses it), on top of each request's own.

When a bound is spent the read raises :class:`~crossfetch.transport.connection.WireError` with phase
``stalled`` and a message that says what was measured.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from contextvars import ContextVar
from typing import NamedTuple


class Deadline:
    """A point in (monotonic) time by which ``what`` must be done."""

    __slots__ = ("at", "seconds", "what")

    def __init__(self, seconds: float, what: str = "the request") -> None:
        self.seconds = seconds
        self.what = what
        self.at = time.monotonic() + seconds


class Floor(NamedTuple):
    """The slowest a blob body may arrive: ``rate`` bytes/s, measured over ``window`` seconds
    (so a pause shorter than the window, or a slow start, is tolerated). ``rate`` 0: none."""

    rate: float = 1024.0
    window: float = 30.0


_BUDGET: ContextVar[Deadline | None] = ContextVar("crossfetch_budget", default=None)


@contextlib.contextmanager
def budget(seconds: float, what: str) -> Iterator[Deadline]:
    """Everything sent in this context must be done within ``seconds`` in all (nested
    budgets: the earliest wins)."""
    outer = _BUDGET.get()
    mine = Deadline(seconds, what)
    token = _BUDGET.set(mine if outer is None or outer.at > mine.at else outer)
    try:
        yield mine
    finally:
        _BUDGET.reset(token)


class Stalled(Exception):
    """A :class:`Pace` bound was spent; the message says what was measured."""


class Pace:
    """The bounds of one response's reads. Until :meth:`body` is called the request's
    deadline applies; after it, the floor (if any) takes its place for the body."""

    def __init__(self, read_timeout: float, deadline: Deadline | None,
                 floor: Floor | None = None) -> None:
        self.read_timeout = read_timeout
        self.deadline = deadline
        self.ambient = _BUDGET.get()
        self._floor = floor
        self.floor: Floor | None = None
        self.received = 0
        self._window_start = 0.0
        self._window_bytes = 0

    def body(self) -> None:
        """Headers are in: from now on a streamed body is bounded by the floor rate (when
        one was given) instead of the request deadline."""
        if self._floor is not None and self._floor.rate > 0:
            self.deadline = None
            self.floor = self._floor
            self._window_start = time.monotonic()
            self._window_bytes = 0

    def wait(self) -> float:
        """How long the next read may block; raises :class:`Stalled` when a bound is
        already spent."""
        now = time.monotonic()
        limit = self.read_timeout
        for d in (self.deadline, self.ambient):
            if d is None:
                continue
            left = d.at - now
            if left <= 0:
                raise Stalled(f"{d.what} did not finish within {d.seconds:g} s "
                              f"({self.received} bytes received)")
            limit = min(limit, left)
        f = self.floor
        if f is not None:
            spent = now - self._window_start
            if spent >= f.window:
                if self._window_bytes < f.rate * f.window:
                    raise Stalled(f"the body arrived at {self._window_bytes / spent:.0f} B/s over "
                                  f"the last {spent:.1f} s, below the floor of {f.rate:g} B/s "
                                  f"({self.received} bytes received)")
                self._window_start, self._window_bytes, spent = now, 0, 0.0
            limit = min(limit, max(f.window - spent, 0.001))
        return limit

    def got(self, n: int) -> None:
        self.received += n
        self._window_bytes += n
