"""``build``: a package file, as ``crossplane xpkg build`` writes it."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from .common import add_output_option, echo, emit_json, handle_errors, new_parser


def add_build_options(p: argparse.ArgumentParser, *, root_flag: bool = True) -> None:
    """The ``crossplane xpkg build`` flags (crossplane/cli cmd/crossplane/xpkg/build.go)."""
    g = p.add_argument_group("build")
    if root_flag:
        g.add_argument("-f", "--package-root", default=".", metavar="DIR",
                       help="The directory that holds the package's crossplane.yaml.")
    g.add_argument("-e", "--examples-root", default="./examples", metavar="DIR",
                   help="A directory of example YAML files to include in the package "
                   "(as .up/examples.yaml).")
    g.add_argument("--ignore", action="append", default=[], metavar="GLOB",
                   help="A path relative to the package root to leave out; wildcards work, "
                   "directories cannot be left out. Repeatable; commas separate several.")
    g.add_argument("--embed-runtime-image-tarball", metavar="PATH",
                   help="A runtime image to embed (Functions, Providers): a `docker save` "
                   "tarball or an OCI layout (directory or tarball).")


def ignore_globs(values: list[str]) -> tuple[str, ...]:
    return tuple(g for v in values for g in v.split(",") if g)


@handle_errors
def run_build(ns: argparse.Namespace) -> None:
    from ..xpkg.build import build

    result = build(ns.package_root, examples_root=ns.examples_root,
                   ignore=ignore_globs(ns.ignore), output=ns.package_file,
                   runtime_image=ns.embed_runtime_image_tarball)
    d = result.to_dict()
    if ns.output_format == "json":
        emit_json({"ok": True, **d})
        return
    echo(f"{d['kind']} {d['name']}")
    echo(f"  wrote      {d['path']} ({d['size']} bytes)")
    echo(f"  digest     {d['digest']}")
    for layer in d["layers"]:
        mark = f" ({layer['annotation']})" if layer.get("annotation") else ""
        echo(f"  layer      {layer['digest'][:19]}… {layer['size']} bytes{mark}")


def build_parser(prog: str) -> argparse.ArgumentParser:
    p = new_parser(prog, """\
Build a package file from a directory: crossplane.yaml plus the package's objects (CRDs for a
Function; CRDs and webhook configurations for a Provider; XRDs and Compositions for a
Configuration). The output is what `crossplane xpkg build` writes: a `docker save` archive with
package.yaml in a layer marked io.crossplane.xpkg: base, the examples in .up/examples.yaml, no
timestamps (the same tree always gives the same bytes). A linter for the package's kind runs
first; its errors name the file and line.

Examples:
  crossfetch build -f package                     # writes package/<name>-<digest12>.xpkg
  crossfetch build -f package -o fn.xpkg --embed-runtime-image-tarball runtime-amd64.tar
  crossfetch build -f package --ignore 'tests/*' -O json
  crossfetch push -f fn.xpkg reg.local:5000/fns/function-foo:v0.1.0
""", args="")
    add_build_options(p)
    p.add_argument("-o", "--package-file", metavar="PATH",
                   help="The file to write (default: <metadata.name>-<12 hex of the digest>.xpkg "
                   "in the package root). Written atomically.")
    add_output_option(p)
    p.set_defaults(func=run_build)
    return p


PARSERS: dict[str, Callable[[str], argparse.ArgumentParser]] = {"build": build_parser}
