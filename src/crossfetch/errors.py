"""One exception hierarchy, following a request's life.

Every error carries what was attempted (``url``, ``host``, ``mode``), why it failed (``cause``,
a short machine-readable token, plus the message) and the change that fixes it (``fix``).
``exit_code`` is what the CLI exits with: 2 for bad usage or configuration, 1 for a failed fetch.
"""

from __future__ import annotations

from typing import Any


class CrossfetchError(Exception):
    """Base of every error crossfetch raises on purpose."""

    exit_code = 1
    default_cause = "error"

    def __init__(
        self,
        message: str,
        *,
        url: str | None = None,
        host: str | None = None,
        mode: str | None = None,
        cause: str | None = None,
        fix: str | None = None,
        detail: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.url = url
        self.host = host
        self.mode = mode
        self.cause = cause or self.default_cause
        self.fix = fix
        self.detail = detail or {}

    def __str__(self) -> str:
        parts = [self.message]
        where = ", ".join(
            f"{k}: {v}" for k, v in (("url", self.url), ("mode", self.mode)) if v is not None
        )
        if where:
            parts.append(f"  ({where})")
        if self.fix:
            parts.append(f"\n  fix: {self.fix}")
        return "".join(parts)

    def __copy__(self) -> CrossfetchError:
        """A shallow copy with every attribute (``copy.copy`` would call ``__init__`` with the
        message alone, which subclasses with required keywords, e.g. ``status``, refuse)."""
        out = type(self).__new__(type(self))
        out.__dict__.update(self.__dict__)
        out.args = self.args
        return out

    def to_dict(self) -> dict[str, Any]:
        """JSON form for ``--output json``; never contains secrets (messages are redacted)."""
        out: dict[str, Any] = {"error": type(self).__name__, "cause": self.cause,
                               "message": self.message}
        for key in ("url", "host", "mode", "fix"):
            value = getattr(self, key)
            if value is not None:
                out[key] = value
        if self.detail:
            out["detail"] = self.detail
        return out


class Interrupted(CrossfetchError):
    """The user interrupted the command (Ctrl-C); exit code 130, as shells report SIGINT."""

    exit_code = 130
    default_cause = "interrupted"


# --- usage and configuration (exit 2) -------------------------------------------------------


class UsageError(CrossfetchError):
    """Bad command-line usage."""

    exit_code = 2
    default_cause = "usage"


class InvalidReference(UsageError):
    """A malformed or incomplete package reference."""

    default_cause = "invalid-reference"


class ConfigError(CrossfetchError):
    """A policy or node configuration file is malformed or inconsistent."""

    exit_code = 2
    default_cause = "invalid-config"

    def __init__(self, message: str, *, file: str | None = None, line: int | None = None,
                 **kw: Any) -> None:
        loc = file if line is None else f"{file}:{line}"
        super().__init__(f"{loc}: {message}" if loc else message, **kw)
        self.file = file
        self.line = line


# --- fetch failures (exit 1) ----------------------------------------------------------------


class FetchError(CrossfetchError):
    """Anything that went wrong talking to a registry or reading what it sent."""

    default_cause = "fetch-failed"


class TransportError(FetchError):
    """DNS, TCP, timeouts: the request never got an HTTP answer."""

    default_cause = "connection-failed"


class TLSError(TransportError):
    """The TLS handshake failed (untrusted, expired or mismatched certificate, ...)."""

    default_cause = "tls-error"


class PlainHTTPError(TransportError):
    """The server speaks plain HTTP where policy demanded TLS."""

    default_cause = "plain-http"


class TLSExpectedError(TransportError):
    """The server speaks TLS where policy said plain HTTP (``Disabled``)."""

    default_cause = "tls-expected"


class PolicyRefused(FetchError):
    """Policy forbids the request (blocked prefix, clear-text credentials, unsafe redirect)."""

    default_cause = "refused-by-policy"


TEMPORARY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
"""Statuses that may succeed when asked again."""
TEMPORARY_CODES = frozenset({"UNAVAILABLE", "TOOMANYREQUESTS"})
"""Distribution error codes that say "try again" whatever the status (as go-containerregistry's
``transport.Error.Temporary`` reads them)."""


class HTTPStatusError(FetchError):
    """The registry answered with an error status. ``diagnostics`` keeps every entry of the
    registry's ``errors`` body (``code``, ``message``, ``detail``), in order."""

    default_cause = "http-error"

    def __init__(self, message: str, *, status: int,
                 diagnostics: list[dict[str, Any]] | None = None, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.status = status
        self.diagnostics = diagnostics or []
        if self.diagnostics:
            self.detail.setdefault("errors", self.diagnostics)

    @property
    def temporary(self) -> bool:
        """Whether the same request may succeed later (a retry is worth it)."""
        return self.status in TEMPORARY_STATUSES or any(
            d.get("code") in TEMPORARY_CODES for d in self.diagnostics)


class NotFound(HTTPStatusError):
    default_cause = "not-found"


class Unauthorized(HTTPStatusError):
    default_cause = "unauthorized"


class AuthError(FetchError):
    """A credential source or token exchange failed."""

    default_cause = "auth-failed"


class DigestMismatch(FetchError):
    """Content did not hash to the digest it was asked for."""

    default_cause = "digest-mismatch"


class LimitExceeded(FetchError):
    """A size or count cap was hit (manifest size, layers, package stream, YAML aliases)."""

    default_cause = "limit-exceeded"


class PackageError(FetchError):
    """The image is not a valid Crossplane package."""

    default_cause = "invalid-package"


class CacheMiss(FetchError):
    """``--pull-policy Never`` and the package is not in the cache."""

    default_cause = "not-cached"
