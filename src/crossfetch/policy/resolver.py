"""Decide, for one reference, where to go and how: the effective policy.

Precedence, highest first: command-line flags, ImageConfig objects, node files, defaults.
Each setting of an ImageConfig (rewrite, tls, authentication) is matched on its own, longest
prefix first, exactly as Crossplane matches them; rewrite is applied first and the other
settings are matched against the *rewritten* reference, since that is the registry we talk to.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Protocol

from ..errors import ConfigError
from ..reference import Reference
from .model import (
    AuthPolicy,
    ClientCert,
    Decision,
    Endpoint,
    Keychain,
    Source,
    TLSConfig,
    TLSMode,
)
from .objects import ImageConfig, ObjectSet, best_match

CA_BUNDLE_ENV = "CA_BUNDLE_PATH"


class NodePolicy(Protocol):
    """Node configuration (containerd hosts.toml, certs.d, registries.conf, daemon.json)."""

    def endpoints(self, resolved: Reference) -> list[Endpoint]:
        """Endpoints in try order (mirrors, then the upstream) for ``resolved``; an empty list
        when the node files say nothing about its registry."""

    def blocked(self, resolved: Reference) -> Source | None:
        """The rule that blocks ``resolved``, if any."""


class ClientCertLoader(Protocol):
    """Turns ``clientCertSecretRef`` (a ``kubernetes.io/tls`` Secret) into PEM files."""

    def __call__(self, secret_name: str, ic: ImageConfig) -> ClientCert: ...


class KeychainProvider(Protocol):
    """Builds the keychain for one resolved reference; ``pull_secret`` is the ImageConfig whose
    ``pullSecretRef`` matched it (longest prefix), if any."""

    def __call__(self, resolved: Reference, pull_secret: ImageConfig | None) -> Keychain | None:
        ...


@dataclass
class Policy:
    """The whole policy: objects from ``--config`` files, flags and node files."""

    objects: ObjectSet = field(default_factory=ObjectSet)
    ca_bundles: tuple[Path, ...] = ()
    """``--ca-bundle`` / ``CA_BUNDLE_PATH``: added to the system roots for every TLS endpoint."""
    ca_bundle_source: Source | None = None
    node: NodePolicy | None = None
    keychains: KeychainProvider | None = None
    allow_plain_http_credentials: bool = False
    """``--allow-plain-http-credentials``: the flag form of the opt-in."""
    client_cert_loader: ClientCertLoader | None = None

    @classmethod
    def load(
        cls,
        config_files: Sequence[str | Path] = (),
        *,
        ca_bundle: str | Path | None = None,
        env: dict[str, str] | None = None,
        **kw: object,
    ) -> Policy:
        """Build a policy from ``--config`` files and ``--ca-bundle`` (or ``CA_BUNDLE_PATH``)."""
        objects = ObjectSet()
        for f in config_files:
            objects.add_file(f)
        env = os.environ.copy() if env is None else env
        bundles: tuple[Path, ...] = ()
        source = None
        if ca_bundle:
            bundles, source = (Path(ca_bundle),), Source("flag", "--ca-bundle")
        elif env.get(CA_BUNDLE_ENV):
            bundles, source = (Path(env[CA_BUNDLE_ENV]),), Source("env", CA_BUNDLE_ENV)
        for b in bundles:
            _check_pem_file(b, source)
        return cls(objects=objects, ca_bundles=bundles, ca_bundle_source=source, **kw)  # type: ignore[arg-type]

    # --- decisions ---

    def rewrite(self, ref: Reference) -> tuple[Reference, Source | None]:
        """Apply the best-matching ``rewriteImage``."""
        hit = best_match(self.objects.image_configs, str(ref), "rewrite_prefix")
        if not hit:
            return ref, None
        ic, prefix = hit
        assert ic.rewrite_prefix is not None
        rewritten = ic.rewrite_prefix + str(ref)[len(prefix):]
        try:
            new = Reference.parse(rewritten)
        except ConfigError:
            raise
        except Exception as e:
            raise ConfigError(
                f"ImageConfig {ic.name} rewrites {ref} to {rewritten!r}, which is not a valid "
                f"reference: {e}", fix="fix spec.rewriteImage.prefix") from None
        return new, ic.source

    def tls_for(self, resolved: Reference) -> TLSConfig | None:
        """TLS settings an ImageConfig gives the resolved reference (``None``: none matches)."""
        hit = self._tls_settings(resolved)
        return hit[0] if hit else None

    def _tls_settings(self, resolved: Reference) -> tuple[TLSConfig, frozenset[str]] | None:
        """:meth:`tls_for` plus which settings (``mode``, ``ca``, ``client``) an ImageConfig
        actually set, so node settings it does not mention survive."""
        configs = self.objects.image_configs
        mode_hit = best_match(configs, str(resolved), "tls_mode")
        ca_hit = best_match(configs, str(resolved), "ca_ref")
        cert_hit = best_match(configs, str(resolved), "client_cert_secret")
        if not (mode_hit or ca_hit or cert_hit):
            return None
        mode = mode_hit[0].tls_mode if mode_hit else TLSMode.STRICT
        assert mode is not None
        ca_pem: tuple[str, ...] = ()
        if ca_hit:
            ic = ca_hit[0]
            assert ic.ca_ref is not None
            cm_name, key = ic.ca_ref
            cm = self.objects.config_maps.get(cm_name)
            if cm is None:
                raise ConfigError(
                    f"ImageConfig {ic.name} refers to ConfigMap {cm_name!r}, which is in none of "
                    "the --config files", fix=f"add the ConfigMap to a --config file, e.g. "
                    f"kubectl create configmap {cm_name} --from-file={key}=ca.crt "
                    "--dry-run=client -o yaml > ca.yaml")
            if key not in cm.data:
                raise ConfigError(
                    f"ConfigMap {cm_name} has no key {key!r} (keys: {sorted(cm.data)})",
                    fix="fix caBundleConfigMapRef.key")
            if "-----BEGIN CERTIFICATE-----" not in cm.data[key]:
                raise ConfigError(f"ConfigMap {cm_name} key {key!r} holds no PEM certificate",
                                  fix="put the CA certificate (PEM) under that key")
            ca_pem = (cm.data[key],)
        client = None
        if cert_hit:
            ic = cert_hit[0]
            assert ic.client_cert_secret is not None
            if self.client_cert_loader is None:
                raise ConfigError(f"ImageConfig {ic.name}: clientCertSecretRef is not supported "
                                  "by this build")
            client = self.client_cert_loader(ic.client_cert_secret, ic)
        decided_by = (mode_hit or ca_hit or cert_hit)
        assert decided_by is not None
        fields = frozenset(name for name, hit in (("mode", mode_hit), ("ca", ca_hit),
                                                   ("client", cert_hit)) if hit)
        return TLSConfig(mode=mode, ca_pem=ca_pem, client=client,
                         source=decided_by[0].source), fields

    def auth_for(self, resolved: Reference) -> AuthPolicy:
        """Credentials come from the ImageConfig whose ``pullSecretRef`` matches the
        *rewritten* reference (as in Crossplane), then the keychain's other sources."""
        configs = self.objects.image_configs
        secret_hit = best_match(configs, str(resolved), "pull_secret")
        keychain = self.keychains(resolved, secret_hit[0] if secret_hit else None) \
            if self.keychains else None
        hit = best_match(configs, str(resolved), "allow_plain_http_credentials")
        if self.allow_plain_http_credentials:
            return AuthPolicy(keychain, True, Source("flag", "--allow-plain-http-credentials"))
        if hit and hit[0].allow_plain_http_credentials:
            return AuthPolicy(keychain, True, hit[0].source)
        return AuthPolicy(keychain, False)

    def decide(self, ref: Reference, *, rewrite: bool = True) -> Decision:
        """The effective policy for ``ref``; ``rewrite=False`` skips ``rewriteImage`` (a push
        goes where the user said, never where pulls are rewritten to)."""
        resolved, rewrite_source = self.rewrite(ref) if rewrite else (ref, None)
        blocked = self.node.blocked(resolved) if self.node else None
        node_eps = self.node.endpoints(resolved) if self.node else []
        ic_tls = self._tls_settings(resolved)
        endpoints: list[Endpoint] = []
        upstream: Endpoint | None = None
        notes: list[str] = []
        for ep in node_eps:
            if ep.role == "upstream":
                upstream = ep
            else:
                endpoints.append(ep)
        if upstream is None:
            tls = ic_tls[0] if ic_tls else TLSConfig()
            upstream = Endpoint(url=f"{tls.scheme}://{resolved.api_registry}", role="upstream",
                                tls=tls, source=tls.source)
        elif ic_tls is not None:
            # An ImageConfig outranks node files, setting by setting.
            upstream, note = _override_tls(upstream, *ic_tls)
            notes.append(note)
        endpoints.append(upstream)
        if self.ca_bundles:
            endpoints = [replace(e, tls=replace(e.tls, ca_files=e.tls.ca_files + self.ca_bundles))
                         for e in endpoints]
        return Decision(reference=ref, resolved=resolved, endpoints=tuple(endpoints),
                        auth=self.auth_for(resolved), rewrite_source=rewrite_source,
                        blocked=blocked, notes=tuple(notes))


def _override_tls(upstream: Endpoint, ic: TLSConfig, fields: frozenset[str]
                  ) -> tuple[Endpoint, str]:
    """The node's upstream with the ImageConfig's TLS ``fields`` laid over it."""
    node = upstream.tls
    tls = TLSConfig(
        mode=ic.mode if "mode" in fields else node.mode,
        # An explicit mode is the whole answer on plain HTTP: no fallback beyond it.
        allow_http_fallback=False if "mode" in fields else node.allow_http_fallback,
        ca_files=() if "ca" in fields else node.ca_files,
        ca_pem=ic.ca_pem if "ca" in fields else node.ca_pem,
        client=ic.client if "client" in fields else node.client,
        source=ic.source)
    path = upstream.url.split("://", 1)[1][len(upstream.host):]
    note = (f"{ic.source} overrides {', '.join(sorted(fields))} of the upstream's TLS "
            f"from {node.source}")
    return replace(upstream, url=f"{tls.scheme}://{upstream.host}{path}", tls=tls), note


def _check_pem_file(path: Path, source: Source | None) -> None:
    """Crossplane refuses a CA bundle with no parsable certificate; so do we."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as e:
        raise ConfigError(f"cannot read CA bundle {path}: {e.strerror}",
                          fix=f"check the path given by {source}") from None
    if "-----BEGIN CERTIFICATE-----" not in text:
        raise ConfigError(f"CA bundle {path} holds no PEM certificate",
                          fix="give a file with one or more -----BEGIN CERTIFICATE----- blocks")
