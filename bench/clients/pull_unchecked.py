"""``crossfetch pull`` with the per-document YAML check switched off: attribution only.

Never a product mode. Issue 10 made every document of ``package.yaml`` parse as Crossplane
parses it (libyaml, ~55 MB/s here); issue 11 asks that the pull's benchmark ratios be no worse
than before the design change. Running this beside the real pull in the same bench run splits
the two: what the pipeline costs, and what the full-document check adds. Documents are still
split, identified (apiVersion and kind) and linted; only libyaml's pass over the rest of each
document is skipped, and no helper process is started.

usage: pull_unchecked.py ARGS...   (the arguments of ``crossfetch``)
"""

from __future__ import annotations

import sys

import yaml

import crossfetch.xpkg.parallel as parallel
from crossfetch.cli.main import main

yaml.CSafeLoader.raw_parse = lambda self: 0  # type: ignore[method-assign]
parallel.cpus = lambda: 1

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
