"""Package references: ``host[:port]/path[:tag][@algo:hex]``.

The grammar follows the distribution reference grammar. The first path component is a
registry when it contains ``.`` or ``:``, is ``localhost``, or has upper-case letters (Docker's
rule). Unlike Docker, a name with no registry is an error (as in Crossplane v2) unless a default
registry is supplied.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from .errors import InvalidReference

_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
# Every pattern is used with fullmatch: ``$`` would also match before a trailing newline, and
# ``\w`` or str.isdigit() would take non-ASCII letters and digits (``:ünï``, ``6²00``).
_PATH_RE = re.compile(rf"{_COMPONENT}(?:/{_COMPONENT})*")
_TAG_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
_DIGEST_RE = re.compile(r"[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]{32,}")
_HOSTNAME_RE = re.compile(
    r"(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)(?:\.(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?))*"
)
_HEX64 = re.compile(r"[a-f0-9]{64}")
_PORT_RE = re.compile(r"[0-9]{1,5}")

DOCKER_HUB = "docker.io"
DOCKER_HUB_API = "registry-1.docker.io"
MAX_NAME_LENGTH = 255


def _is_registry(component: str) -> bool:
    return (
        "." in component
        or ":" in component
        or component == "localhost"
        or component.lower() != component
    )


def _split_registry(registry: str, ref: str) -> tuple[str, int | None]:
    """Validate ``host[:port]`` (IPv6 literals in brackets) and return (host, port)."""
    if registry.startswith("["):
        end = registry.find("]")
        if end == -1:
            raise InvalidReference(f"invalid reference {ref!r}: unterminated IPv6 literal",
                                   fix="write IPv6 registries as [addr]:port, e.g. [::1]:5000/repo")
        host, rest = registry[1 : end], registry[end + 1 :]
        import ipaddress

        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise InvalidReference(f"invalid reference {ref!r}: {host!r} is not an IPv6 address") \
                from None
        if rest and not rest.startswith(":"):
            raise InvalidReference(f"invalid reference {ref!r}: junk after IPv6 literal")
        port_s = rest[1:] if rest else None
    else:
        host, _, port_s = registry.partition(":")
        if not port_s and registry.endswith(":"):
            raise InvalidReference(f"invalid reference {ref!r}: empty port in {registry!r}")
        port_s = port_s or None
        if not _HOSTNAME_RE.fullmatch(host):
            raise InvalidReference(f"invalid reference {ref!r}: {host!r} is not a valid host name")
    port: int | None = None
    if port_s is not None:
        if not _PORT_RE.fullmatch(port_s) or not 0 < int(port_s) < 65536:
            raise InvalidReference(f"invalid reference {ref!r}: invalid port {port_s!r}",
                                   fix="ports are numbers from 1 to 65535")
        port = int(port_s)
    return host, port


class Reference(NamedTuple):
    """A parsed, fully-qualified package reference."""

    registry: str
    """``host[:port]`` exactly as written (IPv6 hosts keep their brackets)."""
    repository: str
    tag: str | None = None
    digest: str | None = None

    @classmethod
    def parse(cls, ref: str, *, default_registry: str | None = None) -> Reference:
        """Parse ``ref``; a name without a registry needs ``default_registry``."""
        original = ref
        if not ref.strip():
            raise InvalidReference("empty package reference",
                                   fix="give a reference like registry.example.com/org/pkg:v1.0.0")
        if not (ref.isascii() and ref.isprintable()) or " " in ref:
            bad = next(c for c in ref if not (c.isascii() and c.isprintable()) or c == " ")
            raise InvalidReference(
                f"invalid reference {original!r}: it contains {bad!r}; references are printable "
                "ASCII without spaces", fix="remove the character (a reference read from a file "
                "or a command often ends in a newline: strip it)")
        if ref.startswith(("http://", "https://")):
            raise InvalidReference(
                f"invalid reference {original!r}: references carry no URL scheme",
                fix="drop the scheme; choose plain HTTP or TLS with an ImageConfig tls.mode",
            )
        if _looks_like_a_file(ref):
            raise InvalidReference(f"{original!r} is not a package reference",
                                   fix=_qualify_fix(original))
        digest = None
        if "@" in ref:
            ref, digest = ref.rsplit("@", 1)
            if not _DIGEST_RE.fullmatch(digest):
                raise InvalidReference(f"invalid reference {original!r}: bad digest {digest!r}",
                                       fix="digests look like sha256:<64 hex characters>")
            algo, _, hexpart = digest.partition(":")
            if algo == "sha256" and not _HEX64.fullmatch(hexpart):
                raise InvalidReference(
                    f"invalid reference {original!r}: sha256 digest must be 64 lowercase hex")
        first, sep, rest = ref.partition("/")
        if sep and _is_registry(first):
            registry, remainder = first, rest
        else:
            if not default_registry:
                raise InvalidReference(
                    f"package reference {original!r} is not fully qualified: it names no registry",
                    cause="not-fully-qualified", fix=_qualify_fix(original),
                )
            registry, remainder = default_registry.rstrip("/"), ref
        tag = None
        last_slash = remainder.rfind("/")
        colon = remainder.rfind(":")
        if colon > last_slash:
            remainder, tag = remainder[:colon], remainder[colon + 1 :]
            if not _TAG_RE.fullmatch(tag):
                raise InvalidReference(f"invalid reference {original!r}: bad tag {tag!r}",
                                       fix="tags are up to 128 of [A-Za-z0-9_.-], not starting "
                                       "with . or -")
        _split_registry(registry, original)
        if not remainder or not _PATH_RE.fullmatch(remainder):
            raise InvalidReference(
                f"invalid reference {original!r}: repository path {remainder!r} is not valid",
                fix="repository paths are lowercase components of [a-z0-9] joined by . _ __ - "
                "and separated by /",
            )
        if len(registry) + 1 + len(remainder) > MAX_NAME_LENGTH:
            raise InvalidReference(f"invalid reference {original!r}: name longer than 255")
        if tag is None and digest is None:
            tag = "latest"
        return cls(registry=registry, repository=remainder, tag=tag, digest=digest)

    # --- derived views ---

    @property
    def host(self) -> str:
        """Host without port or IPv6 brackets."""
        return _split_registry(self.registry, str(self))[0]

    @property
    def port(self) -> int | None:
        return _split_registry(self.registry, str(self))[1]

    @property
    def api_registry(self) -> str:
        """Where the API lives (``docker.io`` is served by ``registry-1.docker.io``)."""
        return DOCKER_HUB_API if self.registry == DOCKER_HUB else self.registry

    @property
    def name(self) -> str:
        """``registry/repository`` with neither tag nor digest."""
        return f"{self.registry}/{self.repository}"

    @property
    def identifier(self) -> str:
        """What to ask the manifests endpoint for: the digest if pinned, else the tag."""
        return self.digest or self.tag or "latest"

    def with_digest(self, digest: str) -> Reference:
        return self._replace(digest=digest)

    def __str__(self) -> str:
        s = self.name
        if self.tag and not (self.digest and self.tag == "latest"):
            s += f":{self.tag}"
        if self.digest:
            s += f"@{self.digest}"
        return s


_FILE_SUFFIXES = (".yaml", ".yml", ".json", ".xpkg", ".tar", ".gz", ".tgz")


def _looks_like_a_file(ref: str) -> bool:
    return ref.startswith(("/", "./", "../", "~"))


def _qualify_fix(ref: str) -> str:
    """The fix for a reference without a registry: qualify it only when the result would be
    a valid reference; a file path is named as one."""
    if _looks_like_a_file(ref) or ref.lower().endswith(_FILE_SUFFIXES):
        return (f"{ref} looks like a file, and this takes a registry reference such as "
                "registry.example.com/org/pkg:v1.0.0; to publish a package file: crossfetch "
                f"push -f {ref} REGISTRY/REPOSITORY:TAG")
    suggestion = f"xpkg.crossplane.io/{ref}"
    try:
        Reference.parse(suggestion)
    except InvalidReference:
        return "write a full reference, e.g. registry.example.com/org/pkg:v1.0.0"
    return f"write the registry host, e.g. {suggestion}, or pass --default-registry HOST"


def parse(ref: str, *, default_registry: str | None = None) -> Reference:
    """Shorthand for :meth:`Reference.parse`."""
    return Reference.parse(ref, default_registry=default_registry)


def is_ip(host: str) -> bool:
    """True for an IPv4 or IPv6 address literal (without brackets)."""
    import ipaddress

    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def is_loopback(host: str) -> bool:
    """True for an address literal in 127/8 or ``::1`` (without brackets; a zone is ignored)."""
    import ipaddress

    try:
        return ipaddress.ip_address(host.split("%", 1)[0]).is_loopback
    except ValueError:
        return False


def is_localhost_name(host: str) -> bool:
    """True for ``localhost`` and ``*.localhost``, loopback names by RFC 6761."""
    h = host.lower().rstrip(".")
    return h == "localhost" or h.endswith(".localhost")


def is_loopback_registry(registry: str) -> bool:
    """True when ``registry`` (``host[:port]``, IPv6 in brackets) names this machine: a
    loopback address or a localhost name."""
    host = registry[1:registry.find("]")] if registry.startswith("[") \
        else registry.partition(":")[0]
    return is_loopback(host) or is_localhost_name(host)
