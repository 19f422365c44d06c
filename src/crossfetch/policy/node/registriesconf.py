"""containers ``registries.conf`` (v2, and the v1 ``insecure`` / ``block`` lists).

``[[registry]]`` entries match references by prefix (``host[/path]`` at a path boundary, or
``*.domain``); the longest prefix wins. ``location`` rewrites the matched prefix, mirrors are
tried in order before the primary location and only for pulls. ``insecure`` allows plain HTTP
(after an HTTPS attempt) and unverified TLS; ``blocked`` refuses the reference.

``pull-from-mirror``: ``all`` (default) lets a mirror resolve tags; ``digest-only`` (also the
legacy ``mirror-by-digest-only = true``) never resolves a tag there, though content already
pinned to a digest may still come from it; ``tag-only`` uses the mirror only for references
written with a tag.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple

from ...errors import ConfigError
from ...reference import DOCKER_HUB, DOCKER_HUB_API, Reference
from ..model import PULL, RESOLVE, Endpoint, Source, TLSConfig, TLSMode
from ._files import TomlLines, load_toml

KIND = "registries.conf"
PULL_FROM_MIRROR = ("all", "digest-only", "tag-only")


class Mirror(NamedTuple):
    location: str
    insecure: bool
    pull_from_mirror: str
    source: Source


class RegistryEntry(NamedTuple):
    prefix: str
    location: str
    insecure: bool
    blocked: bool
    mirrors: tuple[Mirror, ...]
    source: Source

    def matches(self, name: str) -> bool:
        """Does ``name`` (``registry/repository``) fall under this entry's prefix?"""
        if self.prefix.startswith("*."):
            registry = name.split("/", 1)[0]
            return registry.endswith(self.prefix[1:])
        if not name.startswith(self.prefix):
            return False
        # A path boundary: "reg/foo" covers "reg/foo/bar" but not "reg/foobar" or "reg:5000".
        return name[len(self.prefix):][:1] in ("", "/")

    def rewrite(self, name: str, location: str) -> tuple[str, str]:
        """(registry, repository) of ``name`` at ``location`` (prefix replaced)."""
        if self.prefix.startswith("*."):
            new = (location or name.split("/", 1)[0]) + "/" + name.split("/", 1)[1]
        else:
            new = location + name[len(self.prefix):]
        registry, _, repo = new.partition("/")
        return registry, repo


class RegistriesConf:
    """The entries of ``registries.conf`` and its drop-ins, in file order."""

    def __init__(self, entries: list[RegistryEntry]) -> None:
        self.entries = entries

    def match(self, resolved: Reference) -> RegistryEntry | None:
        """The longest-prefix entry for ``resolved``; ties go to the later file (drop-ins
        override)."""
        best: RegistryEntry | None = None
        for e in self.entries:
            if e.matches(resolved.name) and (best is None or len(e.prefix) >= len(best.prefix)):
                best = e
        return best

    def blocked(self, resolved: Reference) -> Source | None:
        e = self.match(resolved)
        return e.source if e is not None and e.blocked else None

    def endpoints(self, resolved: Reference) -> list[Endpoint]:
        """Mirrors in order, then the primary location; ``[]`` when no entry matches."""
        e = self.match(resolved)
        if e is None:
            return []
        out: list[Endpoint] = []
        for m in e.mirrors:
            if m.pull_from_mirror == "tag-only" and resolved.digest:
                continue
            caps = frozenset({PULL}) if m.pull_from_mirror == "digest-only" \
                else frozenset({PULL, RESOLVE})
            out.append(_endpoint(e, resolved, m.location, m.insecure, "mirror", caps, m.source))
        up = _endpoint(e, resolved, e.location, e.insecure, "upstream", None, e.source)
        out.append(up)
        return out

    def merge(self, other: RegistriesConf) -> None:
        """Add a drop-in's entries; an entry with the same prefix replaces the earlier one."""
        prefixes = {e.prefix for e in other.entries}
        self.entries = [e for e in self.entries if e.prefix not in prefixes] + other.entries


def _endpoint(e: RegistryEntry, resolved: Reference, location: str, insecure: bool, role: str,
              caps: frozenset[str] | None, source: Source) -> Endpoint:
    registry, repo = e.rewrite(resolved.name, location)
    api = DOCKER_HUB_API if registry == DOCKER_HUB else registry
    tls = TLSConfig(mode=TLSMode.INSECURE if insecure else TLSMode.STRICT,
                    allow_http_fallback=insecure, source=source)
    kw: dict[str, Any] = {"capabilities": caps} if caps is not None else {}
    return Endpoint(url=f"https://{api}", role=role, tls=tls, source=source,
                    repository=repo if (repo != resolved.repository) else None, **kw)


def load_registries_conf(path: Path) -> RegistriesConf:
    """Parse one file (v2 ``[[registry]]`` tables, or v1 ``[registries.*]`` lists)."""
    text, data = load_toml(path, "containers registries.conf")
    lines = TomlLines(text)
    entries: list[RegistryEntry] = []
    raw = data.get("registry") or []
    if not isinstance(raw, list):
        raise ConfigError("registry must be an array of tables", file=str(path),
                          fix="write each entry as [[registry]]")
    mirror_idx = 0
    for i, reg in enumerate(raw):
        line = lines.header(r"registry", i)
        if not isinstance(reg, dict):
            raise ConfigError("each [[registry]] must be a table", file=str(path), line=line)
        entry, used = _entry(reg, path, line, lines, mirror_idx)
        mirror_idx += used
        entries.append(entry)
    v1 = data.get("registries")
    if isinstance(v1, dict):
        if entries:
            raise ConfigError("mixes the v1 [registries.*] tables with v2 [[registry]] entries",
                              file=str(path), line=lines.header(r"registries\.\w+"),
                              fix="convert the v1 lists to [[registry]] entries")
        entries += _v1(v1, path, lines)
    return RegistriesConf(entries)


def _str(reg: dict[str, Any], key: str, path: Path, line: int | None) -> str:
    v = reg.get(key, "")
    if not isinstance(v, str):
        raise ConfigError(f"{key} must be a string", file=str(path), line=line)
    return v


def _bool(reg: dict[str, Any], key: str, path: Path, line: int | None) -> bool:
    v = reg.get(key, False)
    if not isinstance(v, bool):
        raise ConfigError(f"{key} must be true or false", file=str(path), line=line,
                          fix=f"write {key} = true")
    return v


def _check_location(value: str, key: str, path: Path, line: int | None) -> str:
    if "://" in value:
        raise ConfigError(f"{key} {value!r} must not have a scheme", file=str(path), line=line,
                          fix=f'drop the scheme: {key} = "{value.split("://", 1)[1]}"; '
                          "use insecure = true for plain HTTP")
    return value.rstrip("/")


def _entry(reg: dict[str, Any], path: Path, line: int | None, lines: TomlLines,
           mirror_idx: int) -> tuple[RegistryEntry, int]:
    def at(key: str) -> int | None:
        return lines.key(key, line) or line

    src = Source(KIND, str(path), line)
    location = _check_location(_str(reg, "location", path, at("location")), "location", path,
                               at("location"))
    prefix = _str(reg, "prefix", path, at("prefix")).rstrip("/") or location
    if not prefix:
        raise ConfigError("[[registry]] needs a prefix or a location", file=str(path),
                          line=line, fix='add location = "registry.example.com"')
    if prefix.startswith("*.") and location and "*" in location:
        raise ConfigError("location must not contain a wildcard", file=str(path),
                          line=at("location"))
    if not location and not prefix.startswith("*."):
        location = prefix
    digest_only = _bool(reg, "mirror-by-digest-only", path, at("mirror-by-digest-only"))
    mirrors: list[Mirror] = []
    raw = reg.get("mirror") or []
    if not isinstance(raw, list):
        raise ConfigError("mirror must be an array of tables", file=str(path), line=line,
                          fix="write each mirror as [[registry.mirror]]")
    for j, m in enumerate(raw):
        mline = lines.header(r"registry\.mirror", mirror_idx + j) or line
        if not isinstance(m, dict):
            raise ConfigError("each [[registry.mirror]] must be a table", file=str(path),
                              line=mline)
        mloc = _check_location(_str(m, "location", path, mline), "location", path, mline)
        if not mloc:
            raise ConfigError("[[registry.mirror]] needs a location", file=str(path),
                              line=mline, fix='add location = "mirror.example.com:5000"')
        pfm = m.get("pull-from-mirror", "digest-only" if digest_only else "all")
        if pfm not in PULL_FROM_MIRROR:
            raise ConfigError(f"unknown pull-from-mirror {pfm!r}", file=str(path),
                              line=lines.key("pull-from-mirror", mline) or mline,
                              fix="use all, digest-only or tag-only")
        mirrors.append(Mirror(mloc, _bool(m, "insecure", path, mline), str(pfm),
                              Source(KIND, str(path), mline)))
    entry = RegistryEntry(prefix=prefix, location=location,
                          insecure=_bool(reg, "insecure", path, at("insecure")),
                          blocked=_bool(reg, "blocked", path, at("blocked")),
                          mirrors=tuple(mirrors), source=src)
    return entry, len(raw)


def _v1(v1: dict[str, Any], path: Path, lines: TomlLines) -> list[RegistryEntry]:
    """v1: ``[registries.insecure] registries = [...]`` and ``[registries.block]``."""
    flags: dict[str, dict[str, Any]] = {}
    for table, key in (("insecure", "insecure"), ("block", "blocked")):
        values = (v1.get(table) or {}).get("registries") or []
        line = lines.header(rf"registries\.{table}")
        for host in values:
            if not isinstance(host, str):
                raise ConfigError(f"registries.{table} entries must be strings",
                                  file=str(path), line=line)
            d = flags.setdefault(host, {"line": line})
            d[key] = True
    return [RegistryEntry(prefix=h, location=h, insecure=bool(d.get("insecure")),
                          blocked=bool(d.get("blocked")), mirrors=(),
                          source=Source(KIND, str(path), d["line"])) for h, d in flags.items()]
