"""When and how long to wait before trying a request again: one small value, like urllib3's
``Retry`` (whose fields it mirrors where they mean the same thing)."""

from __future__ import annotations

import random
import time
from email.utils import parsedate_to_datetime
from typing import NamedTuple

from ..errors import TEMPORARY_STATUSES

IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
"""Methods that may be sent twice with the effect of once (RFC 9110 §9.2.2)."""


class Retry(NamedTuple):
    """How a failed request is tried again.

    - ``total``: tries after the first, per request; a blob body that breaks off is resumed
      up to ``total`` times as well.
    - ``methods``: what is retried once it may have reached the server (a reset, a 5xx, a
      429); anything else (a token ``POST``) is retried only when it never left this host
      (the connection could not be made).
    - ``statuses``: answers worth another try.
    - ``backoff``/``backoff_max``: exponential backoff with jitter, in seconds.
    - ``retry_after_max``: the longest ``Retry-After`` honoured; a longer one ends the retries
      and the error says how long the server asked for.
    """

    total: int = 3
    methods: frozenset[str] = IDEMPOTENT
    statuses: frozenset[int] = TEMPORARY_STATUSES
    backoff: float = 0.25
    backoff_max: float = 5.0
    retry_after_max: float = 30.0

    def with_total(self, total: int) -> Retry:
        return self._replace(total=total)

    def may_resend(self, method: str) -> bool:
        """Whether ``method`` may be sent again after the server may have seen it."""
        return method.upper() in self.methods

    def backoff_delay(self, attempt: int) -> float:
        """Seconds before try ``attempt + 2`` (jittered to half..full)."""
        return float(min(self.backoff * (2**attempt), self.backoff_max)
                     * (0.5 + random.random() / 2))


def retry_after_seconds(value: str | None) -> float | None:
    """``Retry-After`` (seconds or an HTTP date) as seconds from now; ``None`` when absent or
    unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        seconds = float(value)  # inf past ~308 digits: unreadable, not "forever"
        return seconds if seconds != float("inf") else None
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    return max(when.timestamp() - time.time(), 0.0)
