"""What-if measurements for the Function target: how fast would ``crossfetch pull`` be with
the core changes docs/benchmarks.md proposes? Prototypes only, never shipped code.

It starts a registry, pushes the 30 MiB-runtime Function and measures, alternating:
  baseline      ``crossfetch pull`` as it is;
  no-ca         the same with plain-HTTP clients built on a root-less SSL context (httpx loads
                the whole CA bundle for ``verify=True``, even for http:// clients);
  lean          crossfetch's real policy, cache and xpkg code (``Client._fetch``) over a stdlib
                ``http.client`` source instead of httpx, with click imported as the CLI would;
  lean-noclick  the same without click;
  skopeo copy   the peer.
Run from the repository root: ``bench/run --whatif [--runs N]``.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

from bench import report
from bench.measure import Tool, measure
from bench.run import VENV_BIN, Fresh, _imageconfig
from tests.support import packages as pk
from tests.support.push import skopeo_push
from tests.support.registry import Registry

PROTO = Path(__file__).resolve().parent / "clients" / "whatif_pull.py"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="bench.whatif", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=11)
    args = ap.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="crossfetch-whatif-"))
    reg = Registry(work / "reg")
    try:
        reg.start()
        built = pk.function_with_runtime(work / "fn", 30)
        ref = reg.ref("bench/function:v0.1.0")
        skopeo_push(f"oci:{built.layout}:{built.tag}", ref, tls_verify=False)
        policy = work / "policy.yaml"
        policy.write_text(_imageconfig(f"{reg.host}/", "Disabled", None))
        cache, out = work / "cache", work / "package.yaml"
        py = str(VENV_BIN / "python")
        pull = [ref, "--config", str(policy), "-o", str(out), "--pull-policy", "Always",
                "--cache-dir", str(cache)]
        tools = [
            Tool("baseline", [py, str(PROTO), "cli", *pull], prepare=Fresh(cache)),
            Tool("no-ca", [py, str(PROTO), "cli-noca", *pull], prepare=Fresh(cache)),
            Tool("lean", [py, str(PROTO), "lean", *pull], prepare=Fresh(cache)),
            Tool("lean-noclick", [py, str(PROTO), "lean-noclick", *pull], prepare=Fresh(cache)),
            Tool("skopeo copy", ["skopeo", "--insecure-policy", "copy", "--quiet",
                                 "--src-tls-verify=false", f"docker://{ref}",
                                 f"oci:{work / 'oci'}"], prepare=Fresh(work / "oci")),
        ]
        series = measure(tools, args.runs)
        if out.read_bytes() != built.package_yaml:
            sys.exit("whatif: the prototype wrote a different package.yaml")
        report.print_scenario(report.scenario(
            "whatif", "http", series, reference="skopeo copy", notes="prototypes", targets=[]))
    finally:
        reg.stop()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
