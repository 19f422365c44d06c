"""``resolve``: a package's whole dependency graph, what Crossplane will do, and a solution."""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .common import (
    REF_HELP,
    add_policy_options,
    bounded_int,
    build_policy,
    echo,
    emit_json,
    handle_errors,
    new_parser,
)

if TYPE_CHECKING:
    from ..resolve import Resolution


def _progress() -> Callable[[int, int], None] | None:
    if not sys.stderr.isatty():
        return None

    def show(seen: int, pending: int) -> None:
        sys.stderr.write(f"\rresolving: {seen} package versions, {pending} requests in flight ")
        sys.stderr.flush()

    return show


@handle_errors
def run_resolve(ns: argparse.Namespace) -> int:
    from ..cache import Cache
    from ..client import Client
    from ..resolve import resolve

    params = vars(ns)
    with tempfile.TemporaryDirectory(prefix="crossfetch-resolve-") as scratch:
        # Without --pull the registry is read through a throwaway cache: what resolve reports
        # is what the registry serves now, and the user's cache is left as it was.
        cache = Cache(params.get("cache_dir")) if ns.pull else Cache(scratch)
        progress = _progress()
        with Client(build_policy(params), cache=cache,
                    default_registry=params.get("default_registry"),
                    timeout=params.get("timeout"), retries=params.get("retries", 3)) as client:
            res = resolve(client, ns.ref, crossplane_version=ns.crossplane_version,
                          jobs=ns.jobs, max_steps=ns.max_steps, on_progress=progress)
        if progress:
            sys.stderr.write("\r\033[K")
        return _render(ns, res)


def _render(ns: argparse.Namespace, res: Resolution) -> int:
    doc = res.to_dict()
    if ns.pull:
        paths = {(i.fetched.source, i.fetched.version): i.fetched.cache_path
                 for i in res.crossplane.installs}
        for p in doc["packages"]:
            p["cachePath"] = paths.get((p["source"], p["version"]))
    code = 0 if doc["crossplane"]["ok"] and doc["solution"]["ok"] else 1
    if ns.emit == "configuration":
        import yaml

        sys.stdout.write(yaml.safe_dump(res.pinned_configuration(pin=ns.pin), sort_keys=False))
        return 0 if res.solution.ok or res.crossplane.ok else 1
    if ns.output_format == "json":
        emit_json({"ok": True, **doc})
    elif ns.output_format == "yaml":
        import yaml

        sys.stdout.write(yaml.safe_dump({"ok": True, **doc}, sort_keys=False))
    else:
        _tree(res, doc)
    return code


def _short(version: str) -> str:
    return f"{version[:19]}…" if version.startswith("sha256:") else version


def _tree(res: Resolution, doc: dict[str, Any]) -> None:
    root = doc["root"]
    echo(f"{root['source']}@{root['version']}  ({root['kind']}, Crossplane "
         f"{doc['crossplaneVersion']}, semver {doc['semver']})")
    installs = {i.fetched.source: i for i in res.crossplane.installs}
    shown: set[str] = set()

    def walk(source: str, prefix: str) -> None:
        inst = installs.get(source)
        edges = list(inst.fetched.edges) if inst else []
        for n, e in enumerate(edges):
            last = n == len(edges) - 1
            child = installs.get(e.source)
            what = _short(child.fetched.version) if child else "MISSING"
            again = "  (see above)" if e.source in shown and child else ""
            echo(f"{prefix}{'└─ ' if last else '├─ '}{e.source} {_short(e.constraint)} -> "
                 f"{what}{again}")
            if child and e.source not in shown:
                shown.add(e.source)
                walk(e.source, prefix + ("   " if last else "│  "))

    shown.add(root["source"])
    walk(root["source"], "")
    cp = doc["crossplane"]
    echo()
    if cp["ok"]:
        echo(f"crossplane: ok, {len(doc['packages'])} packages, one per reconcile")
    else:
        echo("crossplane: will fail")
        for m in res.crossplane.messages():
            echo(f"  {m}")
    sol = doc["solution"]
    if sol["ok"]:
        differ = [p for p in sol["packages"][1:]
                  if installs.get(p["source"]) is None
                  or installs[p["source"]].fetched.version != p["version"]]
        if differ:
            echo("solution: every constraint holds with")
            for p in differ:
                echo(f"  {p['source']} {p['version']}")
            echo("  (pin them with: crossfetch resolve REF --emit configuration)")
        else:
            echo("solution: the same versions satisfy every constraint")
    else:
        echo(f"solution: {sol.get('error')}")
        conflict = sol.get("conflict") or {}
        if conflict:
            echo(f"  {conflict['source']}: {conflict['reason']}")
            for chain in conflict["chains"]:
                echo(f"    {chain}")
    for note in doc["notes"]:
        echo(f"note: {note}")


def resolve_parser(prog: str) -> argparse.ArgumentParser:
    from ..crossplane.profile import DEFAULT_VERSION, SUPPORTED

    p = new_parser(prog, """\
Resolve a package's whole dependency graph before anything is applied, concurrently, through
the same rewrite, TLS and pull-secret policy as pull. Then say two things:

  crossplane  what that Crossplane version will do: it installs one missing dependency per
              reconcile, each from the constraint on the edge that first implied it, and its
              exact error (incompatible, missing, cycle, no valid version) if it gets stuck;
  solution    a set of versions that satisfies every constraint (a bounded backtracking
              search, highest versions first), or why none exists, with the chain of who
              required what.

The semver library follows --crossplane-version: Masterminds semver v1.5.0 up to v2.2.x
(comma-only AND, caret on 0.x keeps only the major), v3 from v2.3.0.

Examples:
  crossfetch resolve xpkg.upbound.io/upbound/platform-ref-aws:v1.1.0
  crossfetch resolve reg.local:5000/cfg/platform:v1 --config mirror.yaml -O json > lock.json
  crossfetch resolve reg.local:5000/cfg/platform:v1 --crossplane-version v2.2 -O yaml
  crossfetch resolve reg.local:5000/cfg/platform:v1 --emit configuration > crossplane.yaml
  crossfetch resolve reg.local:5000/cfg/platform:v1 --pull --cache-dir /var/cache/xpkg

Exit codes: 0 Crossplane will succeed and a solution exists; 1 either fails (the reason is
printed) or a fetch failed; 2 bad usage.""", epilog=REF_HELP)
    p.add_argument("ref", metavar="REF")
    p.add_argument("--output", "-O", dest="output_format", choices=["text", "json", "yaml"],
                   default="text", help="A tree for humans, or the lock document.")
    p.add_argument("--crossplane-version", metavar="VERSION", default=DEFAULT_VERSION,
                   help=f"Model this Crossplane release ({', '.join(SUPPORTED)}, any patch of "
                   "those minors, or just the minor).")
    p.add_argument("--jobs", "-j", type=bounded_int(1, 64), default=8, metavar="N",
                   help="Requests in flight at once (1..64), sharing one connection pool and "
                   "token cache.")
    p.add_argument("--max-steps", type=bounded_int(1, 1_000_000), default=2000, metavar="N",
                   help="Candidate versions (1..1000000) the solution search may try before "
                   "giving up.")
    p.add_argument("--pull", action="store_true",
                   help="Keep every package in the cache (--cache-dir); without it resolve "
                   "leaves the cache untouched.")
    p.add_argument("--cache-dir", metavar="DIR",
                   help="Package cache for --pull (default $XDG_CACHE_HOME/crossfetch).")
    p.add_argument("--emit", choices=["configuration"],
                   help="Print the root's meta object with each dependsOn pinned (solution, "
                   "else Crossplane's choice) instead of the lock.")
    p.add_argument("--pin", choices=["digest", "version"], default="digest",
                   help="With --emit: pin to the digest or to the chosen tag.")
    add_policy_options(p)
    p.set_defaults(func=run_resolve)
    return p


PARSERS: dict[str, Callable[[str], argparse.ArgumentParser]] = {"resolve": resolve_parser}
