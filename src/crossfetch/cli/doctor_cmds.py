"""``crossfetch doctor REF``: the staged diagnosis, as a checklist or JSON."""

from __future__ import annotations

import sys
from typing import Any

import click

from .common import build_policy, emit_json, handle_errors, output_option, policy_options


def _labels(text: str | None) -> dict[str, str] | None:
    if text is None:
        return None
    out: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, sep, value = part.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{part!r} is not key=value", param_hint="--pod-labels")
        out[key.strip()] = value.strip()
    return out


@click.command()
@click.argument("ref")
@click.option("--platform", metavar="OS/ARCH",
              help="Platform to pick from a multi-platform index (default linux/amd64).")
@click.option("--network-policies", "netpol_file", type=click.Path(dir_okay=False),
              help="What `kubectl get networkpolicy -A -o yaml` prints: decide whether the "
              "Crossplane pod may reach the registry (and cluster DNS).")
@click.option("--pod-namespace", default="crossplane-system", show_default=True,
              help="Namespace of the pod that pulls (with --network-policies).")
@click.option("--pod-labels", default="app=crossplane", show_default=True, metavar="K=V,...",
              help="Labels of the pod that pulls (with --network-policies).")
@click.option("--in-cluster/--not-in-cluster", default=None,
              help="Treat loopback addresses as failures (inside a pod they reach the pod "
              "itself). Default: detected from KUBERNETES_SERVICE_HOST.")
@click.option("--verbose", "-v", is_flag=True, help="Show every check's full detail.")
@click.option("--via", type=click.Choice(["direct", "cri"]), default="direct", show_default=True,
              help="cri: diagnose the node path instead: runtime socket, name and version, the "
              "runtime's pull, and the package read from its content store.")
@click.option("--runtime-endpoint", metavar="URL",
              default="unix:///run/containerd/containerd.sock", show_default=True,
              help="The runtime's CRI socket, for --via cri.")
@click.option("--runtime-namespace", default="k8s.io", show_default=True,
              help="containerd namespace (kubelet uses k8s.io).")
@policy_options
@output_option
@handle_errors
def doctor(ref: str, platform: str | None, netpol_file: str | None, pod_namespace: str,
           pod_labels: str, in_cluster: bool | None, verbose: bool, via: str,
           runtime_endpoint: str, runtime_namespace: str, output_format: str,
           **params: Any) -> None:
    """Diagnose why REF cannot be pulled: reference, policy, dns, tcp, tls, registry, auth,
    manifest (HEAD and GET), package, and with --network-policies the Crossplane pod's egress.
    The first failure stops the chain. Every failure names its cause and a fix to paste.

    Every network step is bounded by --timeout (default 5 s here). Exit 0 when a pull would
    succeed (warnings allowed), 1 when it would fail, 2 for bad usage.

    \b
    Examples:
      crossfetch doctor gitea.cnoe.localtest.me:8443/giteaadmin/xfn:latest
      crossfetch doctor reg.local:8443/fns/f:v1 --config local.yaml -O json
      kubectl get networkpolicy -A -o yaml > np.yaml
      crossfetch doctor reg.example/fns/f:v1 --network-policies np.yaml
    """
    from ..doctor import Doctor, render_text

    policies = None
    if netpol_file:
        from ..doctor.netpol import load_policies

        policies = load_policies(netpol_file)
    with Doctor(build_policy(params), timeout=params.get("timeout"),
                default_registry=params.get("default_registry"), platform=platform,
                network_policies=policies, pod_namespace=pod_namespace,
                pod_labels=_labels(pod_labels), in_cluster=in_cluster, via=via,
                runtime_endpoint=runtime_endpoint, runtime_namespace=runtime_namespace) as doc:
        report = doc.run(ref)
    if output_format == "json":
        emit_json(report.to_dict())
    else:
        click.echo(render_text(report, verbose=verbose), nl=False)
    sys.exit(0 if report.ok else 1)
