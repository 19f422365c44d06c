"""``pull --as-crossplane``: fetch exactly as a given Crossplane release would.

Not a second pipeline: :func:`emulation_policy` turns a :class:`~crossfetch.policy.resolver.Policy`
into Crossplane's decision mode (``Policy.crossplane``), and the ordinary
:class:`~crossfetch.client.Client` pulls with it. What that mode keeps, per release:

- the reference as written is checked against v2's fully-qualified-name rule, and ImageConfig
  prefixes are matched against it (no default registry is added for matching);
- ``rewriteImage`` (v1.20+) and ``pullSecretRef`` (v1.18+), matched longest prefix first;
- HTTPS with the system roots plus ``--ca-bundle`` / ``CA_BUNDLE_PATH`` (Crossplane's
  ``--ca-bundle-path``), TLS 1.2 or newer (crossplane-runtime pkg/xpkg/fetch.go WithCustomCA);
- plain HTTP only for the hosts go-containerregistry's ``Scheme()`` lets it try (HTTPS first);
- credentials only from the matched pull secret and ``--pull-secret`` files (a package's
  ``spec.packagePullSecrets``): never Docker's config.json or ``--username``.

What it drops: node files (hosts.toml, certs.d, registries.conf, daemon.json), the ImageConfig
``tls`` block (no Crossplane release has it) and client certificates. Known difference: for a
registry named without a port, go-containerregistry tries ``http://host`` (port 80) after
``https://host`` (port 443) fails; crossfetch falls back only where port 443 itself answers in
plain HTTP. Credentials are still never sent over plain HTTP without
``--allow-plain-http-credentials`` (Crossplane would send them). The package is read by
crossfetch's rules, which are stricter than some releases' (``Profile.base_layer_rule``):
crossfetch also honours the ``io.crossplane.xpkg`` config label and refuses two base layers,
where v2.2+ takes the first annotated layer and no release reads the label (an unlabelled,
unannotated image is flattened by both).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError, CrossfetchError
from ..policy.credentials import SourceKeychain
from ..policy.dockerconfig import AuthsSource, load_pull_secret_file, secret_source

if TYPE_CHECKING:
    from ..policy.model import Decision, Keychain
    from ..policy.objects import ImageConfig, ObjectSet
    from ..policy.resolver import Policy
    from ..reference import Reference
    from .profile import Profile


class CrossplaneKeychains:
    """Credentials as Crossplane's k8schain sees them: the ImageConfig ``pullSecretRef`` that
    matched the rewritten reference, then the package's pull secrets (``--pull-secret``)."""

    def __init__(self, objects: ObjectSet, pull_secret_files: Sequence[str] = ()) -> None:
        self.objects = objects
        self.files = [load_pull_secret_file(f) for f in pull_secret_files]
        self._secrets: dict[str, AuthsSource] = {}

    def __call__(self, resolved: Reference, pull_secret: ImageConfig | None) -> Keychain | None:
        sources: list[AuthsSource] = []
        if pull_secret is not None and pull_secret.pull_secret:
            sources.append(self._secret(pull_secret))
        sources += self.files
        return SourceKeychain(resolved.repository, tuple(sources)) if sources else None

    def _secret(self, ic: ImageConfig) -> AuthsSource:
        name = ic.pull_secret
        assert name is not None
        if name not in self._secrets:
            secret = self.objects.secrets.get(name)
            if secret is None:
                raise ConfigError(
                    f"ImageConfig {ic.name} names pullSecretRef {name!r}, which is in none of "
                    "the --config files", fix="add the Secret to a --config file")
            self._secrets[name] = secret_source(secret, f"pullSecretRef of ImageConfig {ic.name}")
        return self._secrets[name]


def emulation_policy(policy: Policy, profile: Profile, *,
                     pull_secret_files: Sequence[str] = ()) -> Policy:
    """``policy`` in Crossplane ``profile``'s decision mode (same ImageConfigs and CA bundle,
    no node files, no client certificates, Crossplane's credential sources)."""
    emulated = copy.copy(policy)
    emulated.crossplane, emulated.node, emulated.client_cert_loader = profile, None, None
    emulated.keychains = CrossplaneKeychains(policy.objects, pull_secret_files)
    return emulated


def default_registry(profile: Profile, given: str | None) -> str | None:
    """The default registry a short name gets: ``--default-registry`` (Crossplane's
    ``--registry``, v1 only) or the release's own default; none in v2."""
    if profile.default_registry is None:
        return None
    return given or profile.default_registry


def in_crossplane_terms(err: CrossfetchError, profile: Profile,
                        decision: Decision | None = None) -> CrossfetchError:
    """``err`` restated as Crossplane ``profile``'s failure, with a fix that release can use."""
    from urllib.parse import urlsplit

    registry = decision.resolved.registry if decision else (
        (urlsplit(err.url).netloc if err.url else "") or err.host or "")
    message = f"Crossplane {profile.version} would not pull"
    if decision is not None:
        message += f" {decision.reference}"
    if err.cause == "plain-http":
        message += f": {plain_http_refusal(registry, profile)}"
    else:
        message += f": {err.message}"
    fix = crossplane_fix(err, profile, registry)
    out = copy.copy(err)
    out.args = (message,)
    out.message = message
    out.fix = fix if fix is not None else err.fix
    out.detail = {**err.detail, "crossplane": profile.version}
    return out


def plain_http_refusal(registry: str, profile: Profile) -> str:
    """Why ``profile`` does not pull from ``registry``, found speaking plain HTTP."""
    from .profile import plain_http_summary

    return (f"{registry} speaks plain HTTP (HTTPS was tried first), and "
            f"{plain_http_summary(profile)}")


def crossplane_fix(err: CrossfetchError, profile: Profile, registry: str) -> str | None:
    """The fix for ``err`` written for ``profile``: the steps of :mod:`crossfetch.fixes` for
    Crossplane, the cluster and the registry (never crossfetch-only options), led for plain
    HTTP by the route go-containerregistry's rule leaves open."""
    from ..fixes import Audience, Step, causes, for_error
    from ..fixes.fix import Fix
    from .profile import plain_http_allowed

    speaks_http = plain_http_allowed(profile, registry) if registry else None
    steps: list[Step] = []
    cp = f"Crossplane {profile.version}"
    if err.cause == "plain-http" and not speaks_http:
        port = causes.port_of(registry) or "<port>"  # "[fd00::5]" names none
        to = f"{causes.CLUSTER_IP}:{port}/"
        title = (f"{cp} speaks plain HTTP only to the hosts in its go-containerregistry's rule "
                 "(RFC 1918 addresses among them): reach the registry by its Service's "
                 f"ClusterIP ({causes.CLUSTER_IP_HOW})")
        steps.append(causes.rewrite_route(
            registry, to, profile, with_rewrite=title + ", keeping the package name:",
            without=title + f"; {cp} has no rewriteImage, so write spec.package as "
            f"{to}<repository>:<tag>"))
    fix = for_error(err, profile, crossplane_speaks_http=speaks_http)
    if err.cause == "unauthorized" and registry:
        fix = causes.unauthorized(registry, target=profile)
    if fix is not None:
        steps += [s for s in fix.steps
                  if s.audience in (Audience.CROSSPLANE, Audience.CLUSTER, Audience.REGISTRY)
                  or s.body.startswith("crossfetch trust")]  # how to get the CA file
    return Fix(tuple(steps)).text() if steps else None


def pull_summary(profile: Profile, decision: Decision, effective_url: str | None
                 ) -> dict[str, Any]:
    """What ``pull --as-crossplane`` adds to its result: the release, the scheme it ended up
    on (and why it may use plain HTTP), and what of the policy that release ignores."""
    from .profile import plain_http_rule

    rule = plain_http_rule(profile, decision.resolved.registry)
    scheme = effective_url.split("://", 1)[0] if effective_url else None
    return {"version": profile.version, "ggcr": profile.ggcr_version, "scheme": scheme,
            "triedHttpsFirst": scheme == "http", "plainHttpRule": rule,
            "ignored": list(decision.notes)}
