"""A fix as data: steps, each for one audience, rendered as paste-ready text at the edge."""

from __future__ import annotations

import enum
from typing import Any, NamedTuple, Protocol


class Target(Protocol):
    """What a fix needs to know about the Crossplane version it is written for
    (``crossfetch.crossplane.profile.Profile`` satisfies it)."""

    @property
    def version(self) -> str: ...
    @property
    def image_config(self) -> bool: ...
    @property
    def rewrite_image(self) -> bool: ...
    @property
    def pull_secret_ref(self) -> bool: ...
    @property
    def plain_http_local_dot_local(self) -> bool: ...


class Audience(enum.StrEnum):
    """Who applies a step. A ``crossplane`` step names only what the targeted version has."""

    CROSSPLANE = "crossplane"
    """Crossplane's package manager: Helm values, its flags, ImageConfig fields it ships."""
    CROSSFETCH = "crossfetch"
    """crossfetch only (flags, and ImageConfig fields Crossplane never shipped)."""
    NODE = "node"
    """The node's container runtime, which pulls a Function's or Provider's runtime image."""
    CLUSTER = "cluster"
    """Cluster plumbing: DNS, NetworkPolicy, Services."""
    REGISTRY = "registry"
    """The registry itself (its certificate, its content)."""


class Step(NamedTuple):
    """One thing to do: a one-line ``title`` and paste-ready ``body`` (commands, YAML, TOML)."""

    audience: Audience
    title: str
    body: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"audience": self.audience.value, "title": self.title, "body": self.body}


class Fix(NamedTuple):
    """Steps in the order to try them; :meth:`text` is what ``fix:`` prints."""

    steps: tuple[Step, ...]

    def text(self) -> str:
        """Every step: its title as a ``#`` comment, then its body."""
        out: list[str] = []
        for s in self.steps:
            out += [f"# {line}" if line else "#" for line in s.title.splitlines()]
            if s.body:
                out.append(s.body.rstrip("\n"))
        return "\n".join(out) + "\n"

    def __str__(self) -> str:
        return self.text()

    def for_audience(self, audience: Audience) -> tuple[Step, ...]:
        return tuple(s for s in self.steps if s.audience is audience)

    def to_dict(self) -> list[dict[str, Any]]:
        return [s.to_dict() for s in self.steps]


def crossplane_label(target: Target | None) -> str:
    """How a step for Crossplane names its version: ``Crossplane v2.3.4`` or ``Crossplane``."""
    return f"Crossplane {target.version}" if target is not None else "Crossplane"


CROSSFETCH_ONLY = ("crossfetch only (Crossplane never shipped this ImageConfig field: keep it in "
                   "a --config file; a cluster refuses or drops it)")
"""The label every crossfetch-only ImageConfig setting carries."""
