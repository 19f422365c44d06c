"""The one containerd ``hosts.toml`` writer (containerd ``docs/hosts.md``: top-level fields
configure ``server``, each ``[host."URL"]`` table a mirror tried first, in file order)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

from .names import CA_KEY, CERTS_D, containerd_hosts_dir, toml_str

CONFIG_PATH_NOTE = (
    'containerd reads it only when its config sets config_path = "/etc/containerd/certs.d" '
    'under [plugins."io.containerd.grpc.v1.cri".registry]; restart containerd after editing'
)


class Host(NamedTuple):
    """One host's settings; ``comments`` say what the format cannot express for it."""

    url: str
    """``scheme://host[:port][/path]``: http makes containerd speak plain HTTP, https TLS."""
    capabilities: tuple[str, ...] | None = None
    """``None`` leaves containerd's default (all of pull, resolve, push)."""
    ca: tuple[str, ...] = ()
    client: tuple[tuple[str, str], ...] = ()
    """(certificate, key) file pairs for mutual TLS."""
    skip_verify: bool | None = None
    override_path: bool = False
    headers: tuple[tuple[str, str], ...] = ()
    comments: tuple[str, ...] = ()


def _settings(h: Host, indent: str) -> list[str]:
    out: list[str] = []
    if h.capabilities is not None:
        out.append(f"{indent}capabilities = {json.dumps(list(h.capabilities))}")
    if len(h.ca) == 1:
        out.append(f"{indent}ca = {toml_str(h.ca[0])}")
    elif h.ca:
        out.append(f"{indent}ca = [{', '.join(toml_str(c) for c in h.ca)}]")
    if h.client:
        pairs = ", ".join(f"[{toml_str(c)}, {toml_str(k)}]" for c, k in h.client)
        out.append(f"{indent}client = [{pairs}]")
    if h.skip_verify is not None:
        out.append(f"{indent}skip_verify = {'true' if h.skip_verify else 'false'}")
    if h.override_path:
        out.append(f"{indent}override_path = true")
    out += [f"{indent}# {c}" for c in h.comments]
    return out


def hosts_toml(server: Host, mirrors: Sequence[Host] = (), *,
               comments: Sequence[str] = ()) -> str:
    """A ``hosts.toml``: ``server`` with its settings at the top, then each mirror's table."""
    out = [f"# {c}" for c in comments]
    out.append(f"server = {toml_str(server.url)}")
    out += _settings(server, "")
    if server.headers:
        out.append("[header]")
        out += [f"  {toml_str(k)} = {toml_str(v)}" for k, v in server.headers]
    for m in mirrors:
        out += ["", f"[host.{toml_str(m.url)}]"]
        out += _settings(m, "  ")
        if m.headers:
            out.append(f"  [host.{toml_str(m.url)}.header]")
            out += [f"    {toml_str(k)} = {toml_str(v)}" for k, v in m.headers]
    return "\n".join(out) + "\n"


def for_registry(registry: str, *, plain_http: bool = False, ca: bool = False,
                 skip_verify: bool = False, server: str | None = None,
                 certs_d: str = CERTS_D) -> str:
    """The node fix for one registry (``host[:port]``): plain HTTP, or TLS with the CA saved as
    ``ca.crt`` next to the file in containerd's ``certs_d``. ``server`` overrides the host the
    node talks to (Docker Hub's API host)."""
    scheme = "http" if plain_http else "https"
    directory = containerd_hosts_dir(registry, certs_d)
    url = f"{scheme}://{server or registry}"
    # The settings go in a [host] table: containerd 1.6 (Debian 12) ignored them at the top
    # level (tests/integration/test_fixes_applied.py applies this file in a real containerd).
    return hosts_toml(Host(url), [Host(url, capabilities=("pull", "resolve"),
                                       ca=(f"{directory}/{CA_KEY}",) if ca else (),
                                       skip_verify=True if skip_verify else None)],
                      comments=[f"{directory}/hosts.toml"])


def check_host_dir_name(registry: str, root: str | Path = CERTS_D) -> str:
    """``registry`` as a certs.d directory name (the layout of containerd, Docker and
    containers), refusing any name that is not a registry ``host[:port]`` and so could lead
    outside ``root`` (``..``, separators, absolute paths). Pure: reads no file."""
    from ..errors import InvalidReference, UsageError
    from ..reference import _split_registry

    try:
        if registry in ("", ".", "..") or "/" in registry or "\\" in registry:
            raise InvalidReference(registry)
        _split_registry(registry, registry)
    except InvalidReference:
        raise UsageError(f"{registry!r} is not a registry host[:port], so it cannot name a "
                         f"directory under {root}",
                         fix="give the registry as HOST[:PORT], e.g. reg.example:8443") from None
    return registry


def host_dir(root: Path, registry: str) -> Path:
    """``root/<registry>`` to write into: :func:`check_host_dir_name`, and the resolved path
    (symlinks followed) must still be under ``root``."""
    from ..errors import UsageError

    target = root / check_host_dir_name(registry, root)
    if root.resolve() not in target.resolve().parents:
        raise UsageError(f"{target} is outside {root}", fix="give a plain HOST[:PORT]")
    return target
