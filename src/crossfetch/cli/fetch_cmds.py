"""``pull``, ``head``, ``tags`` and ``inspect``."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import Any

from ..errors import CrossfetchError
from .common import (
    REF_HELP,
    add_crossplane_options,
    add_fetch_options,
    add_output_option,
    add_policy_options,
    build_client,
    echo,
    emit_json,
    handle_errors,
    new_parser,
)


def _summary(d: dict[str, Any], *, err: bool = False, wrote: str | None = None) -> None:
    def line(k: str, v: Any) -> None:
        echo(f"  {k:<11} {v}", err=err)

    src = "cache" if d.get("cached") else (d.get("endpoint") or "registry")
    echo(f"{d.get('kind')} {d.get('name')}  ({d.get('apiVersion')})", err=err)
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
    cp = d.get("asCrossplane")
    if isinstance(cp, dict):
        how = "over HTTPS"
        if cp.get("triedHttpsFirst"):
            how = (f"over plain HTTP after trying HTTPS: {cp.get('plainHttpRule')} is in "
                   f"go-containerregistry {cp.get('ggcr')}'s plain-HTTP rule")
        line("as", f"Crossplane {cp.get('version')} would pull it ({how})")
        for note in cp.get("ignored") or []:
            line("", note)
    if wrote:
        line("wrote", f"{wrote} ({d.get('size')} bytes)")


def _pull(params: dict[str, Any], ref: str, out: str | None, *, progress: bool,
          use: Callable[[Any], None] | None = None) -> Any:
    """``Client.pull``; under ``--as-crossplane`` failures are restated as that release's and
    the result says how it got there. ``use`` reads ``result.path`` while it is still valid
    (the client is open: a --no-cache or fallback cache goes with it)."""
    with build_client(params, progress=progress) as client:
        prof = client.policy.crossplane
        try:
            result = client.pull(ref, out)
        except CrossfetchError as e:
            if prof is None:
                raise
            from ..crossplane.emulate import in_crossplane_terms

            raise in_crossplane_terms(e, prof) from None
        if prof is not None:
            from ..crossplane.emulate import pull_summary

            # The endpoint with its policy: the transport's fallback to plain HTTP holds only
            # where that endpoint allows it (a bare Endpoint(url) would read as Strict).
            decision = client.decide(ref)
            ep = next((e for e in decision.endpoints if e.url == result.endpoint), None)
            effective = client.transport.effective_url(ep) if ep is not None else None
            result.extra["asCrossplane"] = pull_summary(prof, decision, effective)
        if use is not None:
            use(result)
    return result


@handle_errors
def run_pull(ns: argparse.Namespace) -> None:
    params = vars(ns)
    out, fmt = ns.out, ns.output_format
    result = _pull(params, ns.ref, out, progress=fmt != "json")
    d = result.to_dict()
    if fmt == "json":
        if out == "-":  # stdout carries package.yaml: the JSON goes to stderr
            sys.stderr.write(json.dumps({"ok": True, **d, "output": out}, indent=2,
                                        default=str) + "\n")
        else:
            emit_json({"ok": True, **d, "output": out})
        return
    _summary(d, err=out == "-", wrote=out if out and out != "-" else None)


def pull_parser(prog: str) -> argparse.ArgumentParser:
    p = new_parser(prog, """\
Fetch a package: resolve REF to a digest, read only the base layer, verify every digest,
cache package.yaml by digest and optionally write it out.

Examples:
  crossfetch pull reg.local:8443/fns/function-foo:v0.1.0 --ca-bundle ca.crt -o package.yaml
  crossfetch pull 10.0.0.5:5000/fns/function-bar:v1 --config local.yaml -O json
  crossfetch pull reg.local/fns/f@sha256:<digest> --pull-policy Never   # offline, from cache
  crossfetch pull reg.local/fns/f:v1 --no-cache -O json   # a Job with readOnlyRootFilesystem
  crossfetch pull 10.0.0.5:5000/fns/f:v1 --as-crossplane --crossplane-version v2.3   # CI:
      # would Crossplane v2.3.4 pull this? (exit 0 yes, 1 no, with its reason and fix)
""", epilog=REF_HELP)
    p.add_argument("ref", metavar="REF")
    p.add_argument("-o", "--out", metavar="FILE",
                   help="Write package.yaml here (- for stdout), through what is there, as cp "
                   "does: a regular file is replaced atomically; a device (/dev/null), FIFO or "
                   "a symlink's target is written in place. Checked before any download.")
    add_output_option(p)
    add_crossplane_options(p, emulate=True)
    add_fetch_options(p)
    add_policy_options(p)
    p.set_defaults(func=run_pull)
    return p


@handle_errors
def run_inspect(ns: argparse.Namespace) -> None:
    params = vars(ns)
    full: dict[str, Any] = {}

    def validate(result: Any) -> None:
        from ..xpkg import parse_package_stream

        with open(result.path, "rb") as f:
            full.update(parse_package_stream(f, full=True).to_dict())

    result = _pull(params, ns.ref, None, progress=ns.output_format != "json",
                   use=validate if ns.validate else None)
    d = result.to_dict()
    if ns.validate:
        d["objects"] = full.get("objects", d["objects"])
        d["validated"] = True
    if ns.output_format == "json":
        emit_json({"ok": True, **d})
        return
    _summary(d)
    for k, v in sorted((d.get("annotations") or {}).items()):
        if k.startswith("meta.crossplane.io/") and k != "meta.crossplane.io/readme":
            echo(f"  {k.split('/', 1)[1]:<11} {v}")


def inspect_parser(prog: str) -> argparse.ArgumentParser:
    p = new_parser(prog, """\
Show what a package is: kind, name, Crossplane version constraint, dependencies (both the
new and the legacy dependsOn form), and its objects counted by kind. Uses the cache like pull.

Examples:
  crossfetch inspect xpkg.crossplane.io/crossplane-contrib/provider-kubernetes:v0.15.0
  crossfetch inspect reg.local:5000/cfg/platform:v1 --config local.yaml --validate -O json
""", epilog=REF_HELP)
    p.add_argument("ref", metavar="REF")
    p.add_argument("--validate", action="store_true",
                   help="Parse every object of package.yaml, not just the meta object (slower).")
    add_output_option(p)
    add_crossplane_options(p, emulate=True)
    add_fetch_options(p)
    add_policy_options(p)
    p.set_defaults(func=run_inspect)
    return p


@handle_errors
def run_head(ns: argparse.Namespace) -> None:
    with build_client(vars(ns), progress=False) as client:
        result = client.head(ns.ref)
    d = result.to_dict()
    if ns.output_format == "json":
        emit_json({"ok": True, **d})
        return
    echo(d["digest"])
    echo(f"  mediaType  {d['mediaType']}\n  size       {d['size']}\n"
         f"  endpoint   {d['endpoint']}")


def head_parser(prog: str) -> argparse.ArgumentParser:
    p = new_parser(prog, """\
Resolve REF to its manifest digest, media type and size. Uses HEAD, and GET when a registry
or proxy answers HEAD badly (as Crossplane does).

Example:
  crossfetch head reg.local:8443/fns/function-foo:v0.1.0 --ca-bundle ca.crt -O json
""", epilog=REF_HELP)
    p.add_argument("ref", metavar="REF")
    add_output_option(p)
    add_policy_options(p)
    p.set_defaults(func=run_head)
    return p


@handle_errors
def run_tags(ns: argparse.Namespace) -> None:
    with build_client(vars(ns), progress=False) as client:
        decision = client.decide(ns.ref)
        names = client.registry(decision).tags()
    if ns.output_format == "json":
        emit_json({"ok": True, "reference": str(decision.reference),
                   "repository": decision.resolved.name, "tags": names})
        return
    for t in names:
        echo(t)


def tags_parser(prog: str) -> argparse.ArgumentParser:
    p = new_parser(prog, """\
List every tag of REF's repository (REF's own tag is ignored), following Link pagination.

Example:
  crossfetch tags reg.local:8443/fns/function-foo --ca-bundle ca.crt
""", epilog=REF_HELP)
    p.add_argument("ref", metavar="REF")
    add_output_option(p)
    add_policy_options(p)
    p.set_defaults(func=run_tags)
    return p


PARSERS: dict[str, Callable[[str], argparse.ArgumentParser]] = {
    "pull": pull_parser, "inspect": inspect_parser, "head": head_parser, "tags": tags_parser,
}
