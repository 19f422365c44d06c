"""The one capped reader: every in-memory read of untrusted bytes (manifests, configs, token
responses, response bodies, manifests from the runtime's store) goes through it."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .errors import LimitExceeded


def read_capped(chunks: Iterable[bytes], cap: int, what: str, *,
                declared: int | None = None, **error: Any) -> bytes:
    """Join ``chunks``, refusing more than ``cap`` bytes as they arrive.

    ``declared`` (a Content-Length or a descriptor's size) above ``cap`` is refused before
    anything is read. ``what`` names the thing in the error ("manifest at URL"); ``error``
    goes to :class:`LimitExceeded` (``url``, ``mode``, ...)."""
    if declared is not None and declared > cap:
        raise LimitExceeded(f"{what} is {declared} bytes, above the {cap} byte cap", **error)
    buf = bytearray()
    for chunk in chunks:
        buf += chunk
        if len(buf) > cap:
            raise LimitExceeded(f"{what} exceeds the {cap} byte cap", **error)
    return bytes(buf)
