"""``crossfetch doctor REF``: the staged diagnosis, as a checklist or JSON."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

from ..errors import UsageError
from .common import (
    REF_HELP,
    add_crossplane_options,
    add_output_option,
    add_policy_options,
    add_runtime_options,
    build_policy,
    echo,
    emit_json,
    handle_errors,
    new_parser,
)

if TYPE_CHECKING:
    from ..doctor.report import Check, Report


def _labels(text: str | None) -> dict[str, str] | None:
    if text is None:
        return None
    out: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, sep, value = part.partition("=")
        if not sep or not key:
            raise UsageError(f"--pod-labels: {part!r} is not key=value",
                             fix="write labels as key=value,key2=value2")
        out[key.strip()] = value.strip()
    return out


@handle_errors
def run_doctor(ns: argparse.Namespace) -> None:
    params = vars(ns)
    ref, platform, netpol_file = ns.ref, ns.platform, ns.netpol_file
    pod_namespace, pod_labels, in_cluster = ns.pod_namespace, ns.pod_labels, ns.in_cluster
    verbose, via, output_format = ns.verbose, ns.via, ns.output_format
    runtime_endpoint, runtime_namespace = ns.runtime_endpoint, ns.runtime_namespace
    from ..crossplane.profile import get
    from ..doctor import Doctor, render_text
    from ..doctor.report import render_check, render_result

    profile = get(ns.crossplane_version)
    live = output_format == "text" and sys.stdout.isatty()
    policies = None
    if netpol_file:
        from ..doctor.netpol import load_policies

        policies = load_policies(netpol_file)
    with Doctor(build_policy(params), timeout=params.get("timeout"),
                default_registry=params.get("default_registry"), platform=platform,
                network_policies=policies, pod_namespace=pod_namespace,
                pod_labels=_labels(pod_labels), in_cluster=in_cluster, via=via,
                runtime_endpoint=runtime_endpoint, runtime_namespace=runtime_namespace,
                crossplane=profile,
                crossplane_pull_secrets=tuple(params.get("pull_secrets") or ())) as doc:
        if live:  # each stage as it completes; Ctrl-C keeps what is on the screen
            echo(f"crossfetch doctor {ref}")
            shown: list[int] = []

            def show(check: Check) -> None:
                shown.append(id(check))
                echo(render_check(check, verbose=verbose), nl=False)

            report = doc.run(ref, on_check=show)
            for check in report.checks:
                if id(check) not in shown:
                    echo(render_check(check, verbose=verbose), nl=False)
            echo(render_result(report), nl=False)
        else:
            report = doc.run(ref)
    if output_format == "json":
        emit_json(report.to_dict())
    elif not live:
        echo(render_text(report, verbose=verbose), nl=False)
    if report.interrupted:
        sys.exit(130)
    sys.exit(0 if report.ok else _exit_code(report))


def _exit_code(report: Report) -> int:
    """2 when the reference itself is invalid (as ``pull`` exits: bad usage), else 1."""
    from ..doctor.report import Status

    failed = next((c for c in report.checks if c.status is Status.FAIL), None)
    return 2 if failed is not None and failed.name == "reference" else 1



def doctor_parser(prog: str) -> argparse.ArgumentParser:
    p = new_parser(prog, """\
Diagnose why REF cannot be pulled: reference, policy, dns, tcp, tls, registry, auth, manifest
(HEAD and GET), package, and with --network-policies the Crossplane pod's egress. The first
failure stops the chain. Every failure names its cause and a fix to paste.

Two verdicts close the report: whether crossfetch can pull it from here, and whether the
Crossplane release given by --crossplane-version, in its pod, would: its scheme rule (plain
HTTP only where its go-containerregistry allows it), its CA (system roots plus
registryCaBundleConfig, given here as --ca-bundle), ImageConfig pullSecretRef, and no tls block,
client certificates or node files; a loopback address is the pod itself. On a terminal each
stage is printed as it completes; Ctrl-C keeps the finished ones (exit 130).

Every network step is bounded by --timeout (default 5 s here). Exit 0 when a pull would succeed
(warnings allowed), 1 when it would fail, 2 for bad usage.

Examples:
  crossfetch doctor gitea.cnoe.localtest.me:8443/giteaadmin/xfn:latest
  crossfetch doctor reg.local:8443/fns/f:v1 --config local.yaml -O json
  kubectl get networkpolicy -A -o yaml > np.yaml
  crossfetch doctor reg.example/fns/f:v1 --network-policies np.yaml
  crossfetch doctor reg.example/fns/f:v1 --via cri    # the node path: the runtime's pull
  crossfetch doctor 10.96.0.5:5000/fns/f:v1 --crossplane-version v1.20   # verdict for v1.20.11
""", epilog=REF_HELP)
    p.add_argument("ref", metavar="REF")
    p.add_argument("--platform", metavar="OS/ARCH",
                   help="Platform to pick from a multi-platform index (default linux/amd64).")
    g = p.add_argument_group("cluster")
    g.add_argument("--network-policies", dest="netpol_file", metavar="FILE",
                   help="What `kubectl get networkpolicy -A -o yaml` prints: decide whether the "
                   "Crossplane pod may reach the registry (and cluster DNS).")
    g.add_argument("--pod-namespace", default="crossplane-system",
                   help="Namespace of the pod that pulls (with --network-policies).")
    g.add_argument("--pod-labels", default="app=crossplane", metavar="K=V,...",
                   help="Labels of the pod that pulls (with --network-policies).")
    where = g.add_mutually_exclusive_group()
    where.add_argument("--in-cluster", dest="in_cluster", action="store_const", const=True,
                   default=None, help="Treat loopback addresses as failures (inside a pod they "
                   "reach the pod itself). Default: detected from KUBERNETES_SERVICE_HOST.")
    where.add_argument("--not-in-cluster", dest="in_cluster", action="store_const", const=False,
                   help="Treat loopback addresses as warnings (a laptop).")
    p.add_argument("--verbose", "-v", action="store_true", help="Show every check's full detail.")
    add_output_option(p)
    add_crossplane_options(p)
    add_runtime_options(p, "cri: diagnose the node path instead: runtime socket, name and "
                        "version, the runtime's pull, and the package read from its content "
                        "store.")
    add_policy_options(p, deadlines=False, verbose=False,
                       timeout_help="Bound for each network step: DNS, connect, TLS, "
                       "each request (default 5 s). The package read may take 12 times it, "
                       "and a --via cri pull 12 times it (at least 60 s).")
    p.set_defaults(func=run_doctor)
    return p


PARSERS: dict[str, Callable[[str], argparse.ArgumentParser]] = {"doctor": doctor_parser}
