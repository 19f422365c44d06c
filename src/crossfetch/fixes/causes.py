"""One fix per cause, written for the targeted Crossplane version.

Each function returns a :class:`~.fix.Fix` whose steps say who applies them. A ``crossplane``
step names only what that version has: ``registryCaBundleConfig`` / ``--ca-bundle-path``, and
ImageConfig ``rewriteImage`` / ``pullSecretRef`` where the version ships them. crossfetch's own
ImageConfig fields (``registry.tls``) are always a ``crossfetch`` step, labelled so.
Placeholders appear only for facts no client can know from outside the cluster (the
registry's in-cluster Service), written ``<like-this>``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from . import cluster, configmap, helm
from .fix import CROSSFETCH_ONLY, Audience, Fix, Step, Target, crossplane_label
from .imageconfig import TLS, imageconfig_yaml
from .names import CA_KEY, containerd_hosts_dir, object_name

if TYPE_CHECKING:
    from ..trust import CertInfo

NODE_TITLE = "The node's containerd pulls the runtime image (kubelet):"


def _has(target: Target | None, feature: str) -> bool:
    """Whether the targeted version has ``feature`` (no target: the newest, which has all)."""
    return target is None or bool(getattr(target, feature))


def port_of(registry: str) -> str | None:
    """The port ``host[:port]`` names, if any."""
    _, colon, port = registry.rpartition(":")  # "[::1]:5000" has a port, "[::1]" not
    return port if colon and port.isdigit() else None


CLUSTER_IP = "<registry-service-cluster-ip>"
"""The registry Service's ClusterIP: an RFC 1918 address, so plain HTTP in every release's
go-containerregistry rule."""
CLUSTER_IP_HOW = ("kubectl get svc -n <namespace> <registry-service> -o "
                  "jsonpath='{.spec.clusterIP}'")


def rewrite_route(registry: str, to: str, target: Target | None, *, with_rewrite: str,
                  without: str) -> Step:
    """Send ``registry``'s packages to ``to`` (``host:port/``): an ImageConfig
    ``rewriteImage`` where the targeted version has it (step text ``with_rewrite``), else
    the words ``without`` (the package must name ``to`` itself)."""
    if _has(target, "rewrite_image"):
        return Step(Audience.CROSSPLANE, with_rewrite,
                    imageconfig_yaml(f"{registry}/", name=object_name(registry, "rewrite"),
                                     rewrite=to))
    return Step(Audience.CROSSPLANE, without)


def loopback(registry: str, host: str, *, is_ip: bool, resolver_maps: bool = True,
             plain_http: bool = False, target: Target | None = None) -> Fix:
    """The name or address reaches the pod itself inside a cluster: give the cluster a route."""
    cp = crossplane_label(target)
    steps: list[Step] = []
    if not resolver_maps:
        steps.append(Step(Audience.CROSSFETCH,
                          f"This machine's resolver does not map {host} (RFC 6761 reserves "
                          "*.localhost for loopback); to pull from here add it:",
                          f"echo '127.0.0.1 {host}' | sudo tee -a /etc/hosts"))
    if is_ip:
        port = port_of(registry) or "<port>"
        dot_local_http = _has(target, "plain_http_local_dot_local")
        if plain_http and not dot_local_http:
            # go-containerregistry v0.21.6 (PR #2281) dropped *.local from its plain-HTTP
            # rule: a Service DNS name would be tried over HTTPS only. An RFC 1918 ClusterIP
            # keeps plain HTTP.
            to = f"{CLUSTER_IP}:{port}/"
            why = (f" by its Service's ClusterIP ({cp} speaks plain HTTP to RFC 1918 addresses, "
                   f"not to *.svc.cluster.local names; {CLUSTER_IP_HOW})")
        else:
            to = f"{cluster.SERVICE_PLACEHOLDER}:{port}/"
            why = ""
        lead = f"{cp}: {host} is the pod itself inside a cluster"
        steps.append(rewrite_route(
            registry, to, target,
            with_rewrite=f"{lead}. Keep the reference and rewrite it to an address pods can "
            f"reach{why}:",
            without=f"{lead}, and this version cannot rewrite a package reference: reference "
            f"the package by an address pods can reach{why}, e.g. {to}<repository>:<tag>"))
        return Fix(tuple(steps))
    steps += [
        Step(Audience.CLUSTER,
             f"Inside a pod {host} resolves to the pod itself. Send the name to the registry:\n"
             "a) CoreDNS rewrite to the registry's Service (idpbuilder/kind with ingress-nginx: "
             "ingress-nginx-controller.ingress-nginx.svc.cluster.local)",
             cluster.coredns_rewrite(host)),
        Step(Audience.CLUSTER,
             "b) or a hostAliases entry on the Crossplane pod (find an IP with: kubectl -n "
             "ingress-nginx get svc ingress-nginx-controller -o jsonpath='{.spec.clusterIP}')",
             cluster.host_aliases_patch(host)),
        Step(Audience.NODE,
             "The kubelet pulls the Function's runtime image from the node, where the name must "
             "resolve too (kind: a containerd hosts.toml mirror for the name)."),
    ]
    return Fix(tuple(steps))


def dns_failure(host: str, registry: str | None = None, *, public: bool = False,
                target: Target | None = None) -> Fix:
    """The name does not resolve. A private name gets cluster DNS; a public registry that
    cannot be reached gets a ``rewriteImage`` to a mirror (where the version has it)."""
    registry = registry or host
    check = Step(Audience.CLUSTER,
                 f"Check the name: `getent hosts {host}` here; inside a pod cluster DNS answers.")
    dns = [Step(Audience.CLUSTER,
                "If only your machine knows the name (/etc/hosts), give the cluster the same "
                "answer:", cluster.coredns_rewrite(host)),
           Step(Audience.CLUSTER, "or", cluster.host_aliases_patch(host))]
    netpol = Step(Audience.CLUSTER,
                  "If a NetworkPolicy limits the Crossplane pod's egress, DNS (UDP and TCP 53) "
                  "must be allowed: run doctor with --network-policies FILE.")
    mirror: list[Step] = []
    if _has(target, "rewrite_image"):
        mirror.append(Step(
            Audience.CROSSPLANE,
            f"{crossplane_label(target)}: if {registry} is not reachable from the cluster, "
            "pull through a mirror that is:",
            imageconfig_yaml(f"{registry}/", name=object_name(registry, "mirror"),
                             rewrite="<mirror-host>/<path>/")))
    steps = [check, *mirror, netpol] if public else [check, *dns, netpol, *mirror]
    return Fix(tuple(steps))


def _crossplane_ca_steps(registry: str, target: Target | None) -> list[Step]:
    cm = object_name(registry, "ca")
    return [Step(Audience.CROSSPLANE,
                 f"{crossplane_label(target)} (package manager): a CA bundle ConfigMap, added to "
                 "its system roots for every registry (Helm registryCaBundleConfig, which sets "
                 "--ca-bundle-path):",
                 configmap.kubectl_create_command(cm, CA_KEY) + "\n"
                 + helm.ca_upgrade_command(cm))]


def _node_ca_step(registry: str) -> Step:
    from . import hoststoml  # the node's fixes only: doctor's loopback warning needs none

    ca_dir = containerd_hosts_dir(registry)
    return Step(Audience.NODE,
                f"{NODE_TITLE} {ca_dir}/hosts.toml (plus {CA_KEY} next to it)",
                hoststoml.for_registry(registry, ca=True))


def _crossfetch_ca_step(registry: str, here: str) -> Step:
    return Step(Audience.CROSSFETCH,
                f"crossfetch itself: {here}; or per registry, {CROSSFETCH_ONLY}:",
                imageconfig_yaml(f"{registry}/", name=object_name(registry, "tls"),
                                 tls=TLS(mode="Strict",
                                         ca_configmap=(object_name(registry, "ca"), CA_KEY))))


def trust(registry: str, chain: Sequence[CertInfo] = (), *, here: str = "--ca-bundle ca.crt",
          target: Target | None = None) -> Fix:
    """Trust a private CA everywhere a package is pulled: Crossplane, the node, crossfetch."""
    from ..trust import choose_anchor

    anchor = choose_anchor(chain) if chain else None
    if anchor is not None:
        first = Step(Audience.CROSSFETCH, "1. Save the CA, pinned to the fingerprint shown above:",
                     f"crossfetch trust {registry} --fingerprint {anchor.fingerprint} -o ca.crt")
    elif chain:
        first = Step(Audience.CROSSFETCH,
                     f"1. The server sent no CA certificate (its certificate is issued by "
                     f"{chain[0].issuer}). Get that CA from\n   the Secret holding the "
                     "registry's TLS (idpbuilder: idpbuilder-cert in namespace default):",
                     "kubectl get secret -n default idpbuilder-cert -o yaml > cert.yaml\n"
                     f"crossfetch trust {registry} --from-secret cert.yaml -o ca.crt")
    else:
        first = Step(Audience.CROSSFETCH,
                     "1. See the registry's certificates and save its CA (or take it from the "
                     "Secret holding the registry's TLS, --from-secret):",
                     f"crossfetch trust {registry} -o ca.crt")
    return Fix((first, *_crossplane_ca_steps(registry, target), _node_ca_step(registry),
                _crossfetch_ca_step(registry, here)))


def hostname(host: str, cert: CertInfo | None = None) -> Fix:
    """The certificate does not name ``host``."""
    from ..reference import is_ip

    names = [s.split(":", 1)[1] for s in cert.sans] if cert else []
    san = "IP" if is_ip(host.strip("[]")) else "DNS"
    title = (f"Use a name the certificate is valid for ({', '.join(names)}) in the package "
             "reference,\n" if names else "") + f"or re-issue the certificate with {host} in its " \
        "SANs, e.g.:"
    return Fix((Step(Audience.REGISTRY, title,
                     f"openssl req -x509 -newkey rsa:2048 -nodes -keyout tls.key -out tls.crt "
                     f"-days 365 -subj /CN={host} -addext subjectAltName={san}:{host}"),))


def expired(cert: CertInfo | None = None) -> Fix:
    """The certificate has expired (or is not yet valid)."""
    when = f" (it expired {cert.not_after:%Y-%m-%d %H:%M} UTC)" if cert else ""
    return Fix((Step(Audience.REGISTRY,
                     f"Renew the registry's certificate{when} and restart the registry;\n"
                     "cert-manager: cmctl renew <certificate>; check the clocks of client and "
                     "server too."),))


def plain_http(registry: str, *, target: Target | None = None,
               crossplane_speaks_http: bool | None = None) -> Fix:
    """The registry speaks plain HTTP where TLS was required. ``crossplane_speaks_http``: whether
    the targeted Crossplane falls back to HTTP for this host by itself (go-containerregistry's
    rule; ``None``: not known)."""
    from ..reference import is_loopback_registry
    from . import hoststoml

    cp = crossplane_label(target)
    if crossplane_speaks_http:
        caveat = (f"; but inside the Crossplane pod {registry} is the pod itself: crossfetch "
                  f"doctor shows a route" if is_loopback_registry(registry) else "")
        cp_step = Step(Audience.CROSSPLANE,
                       f"{cp} talks plain HTTP to {registry} by itself (go-containerregistry tries "
                       "HTTPS, then HTTP, for localhost, loopback and RFC 1918 addresses): no "
                       f"TLS setting is needed there{caveat}.")
    else:
        rewrite = (" or rewriteImage to a mirror that speaks TLS" if
                   _has(target, "rewrite_image") else "")
        cp_step = Step(Audience.CROSSPLANE,
                       f"{cp} has no plain-HTTP option (crossplane issue #6159): serve the "
                       f"registry over TLS and trust its CA (registryCaBundleConfig){rewrite}.")
    return Fix((
        Step(Audience.CROSSFETCH,
             f"If this registry really is plain HTTP, allow it for this registry only; "
             f"{CROSSFETCH_ONLY}:",
             imageconfig_yaml(f"{registry}/", name=object_name(registry, "http"),
                              tls=TLS(mode="Disabled"))),
        cp_step,
        Step(Audience.NODE, NODE_TITLE, hoststoml.for_registry(registry, plain_http=True)),
    ))


def tls_expected(registry: str) -> Fix:
    """Policy said plain HTTP (``Disabled``), the registry speaks TLS."""
    return Fix((Step(Audience.CROSSFETCH,
                     f"The registry speaks TLS: use Strict, with its CA if private (crossfetch "
                     f"trust {registry} shows it); {CROSSFETCH_ONLY}:",
                     imageconfig_yaml(f"{registry}/", name=object_name(registry, "tls"),
                                      tls=TLS(mode="Strict",
                                              ca_configmap=(object_name(registry, "ca"),
                                                            CA_KEY)))),))


def unauthorized(registry: str, *, target: Target | None = None) -> Fix:
    """The registry wants credentials."""
    name = object_name(registry, "pull")
    secret = cluster.pull_secret_command(registry, name)
    label = crossplane_label(target)
    cp = [Step(Audience.CROSSPLANE, f"{label}: a pull secret in Crossplane's namespace,", secret)]
    if _has(target, "pull_secret_ref"):
        cp.append(Step(Audience.CROSSPLANE, f"{label}: the pull secret matched by an ImageConfig:",
                       imageconfig_yaml(f"{registry}/", name=object_name(registry, "auth"),
                                        pull_secret=name)))
    else:
        cp.append(Step(Audience.CROSSPLANE, f"{label}: the pull secret named in the package's "
                       "spec.packagePullSecrets."))
    return Fix((*cp, Step(Audience.CROSSFETCH,
                          "crossfetch itself: --pull-secret secret.yaml, or --username USER "
                          "--password-stdin")))


def client_certificate(registry: str, *, target: Target | None = None) -> Fix:
    """The registry requires mutual TLS."""
    return Fix((
        Step(Audience.CROSSFETCH,
             f"Give a client certificate signed by a CA the registry trusts: a hosts.toml "
             f"`client` for {registry}, certs.d client.cert/client.key, or an ImageConfig "
             f"spec.registry.tls.clientCertSecretRef ({CROSSFETCH_ONLY})."),
        Step(Audience.CROSSPLANE,
             f"{crossplane_label(target)} sends no client certificate: front the registry with "
             "a path that does not require one."),
    ))
