"""``policy explain`` and ``policy export``."""

from __future__ import annotations

from typing import Any

import click

from .common import build_policy, emit_json, handle_errors, output_option, policy_options


@click.group()
def policy() -> None:
    """Explain and export the effective registry policy.

    Precedence, highest first: command-line flags, ImageConfig objects (--config),
    node files (containerd hosts.toml, registries.conf, Docker daemon.json and certs.d).
    """


@policy.command(epilog="REF is host[:port]/path[:tag][@sha256:...].")
@click.argument("ref")
@policy_options
@output_option
@handle_errors
def explain(ref: str, output_format: str, **params: Any) -> None:
    """Show, for REF, the endpoints in try order (mirrors, then the upstream), their
    capabilities and TLS settings, where credentials come from (never their value), and the
    file, line or object that decided each of them. Nothing is sent to any registry.

    \b
    Examples:
      crossfetch policy explain reg.local:5000/fns/f:v1 --hosts-dir /etc/containerd/certs.d
      crossfetch policy explain docker.io/org/p:v1 --registries-conf r.conf -O json
    """
    from ..policy.explain import explain as explain_decision
    from ..policy.explain import render_text
    from ..reference import Reference

    decision = build_policy(params).decide(
        Reference.parse(ref, default_registry=params.get("default_registry")))
    data = explain_decision(decision)
    if output_format == "json":
        emit_json({"ok": True, **data})
    else:
        click.echo(render_text(data))


@policy.command()
@click.argument("prefix")
@click.option("--format", "fmt", required=True,
              type=click.Choice(["imageconfig", "hosts-toml", "registries-conf"]),
              help="Format to write the effective policy in.")
@policy_options
@handle_errors
def export(prefix: str, fmt: str, **params: Any) -> None:
    """Write the effective policy for PREFIX (host[:port][/path]) in another format, so one
    configuration file can be turned into the others. What the target format cannot express
    is written as a comment.

    \b
    Examples:
      crossfetch policy export reg.local:5000/ --hosts-dir certs.d --format imageconfig
      crossfetch policy export docker.io/ --hosts-dir certs.d --format registries-conf
    """
    from ..policy.explain import export as export_policy
    from ..policy.explain import probe_reference

    decision = build_policy(params).decide(probe_reference(prefix))
    click.echo(export_policy(decision, prefix, fmt), nl=False)
