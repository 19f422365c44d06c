"""What makes a client use the bridge: Crossplane objects and containerd hosts.toml.

Kept small and isolated on purpose: when ``crossfetch.fixes`` grows one writer per format,
these functions become calls to it.
"""

from __future__ import annotations

from pathlib import PurePosixPath

from .. import fixes
from ..errors import UsageError
from .config import Route

CA_CONFIGMAP = "crossfetch-bridge-ca"
PULL_SECRET = "crossfetch-bridge-pull"  # noqa: S105 - a Secret's name
HOSTS_CA = "crossfetch-bridge-ca.crt"


def imageconfig_rewrite(route: Route, bridge: str) -> str:
    """An ImageConfig sending ``route``'s upstream prefix to the bridge.

    ``spec.rewriteImage.prefix`` replaces the matched prefix (Crossplane v1.20+,
    ``apis/pkg/v1beta1/image_config_types.go``, applied in ``internal/xpkg/config.go``); the
    longest matching prefix wins, so one ImageConfig per route is enough.
    """
    return "\n".join([
        "apiVersion: pkg.crossplane.io/v1beta1", "kind: ImageConfig", "metadata:",
        f"  name: {fixes.object_name(route.prefix, 'bridge')}", "spec:", "  matchImages:",
        "  - type: Prefix", f"    prefix: {route.upstream}", "  rewriteImage:",
        f"    prefix: {bridge}/{route.prefix}", ""])


def crossplane(ca_pem: str, routes: list[Route], bridge: str, *, htpasswd: bool) -> str:
    """The CA ConfigMap, the Helm values and one rewriting ImageConfig per route."""
    parts = [
        f"# Make Crossplane pull through the crossfetch bridge at {bridge}.\n"
        "# 1. The bridge's CA, added to Crossplane's CA bundle (Helm registryCaBundleConfig):\n"
        + fixes.configmap_yaml(CA_CONFIGMAP, ca_pem),
        "# 2. Helm values for Crossplane (or: "
        + fixes.helm_ca_command(CA_CONFIGMAP) + "):\n"
        + "".join(f"#   {line}\n" for line in fixes.helm_ca_values(CA_CONFIGMAP).splitlines())
        + "# 3. One ImageConfig per route (rewriteImage, Crossplane v1.20 or later):\n"
        + imageconfig_rewrite(routes[0], bridge),
        *(imageconfig_rewrite(r, bridge) for r in routes[1:]),
    ]
    if htpasswd:
        parts.append(
            "# 4. The bridge asks for a password (--htpasswd): give Crossplane one with\n"
            f"#   kubectl -n crossplane-system create secret docker-registry {PULL_SECRET} "
            f"--docker-server={bridge} --docker-username=<user> --docker-password=<password>\n"
            + fixes.imageconfig_yaml(bridge, pull_secret=PULL_SECRET,
                                     name=fixes.object_name(bridge, "bridge-auth")))
    return "---\n".join(parts)


def hosts_toml(routes: list[Route], bridge: str, ca_path: str) -> dict[str, str]:
    """``{upstream registry: hosts.toml}`` for containerd's ``config_path``.

    containerd keeps the image's repository path when it asks a mirror, so a route can serve
    the kubelet only when it maps a whole registry (``PREFIX=HOST/``); the mirror URL then
    carries the prefix with ``override_path`` (containerd ``docs/hosts.md``).
    """
    out: dict[str, str] = {}
    for r in routes:
        if r.path or r.registry in out:
            continue
        mirror = f"https://{bridge}/v2/{r.prefix.rstrip('/')}"
        out[r.registry] = "\n".join([
            f"# {r.registry} through the crossfetch bridge (route {r}).",
            f'server = "https://{r.registry}"', "", f'[host."{mirror}"]',
            '  capabilities = ["pull", "resolve"]', f'  ca = "{ca_path}"',
            "  override_path = true", ""])
    if not out:
        raise UsageError("no route maps a whole registry, and containerd keeps the image's "
                         "repository path when it uses a mirror",
                         fix="add a route for the registry root, e.g. --route "
                         "gitea-all/=gitea.cnoe.localtest.me:8443/")
    return out


def host_dir_name(registry: str) -> str:
    """The certs.d directory name for ``registry``; refuses names that would leave it."""
    if not registry or registry.startswith(".") or "/" in registry or \
            PurePosixPath(registry).name != registry:
        raise UsageError(f"cannot make a hosts.toml directory for {registry!r}")
    return registry
