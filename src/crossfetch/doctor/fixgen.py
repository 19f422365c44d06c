"""Ready-to-paste fixes for the causes ``doctor`` finds.

Each function returns text a user can copy as is: commands, ImageConfig YAML, CoreDNS lines,
``hosts.toml``. Placeholders appear only for facts no client can know from outside the cluster
(the registry's in-cluster Service name), and are written ``<like-this>``.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..fixes import (
    CA_KEY,
    containerd_hosts_dir,
    coredns_rewrite,
    helm_ca_command,
    host_aliases_patch,
    hosts_toml,
    imageconfig_yaml,
    kubectl_configmap_command,
    object_name,
    pull_secret_commands,
)
from ..trust import CertInfo, choose_anchor, is_ip


def loopback_fix(registry: str, host: str, *, is_ip: bool, resolver_maps: bool = True) -> str:
    """The name reaches the pod itself from inside a cluster: give the cluster a route."""
    lines: list[str] = []
    if not resolver_maps:
        lines += [f"# This machine's resolver does not map {host} (RFC 6761 reserves *.localhost "
                  "for loopback); to pull from here add it:",
                  f"echo '127.0.0.1 {host}' | sudo tee -a /etc/hosts", ""]
    if is_ip:
        _, colon, port = registry.rpartition(":")  # "[::1]:5000" has a port, "[::1]" not
        port = port if colon and port.isdigit() else "<port>"
        lines += [
            f"# {host} is the pod itself inside a cluster. Keep the reference and rewrite it to "
            "an address pods can reach:",
            "apiVersion: pkg.crossplane.io/v1beta1", "kind: ImageConfig", "metadata:",
            f"  name: {object_name(registry, 'rewrite')}", "spec:", "  matchImages:",
            "  - type: Prefix", f"    prefix: {registry}/", "  rewriteImage:",
            f"    prefix: <registry-service>.<namespace>.svc.cluster.local:{port}/",
        ]
        return "\n".join(lines) + "\n"
    lines += [
        f"# Inside a pod {host} resolves to the pod itself. Send the name to the registry:",
        "# a) CoreDNS rewrite to the registry's Service (idpbuilder/kind with ingress-nginx: "
        "ingress-nginx-controller.ingress-nginx.svc.cluster.local)",
        coredns_rewrite(host),
        "# b) or a hostAliases entry on the Crossplane pod (find an IP with: kubectl -n "
        "ingress-nginx get svc ingress-nginx-controller -o jsonpath='{.spec.clusterIP}')",
        host_aliases_patch(host),
        "# The kubelet pulls the Function's runtime image from the node, where the name must "
        "resolve too (kind: containerd hosts.toml mirror for the name).",
    ]
    return "\n".join(lines) + "\n"


def dns_failure_fix(host: str) -> str:
    return "\n".join([
        f"# Check the name: `getent hosts {host}` here; inside a pod cluster DNS answers.",
        "# If only your machine knows the name (/etc/hosts), give the cluster the same answer:",
        coredns_rewrite(host),
        "# or",
        host_aliases_patch(host),
        "# If a NetworkPolicy limits the Crossplane pod's egress, DNS (UDP and TCP 53) must be "
        "allowed: run doctor with --network-policies FILE.",
    ]) + "\n"


def trust_fix(registry: str, chain: Sequence[CertInfo], *, here: str = "--ca-bundle ca.crt"
              ) -> str:
    """Trust a private CA everywhere a package is pulled: crossfetch, Crossplane, the node."""
    anchor = choose_anchor(chain)
    cm = object_name(registry, "ca")
    ca_dir = containerd_hosts_dir(registry)
    lines: list[str] = []
    if anchor is not None:
        lines += ["# 1. Save the CA, pinned to the fingerprint shown above:",
                  f"crossfetch trust {registry} --fingerprint {anchor.fingerprint} -o ca.crt"]
    else:
        issuer = chain[0].issuer if chain else "an unknown CA"
        lines += [f"# 1. The server sent no CA certificate (its certificate is issued by "
                  f"{issuer}). Get that CA from",
                  "#    the Secret holding the registry's TLS (idpbuilder: idpbuilder-cert in "
                  "namespace default):",
                  "kubectl get secret -n default idpbuilder-cert -o yaml > cert.yaml",
                  f"crossfetch trust {registry} --from-secret cert.yaml -o ca.crt"]
    lines += [
        "# 2. Crossplane's package manager: a CA bundle ConfigMap, added to its system roots",
        kubectl_configmap_command(cm, CA_KEY),
        helm_ca_command(cm),
        "#    or per registry, an ImageConfig tls block (same ConfigMap):",
        imageconfig_yaml(registry, mode="Strict", ca_configmap=(cm, CA_KEY),
                         name=object_name(registry, "tls")).rstrip("\n"),
        f"# 3. The node's containerd pulls the runtime image: {ca_dir}/hosts.toml "
        f"(plus {CA_KEY} next to it)",
        hosts_toml(registry, ca_path=f"{ca_dir}/{CA_KEY}").rstrip("\n"),
        f"# crossfetch itself: {here}",
    ]
    return "\n".join(lines) + "\n"


def hostname_fix(host: str, cert: CertInfo | None) -> str:
    names = [s.split(":", 1)[1] for s in cert.sans] if cert else []
    san = "IP" if is_ip(host.strip("[]")) else "DNS"
    lines = []
    if names:
        lines.append(f"# Use a name the certificate is valid for ({', '.join(names)}) in the "
                     "package reference,")
    lines += [f"# or re-issue the certificate with {host} in its SANs, e.g.:",
              f"openssl req -x509 -newkey rsa:2048 -nodes -keyout tls.key -out tls.crt -days 365 "
              f"-subj /CN={host} -addext subjectAltName={san}:{host}"]
    return "\n".join(lines) + "\n"


def expired_fix(cert: CertInfo | None) -> str:
    when = f" (it expired {cert.not_after:%Y-%m-%d %H:%M} UTC)" if cert else ""
    return (f"# Renew the registry's certificate{when} and restart the registry;\n"
            "# cert-manager: cmctl renew <certificate>; check the clocks of client and server "
            "too.\n")


def plain_http_fix(registry: str) -> str:
    return ("# If this registry really is plain HTTP, allow it for this registry only "
            "(crossfetch; Crossplane\n# itself has no plain-HTTP option, issue #6159):\n"
            + imageconfig_yaml(registry, mode="Disabled", name=object_name(registry, "http"))
            + "# containerd on the node:\n" + hosts_toml(registry, scheme="http"))


def tls_expected_fix(registry: str) -> str:
    return ("# The registry speaks TLS: use Strict, with its CA if private "
            f"(crossfetch trust {registry} shows it):\n"
            + imageconfig_yaml(registry, mode="Strict", ca_configmap=(object_name(registry, "ca"),
                                                                      CA_KEY),
                               name=object_name(registry, "tls")))


def unauthorized_fix(registry: str) -> str:
    return ("# Give Crossplane credentials for this registry (a pull secret matched by an "
            "ImageConfig):\n" + pull_secret_commands(registry)
            + "# crossfetch itself: --pull-secret secret.yaml, or --username USER "
            "--password-stdin\n")
