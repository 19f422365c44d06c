"""Cluster-side commands a fix may hand out: CoreDNS rewrites, pod ``hostAliases``, pull
Secrets. Each returns text to paste."""

from __future__ import annotations

from .names import CROSSPLANE_NAMESPACE

SERVICE_PLACEHOLDER = "<registry-service>.<namespace>.svc.cluster.local"


def coredns_rewrite(host: str, target: str = SERVICE_PLACEHOLDER) -> str:
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


def pull_secret_command(registry: str, name: str,
                        namespace: str = CROSSPLANE_NAMESPACE) -> str:
    """``kubectl create secret docker-registry`` for ``registry``."""
    return (f"kubectl -n {namespace} create secret docker-registry {name} "
            f"--docker-server={registry} --docker-username=<user> --docker-password=<token>")
