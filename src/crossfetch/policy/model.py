"""The one policy model every source (flags, ImageConfig, node files) is mapped onto.

A :class:`Decision` says, for one reference, where to go (endpoints in try order), how to speak
TLS to each, which credentials to use, and *why*: every piece carries the :class:`Source` that
decided it, so ``policy explain`` can show it.
"""

from __future__ import annotations

import enum
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple, Protocol
from urllib.parse import SplitResult, urlsplit

if TYPE_CHECKING:
    from ..reference import Reference


class TLSMode(enum.StrEnum):
    """``spec.registry.tls.mode`` of an ImageConfig."""

    STRICT = "Strict"
    """TLS with certificate and host name verification (the default)."""
    INSECURE = "Insecure"
    """TLS without verification."""
    DISABLED = "Disabled"
    """Plain HTTP."""


class Source(NamedTuple):
    """Where a decision came from: a flag, an object, or a file and line."""

    kind: str
    """``default``, ``flag``, ``env``, ``imageconfig``, ``hosts.toml``, ``certs.d``,
    ``registries.conf``, ``daemon.json``, ``secret``, ``docker-config``, ..."""
    name: str = ""
    """Object name, flag name or file path."""
    line: int | None = None

    def __str__(self) -> str:
        where = self.name if self.line is None else f"{self.name}:{self.line}"
        return f"{self.kind} {where}".strip()

    def to_dict(self) -> dict[str, object]:
        d: dict[str, object] = {"kind": self.kind, "name": self.name}
        if self.line is not None:
            d["line"] = self.line
        return d


DEFAULT_SOURCE = Source("default", "")


class ClientCert(NamedTuple):
    """A client certificate and key for mutual TLS (PEM files)."""

    cert: Path
    key: Path
    source: Source = DEFAULT_SOURCE


class TLSConfig(NamedTuple):
    """How to speak (or not speak) TLS to one endpoint."""

    mode: TLSMode = TLSMode.STRICT
    ca_files: tuple[Path, ...] = ()
    """Extra trust anchors, *added to* the system roots."""
    ca_pem: tuple[str, ...] = ()
    """Extra trust anchors given inline (e.g. from a ConfigMap), PEM text."""
    client: ClientCert | None = None
    allow_http_fallback: bool = False
    """The endpoint may be plain HTTP: try HTTPS first and fall back to HTTP only when the
    server answers the TLS handshake in plain HTTP (containerd's rule). Never on a certificate
    error."""
    source: Source = DEFAULT_SOURCE

    @property
    def scheme(self) -> str:
        return "http" if self.mode is TLSMode.DISABLED else "https"


PULL, RESOLVE, PUSH = "pull", "resolve", "push"
ALL_CAPABILITIES = frozenset({PULL, RESOLVE, PUSH})


class Endpoint(NamedTuple):
    """One place to send API requests for a repository."""

    url: str
    """``scheme://host[:port]`` and, with ``override_path``, the full API path prefix."""
    role: str = "upstream"
    """``mirror`` or ``upstream``."""
    capabilities: frozenset[str] = ALL_CAPABILITIES
    tls: TLSConfig = TLSConfig()
    headers: tuple[tuple[str, str], ...] = ()
    override_path: bool = False
    """``url`` already holds the API root (containerd's ``override_path``): no ``/v2`` added."""
    repository: str | None = None
    """Repository name to use at this endpoint when it differs from the reference's (a
    ``registries.conf`` mirror location with a path); ``None`` keeps the reference's."""
    source: Source = DEFAULT_SOURCE

    @property
    def _parts(self) -> SplitResult:
        return urlsplit(self.url)  # parsed once: urlsplit keeps an LRU cache (Python 3.11+)

    @property
    def scheme(self) -> str:
        return self._parts.scheme

    @property
    def host(self) -> str:
        """``host[:port]`` part of the URL."""
        return self._parts.netloc

    @property
    def path(self) -> str:
        """The URL's path (empty unless the endpoint has one, e.g. with ``override_path``)."""
        return self._parts.path

    def api_path(self, tail: str = "") -> str:
        """The request path of ``tail`` under this endpoint's API root: ``<path>/v2/<tail>``,
        or ``<path>/<tail>`` with ``override_path``."""
        base = self.path.rstrip("/")
        return f"{base if self.override_path else base + '/v2'}/{tail}"

    def repo_path(self, repository: str, tail: str) -> str:
        """``api_path`` of ``<repository>/<tail>``; this endpoint's own ``repository`` (a
        mirror location with a path) wins over the reference's."""
        return self.api_path(f"{self.repository or repository}/{tail}")

    def can(self, capability: str) -> bool:
        return capability in self.capabilities


class Credential(NamedTuple):
    """Credentials for one registry host. ``repr`` never shows secrets."""

    username: str | None = None
    password: str | None = None
    identity_token: str | None = None
    """An OAuth2 refresh token (Docker ``identitytoken``, helper username ``<token>``)."""
    registry_token: str | None = None
    """A bearer token to send as-is."""
    source: Source = DEFAULT_SOURCE

    def __repr__(self) -> str:
        kinds = [k for k in ("password", "identity_token", "registry_token") if getattr(self, k)]
        return f"Credential(username={self.username!r}, has={kinds}, source={self.source})"

    def secrets(self) -> list[str]:
        """Every secret value, for redaction."""
        return [s for s in (self.password, self.identity_token, self.registry_token) if s]


class Keychain(Protocol):
    """Finds credentials for a registry host (``host[:port]``), lazily."""

    def describe(self, registry: str) -> Source | None:
        """Which source *would* supply credentials, without running helpers or reading values."""

    def resolve(self, registry: str) -> Credential | None:
        """The credentials to use, or ``None`` for anonymous access."""


class AuthPolicy(NamedTuple):
    """Per-registry authentication settings decided by policy."""

    keychain: Keychain | None = None
    allow_plain_http_credentials: bool = False
    """Opt-in to send credentials over plain HTTP to a registry allowed plain HTTP."""
    source: Source = DEFAULT_SOURCE


class Decision(NamedTuple):
    """The effective policy for one reference."""

    reference: Reference
    """As written by the user."""
    resolved: Reference
    """After ``rewriteImage``."""
    endpoints: tuple[Endpoint, ...]
    """In try order: mirrors first, the upstream last."""
    auth: AuthPolicy = AuthPolicy()
    rewrite_source: Source | None = None
    blocked: Source | None = None
    """Set when a ``blocked`` rule forbids this reference."""
    notes: tuple[str, ...] = ()

    def endpoints_for(self, capability: str) -> tuple[Endpoint, ...]:
        return tuple(e for e in self.endpoints if e.can(capability))
