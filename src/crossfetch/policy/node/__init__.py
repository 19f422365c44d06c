"""The node's own registry configuration, mapped onto the one policy model.

Which file decides the endpoints of a registry, highest first:

1. a containerd host directory for it (``hosts.toml``, or only certificate files);
2. else the longest-prefix ``[[registry]]`` of ``registries.conf``;
3. else Docker ``daemon.json`` ``registry-mirrors`` (Docker Hub only);
4. else the registry itself over HTTPS.

Then, for every endpoint host, ``certs.d`` adds CA files (and a client pair where none was
given) and ``daemon.json`` ``insecure-registries`` allows unverified TLS and the safe HTTP
fallback. ``blocked`` comes from ``registries.conf`` whatever decided the endpoints.
Explicit paths are read before the standard system paths; ImageConfig objects and flags
outrank all of this (see :mod:`crossfetch.policy.resolver`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from ...errors import ConfigError

if TYPE_CHECKING:
    from ..resolver import NodePolicy
    from .config import NodeConfig
    from .registriesconf import RegistriesConf

__all__ = ["SYSTEM_PATHS", "NodeConfig", "SystemPaths", "load_node_policy"]


class SystemPaths(NamedTuple):
    """The standard node paths read when they exist (relative to ``root``)."""

    hosts_dirs: tuple[str, ...] = (
        "etc/containerd/certs.d",
        # k3s and RKE2 generate their containerd hosts.toml files here.
        "var/lib/rancher/k3s/agent/etc/containerd/certs.d",
        "var/lib/rancher/rke2/agent/etc/containerd/certs.d",
    )
    certs_dirs: tuple[tuple[str, str], ...] = (
        ("etc/docker/certs.d", "certs.d"),
        ("etc/containers/certs.d", "containers-certs.d"),
    )
    registries_conf: str = "etc/containers/registries.conf"
    registries_conf_d: str = "etc/containers/registries.conf.d"
    daemon_json: str = "etc/docker/daemon.json"


SYSTEM_PATHS = SystemPaths()


def _existing_dir(p: str, flag: str) -> Path:
    path = Path(p)
    if not path.is_dir():
        raise ConfigError(f"{flag} {p} is not a directory", file=p,
                          fix=f"give an existing directory to {flag}")
    return path


def load_node_policy(*, hosts_dirs: Sequence[str] = (), certs_dirs: Sequence[str] = (),
                     registries_conf: str | None = None, daemon_json: str | None = None,
                     system: bool = True, system_root: str | Path = "/",
                     system_paths: SystemPaths = SYSTEM_PATHS) -> NodePolicy | None:
    """The node's registry configuration as one :class:`NodePolicy` (``None``: nothing).

    Explicit directories are searched before the system ones; an explicit
    ``registries_conf`` or ``daemon_json`` replaces the system file. With ``system=False``
    only explicit paths are read. ``system_root`` relocates the system paths (for tests).
    """
    root = Path(system_root)
    hosts_roots = [_existing_dir(d, "--hosts-dir") for d in hosts_dirs]
    certs_roots = [(_existing_dir(d, "--certs-dir"), "certs.d") for d in certs_dirs]
    regs_path = Path(registries_conf) if registries_conf else None
    daemon_path = Path(daemon_json) if daemon_json else None
    system_regs = False
    if system:
        hosts_roots += [root / d for d in system_paths.hosts_dirs if (root / d).is_dir()]
        certs_roots += [(root / d, kind) for d, kind in system_paths.certs_dirs
                        if (root / d).is_dir()]
        system_regs = regs_path is None and (
            (root / system_paths.registries_conf).is_file()
            or (root / system_paths.registries_conf_d).is_dir())
        if daemon_path is None and (root / system_paths.daemon_json).is_file():
            daemon_path = root / system_paths.daemon_json
    if not (hosts_roots or certs_roots or regs_path or daemon_path or system_regs):
        return None  # nothing to read: the readers (and tomllib) are never imported
    regs = None
    if regs_path:
        from .registriesconf import load_registries_conf

        regs = load_registries_conf(regs_path)
    if system_regs:
        regs = _system_registries_conf(root, system_paths)
    daemon = None
    if daemon_path:
        from .daemonjson import load_daemon_json

        daemon = load_daemon_json(daemon_path)
    if not (hosts_roots or certs_roots or regs or daemon):
        return None  # e.g. a registries.conf with only search registries: nothing to apply
    from .certsd import CertsDirs
    from .config import NodeConfig

    return NodeConfig(hosts_roots=hosts_roots, certs=CertsDirs(certs_roots), registries=regs,
                      daemon=daemon)


def _system_registries_conf(root: Path, paths: SystemPaths) -> RegistriesConf | None:
    from .registriesconf import load_registries_conf

    main = root / paths.registries_conf
    regs = load_registries_conf(main) if main.is_file() else None
    drop_dir = root / paths.registries_conf_d
    if drop_dir.is_dir():
        for f in sorted(drop_dir.glob("*.conf")):
            extra = load_registries_conf(f)
            if regs is None:
                regs = extra
            else:
                regs.merge(extra)
    if regs is not None and not regs.entries:
        return None
    return regs


def __getattr__(name: str) -> Any:
    if name == "NodeConfig":  # imported on demand, with the readers
        from .config import NodeConfig

        return NodeConfig
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
