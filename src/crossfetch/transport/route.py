"""What the transport needs to reach a server, and nothing else.

A :class:`Route` is a base URL, its TLS settings and extra headers. A policy
:class:`~crossfetch.policy.model.Endpoint` is a route (it has those fields, plus a role,
capabilities and a repository mapping the transport never reads); a redirect target or a token
realm gets a plain :class:`Route` of its own instead of a made-up endpoint.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple, Protocol
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from ..policy.model import TLSConfig


class RouteLike(Protocol):
    """Anything the transport can send to: a :class:`Route` or a policy ``Endpoint``."""

    @property
    def url(self) -> str: ...

    @property
    def tls(self) -> TLSConfig: ...

    @property
    def headers(self) -> tuple[tuple[str, str], ...]: ...

    @property
    def scheme(self) -> str: ...

    @property
    def host(self) -> str: ...


class Route(NamedTuple):
    """``url`` (``scheme://host[:port]``), how to speak TLS to it, extra headers. Whether plain
    HTTP may follow an HTTPS attempt is ``tls.allow_http_fallback``."""

    url: str
    tls: TLSConfig
    headers: tuple[tuple[str, str], ...] = ()

    @property
    def scheme(self) -> str:
        return urlsplit(self.url).scheme

    @property
    def host(self) -> str:
        return urlsplit(self.url).netloc
