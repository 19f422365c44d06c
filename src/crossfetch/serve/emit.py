"""What makes a client use the bridge: Crossplane objects and containerd hosts.toml, written
with :mod:`crossfetch.fixes`' one writer per format."""

from __future__ import annotations

from ..errors import UsageError
from ..fixes import configmap, helm, hoststoml, imageconfig
from ..fixes.names import CROSSPLANE_NAMESPACE, object_name
from .config import Route

CA_CONFIGMAP = "crossfetch-bridge-ca"
PULL_SECRET = "crossfetch-bridge-pull"  # noqa: S105 - a Secret's name
HOSTS_CA = "crossfetch-bridge-ca.crt"


def crossplane(ca_pem: str, routes: list[Route], bridge: str, *, htpasswd: bool) -> str:
    """The CA ConfigMap, the Helm values and one rewriting ImageConfig per route.

    ``spec.rewriteImage.prefix`` replaces the matched prefix (Crossplane v1.20+,
    ``apis/pkg/v1beta1/image_config_types.go``, applied in ``internal/xpkg/config.go``); the
    longest matching prefix wins, so one ImageConfig per route is enough.
    """
    rewrites = [imageconfig.imageconfig(r.upstream, name=object_name(r.prefix, "bridge"),
                                        rewrite=f"{bridge}/{r.prefix}") for r in routes]
    values = "".join(f"#   {line}\n" for line in helm.ca_values(CA_CONFIGMAP).splitlines())
    parts = [
        f"# Make Crossplane pull through the crossfetch bridge at {bridge}.\n"
        "# 1. The bridge's CA, added to Crossplane's CA bundle (Helm registryCaBundleConfig):\n"
        + configmap.ca_configmap_yaml(CA_CONFIGMAP, ca_pem),
        "# 2. Helm values for Crossplane (or: " + helm.ca_upgrade_command(CA_CONFIGMAP)
        + "):\n" + values
        + "# 3. One ImageConfig per route (rewriteImage, Crossplane v1.20 or later):\n"
        + imageconfig.to_yaml(*rewrites),
    ]
    if htpasswd:
        parts.append(
            "# 4. The bridge asks for a password (--htpasswd): give Crossplane one with\n"
            f"#   kubectl -n {CROSSPLANE_NAMESPACE} create secret docker-registry "
            f"{PULL_SECRET} --docker-server={bridge} --docker-username=<user> "
            "--docker-password=<password>\n"
            + imageconfig.imageconfig_yaml(f"{bridge}/", pull_secret=PULL_SECRET,
                                           name=object_name(bridge, "bridge-auth")))
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
        mirror = hoststoml.Host(f"https://{bridge}/v2/{r.prefix.rstrip('/')}",
                                capabilities=("pull", "resolve"), ca=(ca_path,),
                                override_path=True)
        out[r.registry] = hoststoml.hosts_toml(
            hoststoml.Host(f"https://{r.registry}"), [mirror],
            comments=[f"{r.registry} through the crossfetch bridge (route {r})."])
    if not out:
        raise UsageError("no route maps a whole registry, and containerd keeps the image's "
                         "repository path when it uses a mirror",
                         fix="add a route for the registry root, e.g. --route "
                         "gitea-all/=gitea.cnoe.localtest.me:8443/")
    return out


def host_dir_name(registry: str) -> str:
    """The certs.d directory name for ``registry``; refuses names that would leave it (the
    one check, :func:`crossfetch.fixes.hoststoml.check_host_dir_name`)."""
    return hoststoml.check_host_dir_name(registry)
