"""``cache ls`` and ``cache prune``: what the package cache holds, and bounding its size."""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

from .common import HelpFormatter, add_output_option, echo, emit_json, handle_errors, new_parser


def _size(text: str) -> int:
    from ..cache import parse_size

    try:
        return parse_size(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _ago(t: float) -> str:
    s = max(0, int(time.time() - t))
    for unit, n in (("d", 86400), ("h", 3600), ("m", 60)):
        if s >= n:
            return f"{s // n}{unit} ago"
    return f"{s}s ago"


@handle_errors
def run_ls(ns: argparse.Namespace) -> None:
    from ..cache import Cache, format_size

    cache = Cache(ns.cache_dir)
    entries = cache.entries()
    total = sum(e.size for e in entries)
    if ns.output_format == "json":
        emit_json({"ok": True, "root": str(cache.root), "size": total,
                   "maxSize": cache.max_size,
                   "entries": [e.to_dict() for e in reversed(entries)]})
        return
    if not entries:
        echo(f"no entries in {cache.root}")
        return
    for e in reversed(entries):  # most recently used first
        what = " ".join(str(x) for x in (e.meta.get("kind"), e.meta.get("name")) if x)
        echo(f"{e.digest[:19]}  {e.variant:<13} {format_size(e.size):>10}  "
             f"{_ago(e.last_used):>8}  {e.meta.get('reference') or ''}"
             f"{f'  ({what})' if what else ''}")
    echo(f"{len(entries)} entries, {format_size(total)} in {cache.root} "
         f"(bound {format_size(cache.max_size)})")


@handle_errors
def run_prune(ns: argparse.Namespace) -> None:
    from ..cache import Cache, format_size

    cache = Cache(ns.cache_dir)
    r = cache.prune(ns.max_size)
    if ns.output_format == "json":
        emit_json({"ok": True, "root": str(cache.root),
                   "maxSize": cache.max_size if ns.max_size is None else ns.max_size,
                   "removed": [e.to_dict() for e in r.removed],
                   "freed": sum(e.size for e in r.removed),
                   "inUse": [e.to_dict() for e in r.in_use],
                   "leftovers": r.leftovers, "size": r.size})
        return
    for e in r.removed:
        echo(f"removed {e.digest[:19]}  {e.variant}  {format_size(e.size)}  "
             f"{e.meta.get('reference') or ''}")
    for e in r.in_use:
        echo(f"kept    {e.digest[:19]}  {e.variant}  (in use by another process)")
    echo(f"freed {format_size(sum(e.size for e in r.removed))} "
         f"({len(r.removed)} entries, {r.leftovers} crash leftovers); "
         f"{format_size(r.size)} left in {cache.root}")


def cache_parser(prog: str) -> argparse.ArgumentParser:
    p = new_parser(prog, args="COMMAND ...", doc="""\
List and prune the package cache ($XDG_CACHE_HOME/crossfetch, or --cache-dir).

Entries are package.yaml files keyed by manifest digest. After each new entry, the least
recently used ones beyond CROSSFETCH_CACHE_MAX_SIZE (default 5GiB) are removed; entries
another process is using are never removed.
""")
    sub = p.add_subparsers(dest="cache_command", metavar="COMMAND", required=True)
    ls = sub.add_parser("ls", formatter_class=HelpFormatter, prog=f"{prog} ls",
                        usage="%(prog)s [options]", help="List entries, most recently used first.",
                        description="""\
List cache entries, most recently used first: digest, platform variant, size, last use,
the reference it was pulled as, kind and name.

Examples:
  crossfetch cache ls
  crossfetch cache ls --cache-dir /var/cache/crossfetch -O json
""")
    pr = sub.add_parser("prune", formatter_class=HelpFormatter, prog=f"{prog} prune",
                        usage="%(prog)s [--max-size SIZE] [options]",
                        help="Remove crash leftovers and least recently used entries.",
                        description="""\
Remove the leftovers of crashed pulls (temporary directories of dead processes, broken
entries), then the least recently used entries until the cache holds at most SIZE.
Entries in use by a running pull are kept.

Examples:
  crossfetch cache prune                    # leftovers, and down to CROSSFETCH_CACHE_MAX_SIZE
  crossfetch cache prune --max-size 500M    # k, M, G = 1000^n; Ki, Mi, Gi = 1024^n
  crossfetch cache prune --max-size 0 -O json   # empty it
""")
    pr.add_argument("--max-size", type=_size, metavar="SIZE",
                    help="Keep at most this much (default: CROSSFETCH_CACHE_MAX_SIZE, else 5GiB).")
    for sp, func in ((ls, run_ls), (pr, run_prune)):
        sp.add_argument("--cache-dir", metavar="DIR",
                        help="Package cache (default $XDG_CACHE_HOME/crossfetch).")
        add_output_option(sp)
        sp.set_defaults(func=func)
    return p


PARSERS: dict[str, Callable[[str], argparse.ArgumentParser]] = {"cache": cache_parser}
