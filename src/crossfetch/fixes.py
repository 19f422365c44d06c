"""Ready-to-paste fixes: the snippets errors and ``doctor`` print."""

from __future__ import annotations

import re


def object_name(registry: str, suffix: str = "") -> str:
    """A valid Kubernetes object name derived from a registry host."""
    base = re.sub(r"[^a-z0-9-]+", "-", registry.lower()).strip("-")[:50] or "registry"
    return f"{base}-{suffix}" if suffix else base


def imageconfig_yaml(registry: str, *, mode: str | None = None,
                     ca_configmap: tuple[str, str] | None = None,
                     pull_secret: str | None = None, name: str | None = None) -> str:
    """An ImageConfig matching ``registry/`` with the given ``tls`` and auth settings."""
    lines = [
        "apiVersion: pkg.crossplane.io/v1beta1",
        "kind: ImageConfig",
        "metadata:",
        f"  name: {name or object_name(registry)}",
        "spec:",
        "  matchImages:",
        "  - type: Prefix",
        f"    prefix: {registry}/",
        "  registry:",
    ]
    if pull_secret:
        lines += ["    authentication:", "      pullSecretRef:", f"        name: {pull_secret}"]
    if mode or ca_configmap:
        lines.append("    tls:")
        if mode:
            lines.append(f"      mode: {mode}")
        if ca_configmap:
            lines += ["      caBundleConfigMapRef:", f"        name: {ca_configmap[0]}",
                      f"        key: {ca_configmap[1]}"]
    return "\n".join(lines) + "\n"


def hosts_toml(registry: str, *, scheme: str = "https", ca_path: str | None = None,
               skip_verify: bool = False) -> str:
    """containerd ``/etc/containerd/certs.d/<registry>/hosts.toml`` for the node runtime."""
    lines = [f'server = "{scheme}://{registry}"', "", f'[host."{scheme}://{registry}"]',
             '  capabilities = ["pull", "resolve"]']
    if ca_path:
        lines.append(f'  ca = "{ca_path}"')
    if skip_verify:
        lines.append("  skip_verify = true")
    return "\n".join(lines) + "\n"


# --- trust and doctor snippets (appended by the doctor/trust work) ---------------------------

CROSSPLANE_NAMESPACE = "crossplane-system"
CA_KEY = "ca.crt"


def configmap_yaml(name: str, pem: str, *, key: str = CA_KEY,
                   namespace: str = CROSSPLANE_NAMESPACE) -> str:
    """A ConfigMap holding a PEM CA bundle under ``key`` (for ``registryCaBundleConfig`` and
    ImageConfig ``caBundleConfigMapRef``)."""
    body = "\n".join(f"    {line}" for line in pem.strip().splitlines())
    return (f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n"
            f"  namespace: {namespace}\ndata:\n  {key}: |\n{body}\n")


def kubectl_configmap_command(name: str, ca_file: str, *, key: str = CA_KEY,
                              namespace: str = CROSSPLANE_NAMESPACE) -> str:
    """``kubectl create configmap`` for a CA file."""
    return f"kubectl -n {namespace} create configmap {name} --from-file={key}={ca_file}"


def helm_ca_values(name: str, *, key: str = CA_KEY) -> str:
    """Crossplane Helm values that mount the CA ConfigMap as its extra CA bundle."""
    return f"registryCaBundleConfig:\n  name: {name}\n  key: {key}\n"


def helm_ca_command(name: str, *, key: str = CA_KEY,
                    namespace: str = CROSSPLANE_NAMESPACE) -> str:
    """The ``helm upgrade`` that applies :func:`helm_ca_values` to an installed Crossplane."""
    return (f"helm upgrade crossplane crossplane-stable/crossplane -n {namespace} "
            f"--reuse-values --set registryCaBundleConfig.name={name} "
            f"--set registryCaBundleConfig.key={key}")


def containerd_hosts_dir(registry: str) -> str:
    """Where containerd looks for ``registry``'s ``hosts.toml`` (with ``config_path`` set)."""
    return f"/etc/containerd/certs.d/{registry}"


def coredns_rewrite(host: str, target: str = "<registry-service>.<namespace>.svc.cluster.local"
                    ) -> str:
    """A CoreDNS ``rewrite`` line sending ``host`` to an in-cluster Service name."""
    return (f"# kubectl -n kube-system edit configmap coredns   (inside the `.:53 {{` block)\n"
            f"rewrite name {host} {target}\n"
            f"# then: kubectl -n kube-system rollout restart deployment coredns")


def host_aliases_patch(host: str, ip: str = "<ingress-or-registry-IP>",
                       namespace: str = CROSSPLANE_NAMESPACE,
                       deployment: str = "crossplane") -> str:
    """A ``kubectl patch`` adding a pod ``hostAliases`` entry to the Crossplane Deployment."""
    patch = ('{"spec":{"template":{"spec":{"hostAliases":[{"ip":"' + ip
             + '","hostnames":["' + host + '"]}]}}}}')
    return f"kubectl -n {namespace} patch deployment {deployment} --type merge -p '{patch}'"


def pull_secret_commands(registry: str, name: str | None = None,
                         namespace: str = CROSSPLANE_NAMESPACE) -> str:
    """Create a pull secret and point an ImageConfig at it."""
    name = name or object_name(registry, "pull")
    return (f"kubectl -n {namespace} create secret docker-registry {name} "
            f"--docker-server={registry} --docker-username=<user> --docker-password=<token>\n"
            + imageconfig_yaml(registry, pull_secret=name, name=object_name(registry, "auth")))
