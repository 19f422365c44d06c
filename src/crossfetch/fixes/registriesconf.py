"""The one containers ``registries.conf`` (v2) writer (containers-registries.conf(5):
``[[registry]]`` with ``prefix``, ``location``, ``insecure``, ``blocked`` and its
``[[registry.mirror]]`` entries)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .names import toml_str


@dataclass(frozen=True)
class Mirror:
    location: str
    insecure: bool = False
    digest_only: bool = False
    """``pull-from-mirror = "digest-only"``: the mirror cannot resolve tags."""


@dataclass(frozen=True)
class Registry:
    prefix: str
    location: str
    insecure: bool = False
    blocked: bool = False
    mirrors: tuple[Mirror, ...] = ()


def registries_conf(entry: Registry, *, comments: Sequence[str] = ()) -> str:
    """One ``[[registry]]`` entry; ``comments`` say what the format cannot express."""
    out = ["[[registry]]", f"prefix = {toml_str(entry.prefix)}",
           f"location = {toml_str(entry.location)}"]
    if entry.insecure:
        out.append("insecure = true")
    if entry.blocked:
        out.append("blocked = true")
    out += [f"# {c}" for c in comments]
    for m in entry.mirrors:
        out += ["", "[[registry.mirror]]", f"location = {toml_str(m.location)}"]
        if m.insecure:
            out.append("insecure = true")
        if m.digest_only:
            out.append('pull-from-mirror = "digest-only"')
    return "\n".join(out) + "\n"
