"""Docker ``daemon.json``: ``insecure-registries`` (``host[:port]`` or CIDR) and
``registry-mirrors`` (Docker Hub only, as in Docker).

An insecure registry may be reached without certificate verification and over plain HTTP;
crossfetch still tries HTTPS first and falls back only when the server answers in HTTP.
CIDR entries match registries written as IP literals (crossfetch does not resolve names
while deciding policy).
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
from pathlib import Path
from typing import NamedTuple

from ...errors import ConfigError
from ...reference import DOCKER_HUB
from ..model import PULL, RESOLVE, Endpoint, Source, TLSConfig, TLSMode
from ._files import read_text

KIND = "daemon.json"
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class InsecureEntry(NamedTuple):
    value: str
    host: str | None
    network: Network | None
    source: Source


class DaemonJson(NamedTuple):
    path: Path
    insecure: tuple[InsecureEntry, ...]
    mirrors: tuple[tuple[str, Source], ...]

    def insecure_source(self, registry: str) -> Source | None:
        """The ``insecure-registries`` entry covering ``registry`` (``host[:port]``)."""
        host = _strip_port(registry)
        ip = None
        with contextlib.suppress(ValueError):  # a name, not an IP literal
            ip = ipaddress.ip_address(host.strip("[]"))
        for e in self.insecure:
            if e.host is not None and e.host in (registry, registry.lower()):
                return e.source
            if e.network is not None and ip is not None and ip.version == e.network.version \
                    and ip in e.network:
                return e.source
        return None

    def mirror_endpoints(self, registry: str) -> list[Endpoint]:
        """``registry-mirrors`` apply to Docker Hub only."""
        if registry != DOCKER_HUB:
            return []
        return [Endpoint(url=url, role="mirror", capabilities=frozenset({PULL, RESOLVE}),
                         tls=TLSConfig(mode=TLSMode.DISABLED if url.startswith("http://")
                                       else TLSMode.STRICT, source=src), source=src)
                for url, src in self.mirrors]


def _strip_port(registry: str) -> str:
    if registry.startswith("["):
        return registry[: registry.find("]") + 1]
    return registry.rpartition(":")[0] if ":" in registry else registry


def _line_of(text: str, value: str) -> int | None:
    needle = json.dumps(value)
    idx = text.find(needle)
    return text.count("\n", 0, idx) + 1 if idx >= 0 else None


def load_daemon_json(path: Path) -> DaemonJson:
    text = read_text(path, "Docker daemon.json", "check the --daemon-json path")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise ConfigError(f"invalid JSON in Docker daemon.json: {e.msg}", file=str(path),
                          line=e.lineno, fix="fix the JSON syntax at that line") from None
    if not isinstance(data, dict):
        raise ConfigError("daemon.json must be a JSON object", file=str(path), line=1)
    insecure: list[InsecureEntry] = []
    raw = data.get("insecure-registries") or []
    if not isinstance(raw, list) or not all(isinstance(v, str) for v in raw):
        raise ConfigError("insecure-registries must be a list of strings", file=str(path),
                          line=_line_of(text, "insecure-registries"),
                          fix='write "insecure-registries": ["10.0.0.0/8", "reg.local:5000"]')
    for value in raw:
        src = Source(KIND, str(path), _line_of(text, value))
        entry = value.split("://", 1)[-1].rstrip("/")
        if "/" in entry:
            try:
                net = ipaddress.ip_network(entry, strict=False)
            except ValueError:
                raise ConfigError(f"insecure-registries entry {value!r} is neither host[:port] "
                                  "nor a CIDR", file=str(path), line=src.line,
                                  fix="write host:port (reg.local:5000) or a CIDR "
                                  "(10.0.0.0/8)") from None
            insecure.append(InsecureEntry(value, None, net, src))
        else:
            insecure.append(InsecureEntry(value, entry.lower(), None, src))
    mirrors: list[tuple[str, Source]] = []
    for value in data.get("registry-mirrors") or []:
        if not isinstance(value, str) or "://" not in value:
            raise ConfigError(f"registry-mirrors entry {value!r} is not a URL", file=str(path),
                              line=_line_of(text, str(value)),
                              fix='write "registry-mirrors": ["https://mirror.example"]')
        mirrors.append((value.rstrip("/"), Source(KIND, str(path), _line_of(text, value))))
    return DaemonJson(path, tuple(insecure), tuple(mirrors))
