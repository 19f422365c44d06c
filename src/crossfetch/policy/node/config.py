"""The merged node configuration: which node file decides each registry's endpoints."""

from __future__ import annotations

from pathlib import Path

from ...reference import DOCKER_HUB, Reference
from ..model import Endpoint, Source, TLSMode
from .certsd import CertsDirs
from .daemonjson import DaemonJson
from .hoststoml import find_host_dir, read_host_dir
from .registriesconf import RegistriesConf


class NodeConfig:
    """Every node file given or found, answering :class:`NodePolicy` questions."""

    def __init__(self, hosts_roots: list[Path] | None = None, certs: CertsDirs | None = None,
                 registries: RegistriesConf | None = None,
                 daemon: DaemonJson | None = None) -> None:
        self.hosts_roots: list[Path] = [] if hosts_roots is None else hosts_roots
        self.certs = CertsDirs([]) if certs is None else certs
        self.registries = registries
        self.daemon = daemon
        self._hosts_cache: dict[tuple[Path, str], list[Endpoint]] = {}

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
                tls = tls._replace(ca_files=tls.ca_files + extra,
                                   client=tls.client or entry.client,
                                   source=entry.source if tls.source.kind == "default"
                                   else tls.source)
        insecure = self.daemon.insecure_source(ep.host) if self.daemon else None
        if insecure is not None and tls.mode is TLSMode.STRICT:
            tls = tls._replace(mode=TLSMode.INSECURE, allow_http_fallback=True, source=insecure)
        if tls is ep.tls:
            return ep
        return ep._replace(tls=tls, source=ep.source if ep.source.kind != "default"
                           else tls.source)
