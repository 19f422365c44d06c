"""Decide, for one reference, where to go and how: the effective policy.

Precedence, highest first: command-line flags, ImageConfig objects, node files, defaults.
Each setting of an ImageConfig (rewrite, tls, authentication) is matched on its own, longest
prefix first, exactly as Crossplane matches them; rewrite is applied first and the other
settings are matched against the *rewritten* reference, since that is the registry we talk to.
Prefixes are matched against the reference *as written*: Crossplane never expands a default
registry before matching (crossplane internal/xpkg/config.go ImageConfigStore.bestMatch on
``pkg.GetSource()``, v1.18.0 .. v2.2.x; crossplane-runtime pkg/xpkg/client.go from v2.3.0).

With :attr:`Policy.crossplane` set, :meth:`Policy.decide` answers as that Crossplane release
would (``pull --as-crossplane``): HTTPS to the (rewritten) registry, plain HTTP only where
go-containerregistry's host rule allows it, the system roots plus ``--ca-bundle`` only, the
ImageConfig settings the release has, and nothing from node files or the ``tls`` block.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from ..errors import ConfigError, PolicyRefused
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

if TYPE_CHECKING:
    from ..crossplane.profile import Profile

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


class Policy:
    """The whole policy: objects from ``--config`` files, flags and node files.

    - ``ca_bundles``: ``--ca-bundle`` / ``CA_BUNDLE_PATH``, added to the system roots for
      every TLS endpoint (``ca_bundle_source`` says which);
    - ``allow_plain_http_credentials``: ``--allow-plain-http-credentials``, the flag form of
      the opt-in;
    - ``crossplane``: decide as this Crossplane release would (see the module docstring).
    """

    def __init__(self, objects: ObjectSet | None = None, ca_bundles: tuple[Path, ...] = (),
                 ca_bundle_source: Source | None = None, node: NodePolicy | None = None,
                 keychains: KeychainProvider | None = None,
                 allow_plain_http_credentials: bool = False,
                 client_cert_loader: ClientCertLoader | None = None,
                 crossplane: Profile | None = None) -> None:
        self.objects = ObjectSet() if objects is None else objects
        self.ca_bundles = ca_bundles
        self.ca_bundle_source = ca_bundle_source
        self.node = node
        self.keychains = keychains
        self.allow_plain_http_credentials = allow_plain_http_credentials
        self.client_cert_loader = client_cert_loader
        self.crossplane = crossplane

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

    def rewrite(self, ref: Reference, written: str | None = None
                ) -> tuple[Reference, Source | None]:
        """Apply the best-matching ``rewriteImage`` (matched against ``written``, the
        reference as the user wrote it, when given)."""
        resolved, source, _ = self._rewrite(ref, written or str(ref))
        return resolved, source

    def _rewrite(self, ref: Reference, text: str) -> tuple[Reference, Source | None, str]:
        """:meth:`rewrite` plus the text the other settings are matched against: the
        rewritten string, or ``text`` itself when nothing rewrites it."""
        hit = best_match(self.objects.image_configs, text, "rewrite_prefix")
        if not hit:
            return ref, None, text
        ic, prefix = hit
        assert ic.rewrite_prefix is not None
        rewritten = ic.rewrite_prefix + text[len(prefix):]
        try:
            new = Reference.parse(rewritten)
        except ConfigError:
            raise
        except Exception as e:
            raise ConfigError(
                f"ImageConfig {ic.name} rewrites {text} to {rewritten!r}, which is not a valid "
                f"reference: {e}", fix="fix spec.rewriteImage.prefix") from None
        return new, ic.source, rewritten

    def tls_for(self, resolved: Reference) -> TLSConfig | None:
        """TLS settings an ImageConfig gives the resolved reference (``None``: none matches)."""
        hit = self._tls_settings(resolved, str(resolved))
        return hit[0] if hit else None

    def _tls_settings(self, resolved: Reference, text: str
                      ) -> tuple[TLSConfig, frozenset[str]] | None:
        """:meth:`tls_for` plus which settings (``mode``, ``ca``, ``client``) an ImageConfig
        actually set, so node settings it does not mention survive."""
        configs = self.objects.image_configs
        mode_hit = best_match(configs, text, "tls_mode")
        ca_hit = best_match(configs, text, "ca_ref")
        cert_hit = best_match(configs, text, "client_cert_secret")
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

    def auth_for(self, resolved: Reference, text: str | None = None) -> AuthPolicy:
        """Credentials come from the ImageConfig whose ``pullSecretRef`` matches the
        *rewritten* reference (as in Crossplane), then the keychain's other sources."""
        configs = self.objects.image_configs
        text = text or str(resolved)
        secret_hit = best_match(configs, text, "pull_secret")
        if self.crossplane is not None and not self.crossplane.pull_secret_ref:
            secret_hit = None
        keychain = self.keychains(resolved, secret_hit[0] if secret_hit else None) \
            if self.keychains else None
        hit = best_match(configs, text, "allow_plain_http_credentials")
        if self.allow_plain_http_credentials:
            return AuthPolicy(keychain, True, Source("flag", "--allow-plain-http-credentials"))
        if hit and hit[0].allow_plain_http_credentials:
            return AuthPolicy(keychain, True, hit[0].source)
        return AuthPolicy(keychain, False)

    def decide(self, ref: Reference, written: str | None = None, *,
               rewrite: bool = True) -> Decision:
        """The effective policy for ``ref``. ImageConfig prefixes are matched against
        ``written`` (the reference as the user wrote it) when given, else ``str(ref)``;
        ``rewrite=False`` skips ``rewriteImage`` (a push goes where the user said, never where
        pulls are rewritten to)."""
        text = (written or "").strip() or str(ref)
        if self.crossplane is not None:
            return self._decide_as_crossplane(ref, text, self.crossplane)
        resolved, rewrite_source, resolved_text = self._rewrite(ref, text) if rewrite \
            else (ref, None, text)
        blocked = self.node.blocked(resolved) if self.node else None
        node_eps = self.node.endpoints(resolved) if self.node else []
        ic_tls = self._tls_settings(resolved, resolved_text)
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
            endpoints = [e._replace(tls=e.tls._replace(ca_files=e.tls.ca_files + self.ca_bundles))
                         for e in endpoints]
        return Decision(reference=ref, resolved=resolved, endpoints=tuple(endpoints),
                        auth=self.auth_for(resolved, resolved_text),
                        rewrite_source=rewrite_source, blocked=blocked, notes=tuple(notes))

    def _decide_as_crossplane(self, ref: Reference, text: str, prof: Profile) -> Decision:
        """What Crossplane ``prof`` does: rewrite (where it exists), then HTTPS to the
        registry with the system roots plus ``--ca-bundle``, and plain HTTP only where
        go-containerregistry's ``Scheme()`` allows it. Node files, the ``tls`` block and client
        certificates do not exist for Crossplane; what was ignored is noted."""
        from ..crossplane.profile import admits_package_name, plain_http_rule

        if not admits_package_name(prof, text):
            raise PolicyRefused(
                f"Crossplane {prof.version} refuses the package name {text!r}: spec.package must "
                "be fully qualified (a registry host with a dot, a repository, and a tag or "
                "digest; CEL rule on Provider/Configuration/Function since v2.0.0)",
                cause="not-fully-qualified",
                fix="name the registry by a host with a dot or an IP address, e.g. "
                "127.0.0.1:5000/… instead of localhost:5000/…, and give a tag or digest")
        configs = self.objects.image_configs
        notes: list[str] = []
        if prof.rewrite_image:
            resolved, rewrite_source, resolved_text = self._rewrite(ref, text)
        else:
            resolved, rewrite_source, resolved_text = ref, None, text
            hit = best_match(configs, text, "rewrite_prefix")
            if hit:
                notes.append(f"{hit[0].source}: rewriteImage ignored: Crossplane {prof.version} "
                             "has no rewriteImage (added in v1.20.0)")
        for attr, what in (("tls_mode", "tls.mode"), ("ca_ref", "tls.caBundleConfigMapRef"),
                           ("client_cert_secret", "tls.clientCertSecretRef")):
            hit = best_match(configs, resolved_text, attr)
            if hit:
                notes.append(f"{hit[0].source}: {what} ignored: no Crossplane release has an "
                             "ImageConfig tls block (it is crossfetch's extension)")
        rule = plain_http_rule(prof, resolved.registry)
        how = f"HTTPS, then plain HTTP ({resolved.registry} is {rule})" if rule else "HTTPS only"
        source = Source("crossplane", f"{prof.version} (go-containerregistry "
                        f"{prof.ggcr_version}: {how})")
        tls = TLSConfig(mode=TLSMode.STRICT, ca_files=self.ca_bundles,
                        allow_http_fallback=rule is not None, source=source)
        upstream = Endpoint(url=f"https://{resolved.api_registry}", role="upstream", tls=tls,
                            source=source)
        return Decision(reference=ref, resolved=resolved, endpoints=(upstream,),
                        auth=self.auth_for(resolved, resolved_text),
                        rewrite_source=rewrite_source, notes=tuple(notes))


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
    note = (f"{ic.source} overrides {', '.join(sorted(fields))} of the upstream's TLS "
            f"from {node.source}")
    return upstream._replace(url=f"{tls.scheme}://{upstream.host}{upstream.path}", tls=tls), note


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
