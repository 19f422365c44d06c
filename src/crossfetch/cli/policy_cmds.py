"""``policy explain`` and ``policy export``."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from .common import (
    HelpFormatter,
    add_crossplane_options,
    add_output_option,
    add_policy_options,
    build_policy,
    default_registry,
    echo,
    emit_json,
    handle_errors,
    new_parser,
)


@handle_errors
def run_explain(ns: argparse.Namespace) -> None:
    from ..policy.explain import explain as explain_decision
    from ..policy.explain import render_text
    from ..reference import Reference

    params = vars(ns)
    decision = build_policy(params).decide(
        Reference.parse(ns.ref, default_registry=default_registry(params)), ns.ref)
    data = explain_decision(decision)
    if ns.output_format == "json":
        emit_json({"ok": True, **data})
    else:
        echo(render_text(data))


@handle_errors
def run_export(ns: argparse.Namespace) -> None:
    from ..policy.explain import export as export_policy
    from ..policy.explain import probe_reference

    decision = build_policy(vars(ns)).decide(probe_reference(ns.prefix))
    text = export_policy(decision, ns.prefix, ns.fmt)
    if ns.output_format == "json":
        emit_json({"ok": True, "prefix": ns.prefix, "format": ns.fmt, "text": text})
    else:
        echo(text, nl=False)


def policy_parser(prog: str) -> argparse.ArgumentParser:
    p = new_parser(prog, args="COMMAND ...", doc="""\
Explain and export the effective registry policy.

Precedence, highest first: command-line flags, ImageConfig objects (--config), node files
(containerd hosts.toml, registries.conf, Docker daemon.json and certs.d).
""")
    sub = p.add_subparsers(dest="policy_command", metavar="COMMAND", required=True)
    e = sub.add_parser("explain", formatter_class=HelpFormatter, prog=f"{prog} explain",
                       usage="%(prog)s REF [options]",
                       help="Show the endpoints, TLS and credential source for REF, and why.",
                       description="""\
Show, for REF, the endpoints in try order (mirrors, then the upstream), their capabilities and
TLS settings, where credentials come from (never their value), and the file, line or object
that decided each of them. Nothing is sent to any registry.

Examples:
  crossfetch policy explain reg.local:5000/fns/f:v1 --hosts-dir /etc/containerd/certs.d
  crossfetch policy explain docker.io/org/p:v1 --registries-conf r.conf -O json
  crossfetch policy explain 10.0.0.5:5000/fns/f:v1 --config ic.yaml --as-crossplane \
      --crossplane-version v1.20   # what Crossplane v1.20.11 would do, and what it ignores
""", epilog="REF is host[:port]/path[:tag][@sha256:...].")
    e.add_argument("ref", metavar="REF")
    add_output_option(e)
    add_crossplane_options(e, emulate=True)
    add_policy_options(e, network=False)
    e.set_defaults(func=run_explain)
    x = sub.add_parser("export", formatter_class=HelpFormatter, prog=f"{prog} export",
                       usage="%(prog)s PREFIX --format FORMAT [options]",
                       help="Write the effective policy for a prefix in another format.",
                       description="""\
Write the effective policy for PREFIX (host[:port][/path]) in another format, so one
configuration file can be turned into the others. What the target format cannot express is
written as a comment.

Examples:
  crossfetch policy export reg.local:5000/ --hosts-dir certs.d --format imageconfig
  crossfetch policy export docker.io/ --hosts-dir certs.d --format registries-conf
""")
    x.add_argument("prefix", metavar="PREFIX")
    x.add_argument("--format", dest="fmt", required=True,
                   choices=["imageconfig", "hosts-toml", "registries-conf"],
                   help="Format to write the effective policy in.")
    add_output_option(x)
    add_policy_options(x, network=False)
    x.set_defaults(func=run_export)
    return p


PARSERS: dict[str, Callable[[str], argparse.ArgumentParser]] = {"policy": policy_parser}
