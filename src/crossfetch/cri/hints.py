"""Turn what the node's runtime says into fixes: image names as containerd stores them, and the
``hosts.toml`` entry that would let the node pull from a registry."""

from __future__ import annotations

import grp
import os

from ..fixes.hoststoml import CONFIG_PATH_NOTE, for_registry
from ..reference import DOCKER_HUB, Reference, is_loopback_registry


def parse_runtime_ref(ref: str) -> Reference:
    """Parse ``ref`` the way the runtime does: a name without a registry means Docker Hub."""
    r = Reference.parse(ref, default_registry=DOCKER_HUB)
    if r.registry in ("index.docker.io", "registry-1.docker.io"):
        r = Reference(DOCKER_HUB, r.repository, r.tag, r.digest)
    if r.registry == DOCKER_HUB and "/" not in r.repository:
        r = Reference(DOCKER_HUB, f"library/{r.repository}", r.tag, r.digest)
    return r


def containerd_name(ref: str | Reference) -> str:
    """The image record name containerd's CRI plugin stores for ``ref``.

    ``registry/repo:tag``, or ``registry/repo@digest`` when a digest is given (containerd drops
    the tag of a ``tag@digest`` reference).
    """
    r = parse_runtime_ref(ref) if isinstance(ref, str) else ref
    return f"{r.name}@{r.digest}" if r.digest else f"{r.name}:{r.tag or 'latest'}"


def hosts_toml_snippet(registry: str, *, plain_http: bool = False, ca: bool = False) -> str:
    """A ``hosts.toml`` for ``registry`` (``host[:port]``) that a node admin can paste."""
    server = "registry-1.docker.io" if registry == DOCKER_HUB else None
    return for_registry(registry, plain_http=plain_http, ca=ca, server=server).rstrip("\n")


def pull_refused_fix(registry: str, message: str) -> str:
    """The fix for a pull the runtime refused, chosen from the runtime's own message."""
    low = message.lower()
    if "server gave http response to https client" in low:
        why = (
            f"the registry {registry} speaks plain HTTP and the node only tries HTTPS; "
            "if plain HTTP is intended, allow it for this registry on the node"
        )
        snippet = hosts_toml_snippet(registry, plain_http=True)
    elif "400 bad request" in low and is_loopback_registry(registry):
        # containerd speaks plain HTTP to loopback registries that have no hosts.toml, and a
        # TLS registry answers that with 400.
        why = (
            f"containerd sends plain HTTP to the loopback registry {registry} unless a "
            "hosts.toml says https; if the registry speaks TLS, declare it"
        )
        snippet = hosts_toml_snippet(registry, ca=True)
    elif "x509" in low or "certificate" in low or "tls:" in low:
        why = (
            f"the node does not trust the certificate of {registry}; put the registry's CA "
            "next to a hosts.toml that names it"
        )
        snippet = hosts_toml_snippet(registry, ca=True)
    elif any(
        s in low
        for s in (
            "401 unauthorized",
            "unauthorized",
            "authorization failed",
            "403 forbidden",
            "denied",
        )
    ):
        return (
            f"the registry {registry} wants credentials: pass them (a pull secret, "
            "--creds, or a docker config.json entry) so they reach the runtime as AuthConfig"
        )
    elif "not found" in low:
        return "check the repository and tag exist in the registry (skopeo inspect docker://REF)"
    else:
        why = f"make sure the node can reach {registry}, and that its hosts.toml is right"
        snippet = hosts_toml_snippet(registry)
    return f"{why}:\n{snippet}\n({CONFIG_PATH_NOTE}); or fetch with --via direct"


def socket_missing_fix(path: str) -> str:
    return (
        f"no socket at {path}: run crossfetch on the node, or mount the socket into its Pod "
        "(hostPath volume, type: Socket, e.g. /run/containerd/containerd.sock), or point "
        "--runtime-endpoint at the runtime's socket (k3s: "
        "unix:///run/k3s/containerd/containerd.sock)"
    )


def permission_fix(path: str) -> str:
    try:
        gid = os.stat(path).st_gid
    except OSError:
        return f"run crossfetch as root, or as a member of the group that owns {path}"
    try:
        group = grp.getgrgid(gid).gr_name
    except KeyError:
        group = str(gid)
    return (
        f"run crossfetch as root (in a Pod: securityContext.runAsUser: 0), or give its user the "
        f"socket's group {group} (gid {gid}): usermod -aG {group} USER, or in a Pod "
        f"securityContext.supplementalGroups: [{gid}]"
    )


CRI_DISABLED_FIX = (
    "containerd's config (/etc/containerd/config.toml) disables the CRI plugin, typically with "
    'disabled_plugins = ["cri"] (the default of Docker\'s containerd.io package): remove "cri" '
    "from that list and restart containerd (systemctl restart containerd); or use --via direct"
)


def layer_missing_fix(ref: str | None) -> str:
    target = ref or "IMAGE"
    return (
        f"the runtime lists the image but no longer has this blob (garbage-collected, or "
        f"containerd runs with discard_unpacked_layers = true): remove and re-pull it on the "
        f"node (crictl rmi {target} && crictl pull {target}), or fetch with --via direct"
    )
