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
from dataclasses import dataclass, field, replace
from pathlib import Path

from ...errors import ConfigError
from ...reference import DOCKER_HUB, Reference
from ..model import Endpoint, Source, TLSMode
from ..resolver import NodePolicy
from .certsd import CertsDirs
from .daemonjson import DaemonJson, load_daemon_json
from .hoststoml import find_host_dir, read_host_dir
from .registriesconf import RegistriesConf, load_registries_conf

__all__ = ["SYSTEM_PATHS", "NodeConfig", "SystemPaths", "load_node_policy"]


@dataclass(frozen=True)
class SystemPaths:
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


@dataclass
class NodeConfig:
    """Every node file given or found, answering :class:`NodePolicy` questions."""

    hosts_roots: list[Path] = field(default_factory=list)
    certs: CertsDirs = field(default_factory=lambda: CertsDirs([]))
    registries: RegistriesConf | None = None
    daemon: DaemonJson | None = None
    _hosts_cache: dict[tuple[Path, str], list[Endpoint]] = field(default_factory=dict)

    def blocked(self, resolved: Reference) -> Source | None:
        return self.registries.blocked(resolved) if self.registries else None

    def endpoints(self, resolved: Reference) -> list[Endpoint]:
        eps = self._base(resolved)
        if not eps and (self.certs.for_host(resolved.api_registry) or (
                self.daemon and self.daemon.insecure_source(resolved.api_registry))):
            eps = [Endpoint(url=f"https://{resolved.api_registry}")]
        return [self._augment(e) for e in eps]

    def _base(self, resolved: Reference) -> list[Endpoint]:
        d = find_host_dir(self.hosts_roots, resolved.registry)
        if d is not None:
            key = (d, resolved.api_registry)
            if key not in self._hosts_cache:
                self._hosts_cache[key] = read_host_dir(d, resolved.api_registry)
            return list(self._hosts_cache[key])
        if self.registries is not None:
            eps = self.registries.endpoints(resolved)
            if eps:
                return eps
        if self.daemon is not None and resolved.registry == DOCKER_HUB:
            mirrors = self.daemon.mirror_endpoints(resolved.registry)
            if mirrors:
                return [*mirrors, Endpoint(url=f"https://{resolved.api_registry}")]
        return []

    def _augment(self, ep: Endpoint) -> Endpoint:
        tls = ep.tls
        if tls.mode is not TLSMode.DISABLED or tls.allow_http_fallback:
            entry = self.certs.for_host(ep.host)
            if entry is not None:
                extra = tuple(p for p in entry.ca_files if p not in tls.ca_files)
                tls = replace(tls, ca_files=tls.ca_files + extra,
                              client=tls.client or entry.client,
                              source=entry.source if tls.source.kind == "default" else tls.source)
        insecure = self.daemon.insecure_source(ep.host) if self.daemon else None
        if insecure is not None and tls.mode is TLSMode.STRICT:
            tls = replace(tls, mode=TLSMode.INSECURE, allow_http_fallback=True, source=insecure)
        if tls is ep.tls:
            return ep
        return replace(ep, tls=tls, source=ep.source if ep.source.kind != "default"
                       else tls.source)


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
    regs: RegistriesConf | None = None
    daemon: DaemonJson | None = None
    if registries_conf:
        regs = load_registries_conf(Path(registries_conf))
    if daemon_json:
        daemon = load_daemon_json(Path(daemon_json))
    if system:
        hosts_roots += [root / d for d in system_paths.hosts_dirs if (root / d).is_dir()]
        certs_roots += [(root / d, kind) for d, kind in system_paths.certs_dirs
                        if (root / d).is_dir()]
        if regs is None:
            regs = _system_registries_conf(root, system_paths)
        if daemon is None and (root / system_paths.daemon_json).is_file():
            daemon = load_daemon_json(root / system_paths.daemon_json)
    if not (hosts_roots or certs_roots or regs or daemon):
        return None
    return NodeConfig(hosts_roots=hosts_roots, certs=CertsDirs(certs_roots), registries=regs,
                      daemon=daemon)


def _system_registries_conf(root: Path, paths: SystemPaths) -> RegistriesConf | None:
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
