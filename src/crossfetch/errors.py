"""One exception hierarchy, following a request's life.

Every error carries what was attempted (``url``, ``host``, ``mode``), why it failed (``cause``,
a short machine-readable token, plus the message) and the change that fixes it (``fix``).
``exit_code`` is what the CLI exits with: 2 for bad usage or configuration, 1 for a failed fetch.
"""

from __future__ import annotations

import enum
from typing import Any


class Cause(enum.StrEnum):
    """Every ``cause`` an error or a doctor check may carry (the ``cause`` key under ``-O json``):
    one vocabulary for the whole tool. Each member names the module that first raises it; a
    test (tests/unit/test_causes.py) fails when code uses a cause that is not listed here."""

    AUTH_FAILED = "auth-failed"  # errors.py
    BAD_CONSTRAINT = "bad-constraint"  # xpkg/lint.py
    BAD_USAGE = "bad-usage"  # cli/common.py
    BLOCKED = "blocked"  # client.py
    BUILD_FAILED = "build-failed"  # xpkg/build.py
    CLIENT_CERTIFICATE_REQUIRED = "client-certificate-required"  # fixes/__init__.py
    CONNECTION_FAILED = "connection-failed"  # doctor/net.py
    CONNECTION_REFUSED = "connection-refused"  # doctor/net.py
    CONNECTION_RESET = "connection-reset"  # transport/session.py
    CREDENTIAL_HELPER = "credential-helper"  # policy/credhelpers.py
    CREDENTIAL_HELPER_FAILED = "credential-helper-failed"  # policy/credhelpers.py
    CREDENTIAL_HELPER_MISSING = "credential-helper-missing"  # policy/credhelpers.py
    CREDENTIALS_REJECTED = "credentials-rejected"  # transport/auth.py
    CRI_DISABLED = "cri-disabled"  # cri/client.py
    DIGEST_MISMATCH = "digest-mismatch"  # errors.py
    DISALLOWED_OBJECT = "disallowed-object"  # xpkg/meta.py
    DNS_FAILURE = "dns-failure"  # doctor/net.py
    EGRESS_BLOCKED = "egress-blocked"  # doctor/checks.py
    EGRESS_UNDECIDABLE = "egress-undecidable"  # doctor/checks.py
    EMPTY_PACKAGE = "empty-package"  # xpkg/meta.py
    ERROR = "error"  # errors.py
    EXPIRED_CERTIFICATE = "expired-certificate"  # doctor/net.py
    FALLBACK = "fallback"  # transport/session.py
    FETCH_FAILED = "fetch-failed"  # errors.py
    FINGERPRINT_MISMATCH = "fingerprint-mismatch"  # trust.py
    FINGERPRINT_REQUIRED = "fingerprint-required"  # trust.py
    GZIP_BOMB = "gzip-bomb"  # xpkg/stream.py
    HOSTNAME_MISMATCH = "hostname-mismatch"  # doctor/net.py
    HTTP_ERROR = "http-error"  # errors.py
    IMAGE_NOT_PRESENT = "image-not-present"  # cri/client.py
    INSUFFICIENT_SCOPE = "insufficient-scope"  # transport/auth.py
    INTERRUPTED = "interrupted"  # errors.py
    INVALID_ADDRESS = "invalid-address"  # doctor/netpol/evaluate.py
    INVALID_CONFIG = "invalid-config"  # errors.py
    INVALID_FINGERPRINT = "invalid-fingerprint"  # trust.py
    INVALID_LAYER = "invalid-layer"  # xpkg/stream.py
    INVALID_MANIFEST = "invalid-manifest"  # oci.py
    INVALID_OBJECT = "invalid-object"  # xpkg/meta.py
    INVALID_PACKAGE = "invalid-package"  # errors.py
    INVALID_PORT = "invalid-port"  # doctor/netpol/evaluate.py
    INVALID_PROTOCOL = "invalid-protocol"  # doctor/netpol/evaluate.py
    INVALID_REFERENCE = "invalid-reference"  # errors.py
    INVALID_UTF8 = "invalid-utf8"  # xpkg/meta.py
    INVALID_YAML = "invalid-yaml"  # xpkg/build.py
    LAYER_MISSING = "layer-missing"  # cri/client.py
    LIMIT_EXCEEDED = "limit-exceeded"  # doctor/netpol/load.py
    LINT = "lint"  # xpkg/lint.py
    LOOPBACK_ADDRESS = "loopback-address"  # doctor/checks.py
    MALFORMED_CHALLENGE = "malformed-challenge"  # transport/challenge.py
    META_COUNT = "meta-count"  # xpkg/lint.py
    META_KIND = "meta-kind"  # xpkg/lint.py
    META_TOO_LARGE = "meta-too-large"  # xpkg/meta.py
    METHOD_NOT_ALLOWED = "method-not-allowed"  # doctor/api.py
    MISSING_EXTRA = "missing-extra"  # _extras.py
    MULTIPLE_BASE_LAYERS = "multiple-base-layers"  # xpkg/layers.py
    MULTIPLE_META_OBJECTS = "multiple-meta-objects"  # xpkg/meta.py
    NO_DIGEST_HEADER = "no-digest-header"  # doctor/api.py
    NO_ENDPOINT = "no-endpoint"  # registry.py
    NO_GVK = "no-gvk"  # xpkg/lint.py
    NO_META_OBJECT = "no-meta-object"  # xpkg/meta.py
    NO_NAME = "no-name"  # xpkg/lint.py
    NO_PACKAGE_FILE = "no-package-file"  # upload.py
    NO_PACKAGE_YAML = "no-package-yaml"  # doctor/api.py
    NO_PUSH_CAPABILITY = "no-push-capability"  # upload.py
    NO_TRUST_ANCHOR = "no-trust-anchor"  # trust.py
    NOT_A_REGISTRY = "not-a-registry"  # doctor/api.py
    NOT_A_TAG = "not-a-tag"  # upload.py
    NOT_AN_IMAGE = "not-an-image"  # xpkg/build.py
    NOT_AN_OBJECT = "not-an-object"  # xpkg/lint.py
    NOT_CACHED = "not-cached"  # errors.py
    NOT_CONFIRMED = "not-confirmed"  # cli/trust_cmds.py
    NOT_CONTAINERD = "not-containerd"  # cri/client.py
    NOT_FOUND = "not-found"  # doctor/api.py
    NOT_FULLY_QUALIFIED = "not-fully-qualified"  # doctor/checks.py
    OBJECT_KIND = "object-kind"  # xpkg/lint.py
    OS_ERROR = "os-error"  # cli/common.py
    OUTPUT = "output"  # output.py
    PACKAGE_TOO_LARGE = "package-too-large"  # xpkg/meta.py
    PERMISSION_DENIED = "permission-denied"  # cri/client.py
    PLAIN_HTTP = "plain-http"  # crossplane/emulate.py
    PLAIN_HTTP_CREDENTIALS = "plain-http-credentials"  # transport/auth.py
    PLAIN_HTTP_REALM = "plain-http-realm"  # transport/auth.py
    PLATFORM_NOT_FOUND = "platform-not-found"  # oci.py
    PROXY_ERROR = "proxy-error"  # registry.py
    PULL_REFUSED = "pull-refused"  # cri/errors.py
    RATE_LIMITED = "rate-limited"  # registry.py
    REFUSED_BY_POLICY = "refused-by-policy"  # errors.py
    RUNTIME_ERROR = "runtime-error"  # cri/errors.py
    RUNTIME_UNREACHABLE = "runtime-unreachable"  # cri/errors.py
    SIZE_MISMATCH = "size-mismatch"  # xpkg/stream.py
    SOCKET_MISSING = "socket-missing"  # cri/client.py
    STALLED = "stalled"  # registry.py
    TIMEOUT = "timeout"  # cri/client.py
    TLS_ERROR = "tls-error"  # doctor/net.py
    TLS_EXPECTED = "tls-expected"  # doctor/net.py
    TOKEN_DENIED = "token-denied"  # noqa: S105 - a cause, not a password (transport/auth.py)
    TOKEN_FAILED = "token-failed"  # noqa: S105 - a cause, not a password (transport/auth.py)
    TOO_LARGE = "too-large"  # xpkg/build.py
    TOO_MANY_REDIRECTS = "too-many-redirects"  # transport/session.py
    TRUNCATED = "truncated"  # registry.py
    UNAUTHORIZED = "unauthorized"  # crossplane/emulate.py
    UNAVAILABLE = "unavailable"  # registry.py
    UNEXPECTED_ERROR = "unexpected-error"  # doctor/checks.py
    UNKNOWN_CROSSPLANE_VERSION = "unknown-crossplane-version"  # crossplane/profile.py
    UNKNOWN_META_KIND = "unknown-meta-kind"  # xpkg/meta.py
    UNSAFE_PACKAGE_YAML = "unsafe-package-yaml"  # xpkg/stream.py
    UNSAFE_PATH = "unsafe-path"  # xpkg/build.py
    UNSAFE_REALM = "unsafe-realm"  # transport/auth.py
    UNSAFE_REDIRECT = "unsafe-redirect"  # serve/upstream.py
    UNSUPPORTED_COMPRESSION = "unsupported-compression"  # xpkg/stream.py
    UNTRUSTED_CERTIFICATE = "untrusted-certificate"  # doctor/net.py
    UPLOAD_ELSEWHERE = "upload-elsewhere"  # upload.py
    USAGE = "usage"  # errors.py
    VERIFICATION_DISABLED = "verification-disabled"  # doctor/net.py
    YAML_ALIASES = "yaml-aliases"  # xpkg/meta.py


RETRY_SENT: frozenset[str] = frozenset({Cause.CONNECTION_RESET, Cause.CONNECTION_FAILED,
                                        Cause.TRUNCATED})
"""Failures after the request may have reached the server: worth another try for idempotent
requests, and a broken-off body is resumed where it stopped."""
RETRY_UNSENT: frozenset[str] = frozenset({Cause.CONNECTION_REFUSED, Cause.CONNECTION_RESET,
                                          Cause.TIMEOUT, Cause.CONNECTION_FAILED})
"""Connecting failed, so nothing was sent: worth another try for any method."""

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


GIVE_CREDENTIALS = ("give credentials for this registry: --pull-secret FILE, docker login, "
                    "--username with --password-stdin, or an ImageConfig pullSecretRef")
"""The fix when a registry wants credentials and none were given."""


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
