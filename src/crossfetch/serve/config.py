"""Routes and settings of the bridge, parsed and validated before anything listens."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import UsageError
from ..reference import Reference

# A repository path as the distribution spec defines it (components of [a-z0-9] joined by
# separators, separated by /); a route prefix is one or more such components.
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
NAME_RE = re.compile(rf"^{_COMPONENT}(?:/{_COMPONENT})*$")
TAG_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
DIGEST_RE = re.compile(r"^sha256:[a-f0-9]{64}$")
MAX_NAME = 255

_SIZE_UNITS = {"": 1, "b": 1, "k": 1000, "kb": 1000, "m": 1000**2, "mb": 1000**2,
               "g": 1000**3, "gb": 1000**3, "t": 1000**4, "tb": 1000**4, "ki": 1024,
               "kib": 1024, "mi": 1024**2, "mib": 1024**2, "gi": 1024**3, "gib": 1024**3,
               "ti": 1024**4, "tib": 1024**4}
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_size(text: str) -> int:
    """``10GiB``, ``500M``, ``1000000`` → bytes."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*", text)
    unit = (m.group(2).lower() if m else "")
    if not m or unit not in _SIZE_UNITS:
        raise UsageError(f"invalid size {text!r}", fix="write a size like 20GiB, 500M or 1000000")
    return int(float(m.group(1)) * _SIZE_UNITS[unit])


def parse_duration(text: str) -> float:
    """``90s``, ``5m``, ``1h30m``, ``0`` → seconds."""
    t = text.strip()
    if t == "0":
        return 0.0
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)", t)
    if not parts or "".join(n + u for n, u in parts) != t:
        raise UsageError(f"invalid duration {text!r}", fix="write a duration like 30s, 5m or 1h")
    return sum(float(n) * _DURATION_UNITS[u] for n, u in parts)


@dataclass(frozen=True)
class Route:
    """``PREFIX=UPSTREAM_PREFIX``: ``BRIDGE/PREFIX<rest>`` is ``UPSTREAM_PREFIX<rest>``."""

    prefix: str
    """Bridge repository prefix, ending in ``/`` (``gitea/``)."""
    registry: str
    """Upstream ``host[:port]``."""
    path: str
    """Upstream repository prefix, empty or ending in ``/`` (``giteaadmin/``)."""

    @classmethod
    def parse(cls, text: str) -> Route:
        prefix, sep, upstream = text.partition("=")
        fix = ("write --route PREFIX=UPSTREAM_PREFIX, e.g. "
               "--route gitea/=gitea.cnoe.localtest.me:8443/giteaadmin/")
        if not sep or not prefix or not upstream:
            raise UsageError(f"invalid route {text!r}", fix=fix)
        prefix = prefix.strip("/") + "/"
        if not NAME_RE.match(prefix[:-1]):
            raise UsageError(f"invalid route prefix {prefix!r} in {text!r}: it must be "
                             "lowercase repository path components", fix=fix)
        if "://" in upstream:
            raise UsageError(f"invalid route upstream {upstream!r}: write host[:port]/path "
                             "without a scheme; plain HTTP or TLS is chosen by policy "
                             "(--config ImageConfig tls.mode)", fix=fix)
        registry, _, path = upstream.partition("/")
        path = path.strip("/")
        # Validate the host and path by parsing a reference under them.
        Reference.parse(f"{registry}/{path + '/' if path else ''}x:probe")
        return cls(prefix=prefix, registry=registry, path=path + "/" if path else "")

    @property
    def upstream(self) -> str:
        return f"{self.registry}/{self.path}"

    def upstream_name(self, rest: str) -> str:
        """The upstream ``registry/repository`` for the bridge name ``PREFIX<rest>``."""
        return f"{self.registry}/{self.path}{rest}"

    def __str__(self) -> str:
        return f"{self.prefix}={self.upstream}"


@dataclass
class ServeConfig:
    """Everything ``crossfetch serve`` was told."""

    routes: list[Route]
    listen_host: str = "127.0.0.1"
    listen_port: int = 5443
    hostnames: list[str] = field(default_factory=list)
    state_dir: Path = Path(".")
    cache_dir: Path = Path(".")
    tls_cert: Path | None = None
    tls_key: Path | None = None
    htpasswd: Path | None = None
    cache_max_size: int | None = None
    tag_ttl: float = 300.0
    upstream_threads: int = 16
    workers: int = 1
    allow_redirect_hosts: tuple[str, ...] = ()
    shutdown_timeout: float = 30.0

    def match(self, name: str) -> tuple[Route, str] | None:
        """The route serving bridge repository ``name`` (longest prefix), and the rest."""
        best: tuple[Route, str] | None = None
        for r in self.routes:
            if name.startswith(r.prefix) and len(name) > len(r.prefix) and (
                    best is None or len(r.prefix) > len(best[0].prefix)):
                best = (r, name[len(r.prefix):])
        return best


def parse_listen(text: str) -> tuple[str, int]:
    """``ADDR:PORT`` (``[::1]:5443``, ``0.0.0.0:443``, ``:5443``) → (host, port)."""
    m = re.fullmatch(r"(?:\[([0-9a-fA-F:.]+)\]|([^:\[\]]*)):(\d{1,5})", text.strip())
    if not m or int(m.group(3)) > 65535:
        raise UsageError(f"invalid --listen {text!r}", fix="write ADDR:PORT, e.g. 0.0.0.0:5443")
    return (m.group(1) or m.group(2) or "0.0.0.0"), int(m.group(3))  # noqa: S104
