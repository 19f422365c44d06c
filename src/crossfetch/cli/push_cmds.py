"""``push``: package files to a registry (or ``--build DIR``: build, then push)."""

from __future__ import annotations

import argparse
import os
import shlex
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .build_cmds import add_build_options, ignore_globs
from .common import (
    REF_HELP,
    add_output_option,
    add_policy_options,
    build_client,
    echo,
    emit_json,
    handle_errors,
    new_parser,
)

_UNITS = {"": 1, "k": 1024, "kb": 1024, "kib": 1024, "m": 1024**2, "mb": 1024**2,
          "mib": 1024**2}


def _size(text: str) -> int:
    t = text.strip().lower()
    num = t.rstrip("abcdefghijklmnopqrstuvwxyz")
    unit = t[len(num):]
    if not num.isdigit() or unit not in _UNITS:
        raise argparse.ArgumentTypeError(f"{text!r} is not a size like 5MiB or 1048576")
    return int(num) * _UNITS[unit]


def _pull_hint(ns: argparse.Namespace, ref: str, digest: str) -> str:
    """The ``crossfetch pull`` that reads the pushed package back, with the same policy."""
    name = ref.rsplit(":", 1)[0] if ":" in ref.rsplit("/", 1)[-1] else ref
    args = ["crossfetch", "pull", f"{name}@{digest}"]
    for f in ns.config_files:
        args += ["--config", f]
    if ns.ca_bundle or os.environ.get("CA_BUNDLE_PATH"):
        args += ["--ca-bundle", ns.ca_bundle or os.environ["CA_BUNDLE_PATH"]]
    for f in ns.pull_secrets:
        args += ["--pull-secret", f]
    if ns.allow_plain_http_credentials:
        args.append("--allow-plain-http-credentials")
    return shlex.join([*args, "-o", "package.yaml"])


@handle_errors
def run_push(ns: argparse.Namespace) -> None:
    from ..upload import find_package_file, parse_annotations, push

    annotations = parse_annotations(ns.oci_annotation)
    files: list[str | Path] = [f for v in ns.package_files for f in v.split(",") if f]
    built: dict[str, Any] | None = None
    with tempfile.TemporaryDirectory(prefix="crossfetch-push-") as tmp:
        if ns.build is not None:
            if files:
                from ..errors import UsageError

                raise UsageError("--build and -f/--package-files exclude each other",
                                 fix="push either a directory (--build DIR) or files (-f)")
            from ..xpkg.build import build

            result = build(ns.build, examples_root=ns.examples_root,
                           ignore=ignore_globs(ns.ignore), output=Path(tmp) / "package.xpkg",
                           runtime_image=ns.embed_runtime_image_tarball)
            built = {"kind": result.kind, "name": result.name, "digest": result.digest}
            files = [result.path]
        elif not files:
            files = [find_package_file(Path.cwd())]
        with build_client(vars(ns), progress=ns.output_format != "json") as client:
            pushed = push(client, ns.ref, files, annotations=annotations,
                          chunk_size=ns.chunk_size, mount_from=tuple(ns.mount_from))
    d = pushed.to_dict()
    if built:
        d["built"] = built
        d["images"][0]["path"] = None  # a temporary file, gone
    d["pull"] = _pull_hint(ns, ns.ref, pushed.digest)
    if ns.output_format == "json":
        emit_json({"ok": True, **d})
        return
    for note in pushed.notes:
        echo(f"note: {note}", err=True)
    echo(pushed.digest)
    blobs = d["blobs"]
    echo(f"  pushed     {pushed.reference} ({pushed.media_type.rsplit('.', 2)[-2]})")
    for img in d["images"]:
        plat = "/".join(v for v in (img["platform"].get("os"), img["platform"].get(
            "architecture")) if v) or "no platform"
        echo(f"  image      {img['digest']} ({plat}){' ' + img['path'] if img['path'] else ''}")
    echo(f"  blobs      {blobs['uploaded']} uploaded ({blobs['bytesSent']} bytes), "
         f"{blobs['skipped']} already there, {blobs['mounted']} mounted")
    echo(f"  read back  {d['pull']}")


def push_parser(prog: str) -> argparse.ArgumentParser:
    p = new_parser(prog, """\
Push package files to REF, a fully qualified tag (registry/repository:tag), as `crossplane xpkg
push` does: the config labels become layer annotations io.crossplane.xpkg: base|upbound. One
file goes to the tag; several are pushed by digest and an OCI index (platforms from each
config) goes to the tag. Blobs the repository has are skipped; uploads stream from the file.
The registry is reached under the same policy and credentials as pull (tokens for pull,push);
mirrors and rewriteImage never apply to a push. Plain HTTP only where policy allows it.

Examples:
  crossfetch push -f fn.xpkg reg.local:5000/fns/function-foo:v0.1.0 --config local.yaml
  crossfetch push -f fn-amd64.xpkg,fn-arm64.xpkg reg.local:8443/fns/function-foo:v0.2.0 \\
      --ca-bundle ca.crt -a org.opencontainers.image.source=https://github.com/me/fn
  crossfetch push --build package reg.local:5000/fns/function-foo:dev    # the inner loop
  crossfetch push -f big.xpkg reg.local:5000/p/provider:v1 --chunk-size 16MiB -O json
""", epilog=REF_HELP)
    p.add_argument("ref", metavar="REF")
    p.add_argument("-f", "--package-files", action="append", default=[], metavar="PATH[,PATH]",
                   help="Package files to push (comma-separated, repeatable). Default: the "
                   "single .xpkg in the working directory.")
    p.add_argument("-a", "--oci-annotation", action="append", default=[], metavar="KEY=VALUE",
                   help="An annotation for the manifest (and the index). Repeatable.")
    p.add_argument("--build", metavar="DIR",
                   help="Build the package in DIR (its crossplane.yaml) to a temporary file and "
                   "push that; the build options below apply.")
    p.add_argument("--chunk-size", type=_size, default=0, metavar="SIZE",
                   help="Upload blobs larger than SIZE in PATCH chunks of SIZE (e.g. 16MiB); "
                   "0 sends each blob in one PUT.")
    p.add_argument("--mount-from", action="append", default=[], metavar="REPOSITORY",
                   help="Try a cross-repository mount from this repository of the same "
                   "registry before uploading a blob. Repeatable.")
    add_output_option(p)
    add_build_options(p, root_flag=False)
    add_policy_options(p)
    p.set_defaults(func=run_push)
    return p


PARSERS: dict[str, Callable[[str], argparse.ArgumentParser]] = {"push": push_parser}

