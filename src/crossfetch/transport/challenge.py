"""Parse ``WWW-Authenticate`` headers (RFC 9110 §11.6.1) into challenges.

A header may hold several challenges separated by commas, and each challenge's parameters are
comma-separated too, so a comma alone says nothing: a new challenge starts where a token is
*not* followed by ``=``. Quoted strings may hold commas, ``=`` and backslash escapes. Anything
malformed raises :class:`MalformedChallenge` (a crossfetch error), never a Python one.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from ..errors import AuthError

MAX_HEADER = 16 * 1024
"""A registry has no reason to send more; a longer header is refused, not parsed."""

_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_TOKEN68 = re.compile(r"[A-Za-z0-9._~+/-]+=*")
_WS = " \t"


class MalformedChallenge(AuthError):
    """The registry sent a ``WWW-Authenticate`` header that cannot be parsed."""

    default_cause = "malformed-challenge"


class Challenge(NamedTuple):
    """One challenge: the scheme (lower-cased) and its parameters (names lower-cased)."""

    scheme: str
    params: dict[str, str]
    token68: str | None = None

    def get(self, name: str, default: str | None = None) -> str | None:
        return self.params.get(name.lower(), default)


class _Scanner:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def skip_ws(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos] in _WS:
            self.pos += 1

    def skip_commas(self) -> bool:
        """Skip whitespace and empty list elements; True if at least one comma was seen."""
        seen = False
        while True:
            self.skip_ws()
            if self.peek() == ",":
                self.pos += 1
                seen = True
            else:
                return seen

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def at_end(self) -> bool:
        return self.pos >= len(self.text)

    def match(self, pattern: re.Pattern[str]) -> str | None:
        m = pattern.match(self.text, self.pos)
        if not m:
            return None
        self.pos = m.end()
        return m.group(0)

    def quoted(self) -> str:
        assert self.peek() == '"'
        self.pos += 1
        out: list[str] = []
        while self.pos < len(self.text):
            c = self.text[self.pos]
            if c == "\\":
                if self.pos + 1 >= len(self.text):
                    break
                out.append(self.text[self.pos + 1])
                self.pos += 2
                continue
            if c == '"':
                self.pos += 1
                return "".join(out)
            out.append(c)
            self.pos += 1
        raise self.error("unterminated quoted string")

    def error(self, why: str) -> MalformedChallenge:
        shown = self.text if len(self.text) <= 200 else self.text[:200] + "..."
        return MalformedChallenge(
            f"cannot parse the registry's WWW-Authenticate header ({why} at character "
            f"{self.pos}): {shown!r}", cause="malformed-challenge",
            fix="the registry or a proxy in front of it sends a broken authentication "
            "challenge; check its auth configuration")


def parse_challenges(header: str) -> list[Challenge]:
    """Every challenge in ``header`` in order. An empty header gives an empty list."""
    if not isinstance(header, str):
        raise MalformedChallenge("WWW-Authenticate header is not text")
    if len(header) > MAX_HEADER:
        raise MalformedChallenge(
            f"WWW-Authenticate header is {len(header)} characters long, above the {MAX_HEADER} "
            "cap", fix="check the registry's auth configuration")
    s = _Scanner(header)
    out: list[Challenge] = []
    s.skip_commas()
    while not s.at_end():
        scheme = s.match(_TOKEN)
        if scheme is None:
            raise s.error("expected an auth scheme")
        if s.peek() == "=":
            raise s.error("a parameter where an auth scheme was expected")
        params: dict[str, str] = {}
        token68: str | None = None
        separated = False
        had_space = s.peek() in _WS
        s.skip_ws()
        if had_space and not s.at_end() and s.peek() != ",":
            token68 = _try_token68(s)
            if token68 is None:
                separated = _params(s, params)
        out.append(Challenge(scheme.lower(), params, token68))
        if s.skip_commas():
            separated = True
        if not s.at_end() and not separated:
            raise s.error("expected ',' between challenges")
    return out


def _try_token68(s: _Scanner) -> str | None:
    """A token68 stands alone: it is followed by the end or a comma, never by a value."""
    start = s.pos
    value = s.match(_TOKEN68)
    if value is None:
        return None
    s.skip_ws()
    if s.at_end() or s.peek() == ",":
        # ``name=`` with an empty value would also match; a parameter needs a value, so a
        # trailing "=" only makes sense as token68 padding.
        return value
    s.pos = start
    return None


def _params(s: _Scanner, params: dict[str, str]) -> bool:
    """``name=value`` pairs until the next challenge's scheme (a token without ``=``).

    True when the list ended with a comma (so a following scheme is properly separated)."""
    while True:
        start = s.pos
        name = s.match(_TOKEN)
        if name is None:
            raise s.error("expected a parameter name")
        s.skip_ws()
        if s.peek() != "=":
            if not params:
                raise s.error(f"expected '=' after {name!r}")
            s.pos = start  # the next challenge's scheme
            return True
        s.pos += 1
        s.skip_ws()
        if s.peek() == '"':
            value = s.quoted()
        else:
            token = s.match(_TOKEN)
            if token is None:
                raise s.error(f"parameter {name!r} has no value")
            value = token
        # Parameter names are case-insensitive; the first occurrence wins.
        params.setdefault(name.lower(), value)
        s.skip_ws()
        if s.at_end():
            return False
        if s.peek() != ",":
            raise s.error("expected ',' after a parameter")
        s.skip_commas()
        if s.at_end():
            return True


def pick(challenges: list[Challenge]) -> Challenge | None:
    """The challenge crossfetch answers: Bearer over Basic; ``None`` if neither is offered."""
    for scheme in ("bearer", "basic"):
        for c in challenges:
            if c.scheme == scheme:
                return c
    return None
