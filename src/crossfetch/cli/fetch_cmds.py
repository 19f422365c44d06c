"""``pull``, ``head``, ``tags`` and ``inspect``."""

from __future__ import annotations

from typing import Any

import click

from .common import (
    build_client,
    emit_json,
    fetch_options,
    handle_errors,
    output_option,
    policy_options,
)

REF_HELP = "REF is host[:port]/path[:tag][@sha256:...]; the registry host is required."


def _summary(d: dict[str, Any], *, err: bool = False, wrote: str | None = None) -> None:
    def line(k: str, v: Any) -> None:
        click.echo(f"  {k:<11} {v}", err=err)

    src = "cache" if d.get("cached") else (d.get("endpoint") or "registry")
    click.echo(f"{d.get('kind')} {d.get('name')}  ({d.get('apiVersion')})", err=err)
    line("reference", d["reference"])
    if d["resolved"] != d["reference"]:
        line("resolved", d["resolved"])
    line("digest", d["digest"])
    if d.get("platform"):
        line("platform", f"{d['platform']} ({d['manifestDigest']})")
    line("crossplane", d.get("crossplane") or "(any)")
    deps = d.get("dependsOn") or []
    if not deps:
        line("dependsOn", "(none)")
    for i, dep in enumerate(deps):
        line("dependsOn" if i == 0 else "", f"{dep.get('kind')} {dep.get('package')} "
             f"{dep.get('version') or ''}".rstrip())
    objs = d.get("objects") or {}
    line("objects", ", ".join(f"{k}: {v}" for k, v in sorted(objs.items())) or "(none)")
    base = d.get("baseLayer") or {}
    if base:
        line("base layer", f"{base.get('digest', '')[:19]}… via {base.get('how')}")
    line("from", src)
    if wrote:
        line("wrote", f"{wrote} ({d.get('size')} bytes)")


@click.command(epilog=REF_HELP)
@click.argument("ref")
@click.option("-o", "--out", "out", metavar="FILE",
              help="Write package.yaml here (- for stdout). Written atomically.")
@fetch_options
@policy_options
@output_option
@handle_errors
def pull(ref: str, out: str | None, output_format: str, **params: Any) -> None:
    """Fetch a package: resolve REF to a digest, read only the base layer, verify every digest,
    cache package.yaml by digest and optionally write it out.

    \b
    Examples:
      crossfetch pull reg.local:8443/fns/function-foo:v0.1.0 --ca-bundle ca.crt -o package.yaml
      crossfetch pull 10.0.0.5:5000/fns/function-bar:v1 --config local.yaml -O json
      crossfetch pull reg.local/fns/f@sha256:<digest> --pull-policy Never   # offline, from cache
    """
    with build_client(params, progress=output_format != "json") as client:
        result = client.pull(ref, out)
    d = result.to_dict()
    if output_format == "json":
        if out == "-":
            click.echo(d, err=True)
        else:
            emit_json({"ok": True, **d, "output": out})
        return
    _summary(d, err=out == "-", wrote=out if out and out != "-" else None)


@click.command(epilog=REF_HELP)
@click.argument("ref")
@click.option("--validate", is_flag=True,
              help="Parse every object of package.yaml, not just the meta object (slower).")
@fetch_options
@policy_options
@output_option
@handle_errors
def inspect(ref: str, validate: bool, output_format: str, **params: Any) -> None:
    """Show what a package is: kind, name, Crossplane version constraint, dependencies
    (both the new and the legacy dependsOn form), and its objects counted by kind."""
    with build_client(params, progress=output_format != "json") as client:
        result = client.pull(ref)
    d = result.to_dict()
    if validate:
        from ..xpkg import parse_package_stream

        with open(result.path, "rb") as f:
            full = parse_package_stream(f, full=True)
        d["objects"] = full.to_dict().get("objects", d["objects"])
        d["validated"] = True
    if output_format == "json":
        emit_json({"ok": True, **d})
        return
    _summary(d)
    for k, v in sorted((d.get("annotations") or {}).items()):
        if k.startswith("meta.crossplane.io/") and k != "meta.crossplane.io/readme":
            click.echo(f"  {k.split('/', 1)[1]:<11} {v}")


@click.command(epilog=REF_HELP)
@click.argument("ref")
@policy_options
@output_option
@handle_errors
def head(ref: str, output_format: str, **params: Any) -> None:
    """Resolve REF to its manifest digest, media type and size. Uses HEAD, and GET when a
    registry or proxy answers HEAD badly."""
    with build_client(params, progress=False) as client:
        result = client.head(ref)
    d = result.to_dict()
    if output_format == "json":
        emit_json({"ok": True, **d})
        return
    click.echo(d["digest"])
    click.echo(f"  mediaType  {d['mediaType']}\n  size       {d['size']}\n"
               f"  endpoint   {d['endpoint']}")


@click.command(epilog=REF_HELP)
@click.argument("ref")
@policy_options
@output_option
@handle_errors
def tags(ref: str, output_format: str, **params: Any) -> None:
    """List every tag of REF's repository (REF's own tag is ignored), following Link
    pagination."""
    with build_client(params, progress=False) as client:
        decision = client.decide(ref)
        names = client.registry(decision).tags()
    if output_format == "json":
        emit_json({"ok": True, "reference": str(decision.reference),
                   "repository": decision.resolved.name, "tags": names})
        return
    for t in names:
        click.echo(t)
