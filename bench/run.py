"""crossfetch against its peers, on one real registry, in one run; reported as median ratios.

Run it from the repository root with ``bench/run`` (see bench/README.md). It starts a real
``docker-registry`` (plain HTTP on loopback; ``--tls`` adds an HTTPS front on the same storage),
pushes test packages with skopeo, then measures whole processes, peers and crossfetch
alternating, and prints a table plus ``bench/results/<time>.json``.

Scenarios (issue 15's targets; issue 2's were looser):
  function  P1: 30 MiB-runtime Function: crossfetch pull vs skopeo copy (target <= 0.5x), curl
            of the base layer as the limit.
  provider  P2: Provider with a 105 MB package.yaml: crossfetch pull -o FILE vs
            curl | gzip -d > FILE (target <= 0.6x), crossfetch peak RSS (target < 64 MB).
  blob      B1: a 50 MB blob: curl (crossfetch <= 1.5x), python-dxf, oras-py, skopeo.
  doctor    D1: crossfetch doctor against the healthy registry (target < 150 ms wall).
  startup   crossfetch --version / --help against bare Python, and -X importtime.
  scaling   crossfetch pull -o against package.yaml size (--scaling-mb), time and peak RSS,
            plotted into docs/bench-scaling.png with matplotlib from the peer venv.

Whole processes are timed by hyperfine (bench/measure.py); peak RSS by GNU time.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench import report
from bench.measure import GNU_TIME, Tool, measure
from bench.peers import DEFAULT_PEER_VENV, need, peer_python, versions
from bench.startup import importtime, summarize
from tests.support import packages as pk
from tests.support.push import skopeo_push
from tests.support.registry import Registry

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = ROOT / ".venv" / "bin"
CLIENTS = Path(__file__).resolve().parent / "clients"
SCENARIOS = ("function", "provider", "blob", "doctor", "startup", "scaling")
SCALING_MB = "1,10,50,100,190"  # MiB; 200 MiB is the package cap
BLOB_RUNTIME_MIB = 48  # a 48 MiB incompressible runtime layer is a 50.3 MB blob


@dataclass(frozen=True)
class Target:
    """A registry front the scenarios run against."""

    name: str  # "http" or "https"
    registry: Registry
    policy: Path
    ca: Path | None

    def ref(self, repo_tag: str) -> str:
        return self.registry.ref(repo_tag)

    def blob_url(self, repo: str, digest: str) -> str:
        return f"{self.registry.url}/v2/{repo}/blobs/{digest}"

    def curl(self) -> list[str]:
        return ["curl", "-sSf", *(["--cacert", str(self.ca)] if self.ca else [])]

    def skopeo_src(self) -> list[str]:
        if self.ca is None:
            return ["--src-tls-verify=false"]
        return ["--src-cert-dir", str(self.ca.parent)]


def _imageconfig(prefix: str, mode: str, ca: str | None) -> str:
    doc = (
        "apiVersion: pkg.crossplane.io/v1beta1\nkind: ImageConfig\n"
        f"metadata: {{name: bench-{mode.lower()}}}\n"
        f"spec:\n  matchImages: [{{type: Prefix, prefix: '{prefix}'}}]\n"
        f"  registry:\n    tls:\n      mode: {mode}\n"
    )
    if ca:
        doc += "      caBundleConfigMapRef: {name: bench-ca, key: ca.crt}\n"
        body = "".join("    " + line + "\n" for line in ca.splitlines())
        doc += "---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: bench-ca}\ndata:\n"
        doc += f"  ca.crt: |\n{body}"
    return doc


def _crossfetch_pull(t: Target, ref: str, out: Path, cache: Path, *,
                     name: str = "crossfetch pull",
                     program: tuple[str, ...] = (str(VENV_BIN / "crossfetch"),)) -> Tool:
    argv = [*program, "pull", ref, "--config", str(t.policy), "-o", str(out),
            "--pull-policy", "Always", "--cache-dir", str(cache)]
    return Tool(name, argv, reset=cache)


def _curl_gunzip(t: Target, url: str, out: Path) -> Tool:
    """The limit a pull of a package.yaml is measured against: the layer through gzip -d."""
    return Tool("curl | gzip -d", ["bash", "-o", "pipefail", "-c",
                                   f"{' '.join(t.curl())} '{url}' | gzip -d > '{out}'"])


def _skopeo_copy(t: Target, ref: str, dest: Path) -> Tool:
    argv = ["skopeo", "--insecure-policy", "copy", "--quiet", *t.skopeo_src(),
            f"docker://{ref}", f"oci:{dest}"]
    return Tool("skopeo copy", argv, reset=dest)


def scenario_function(t: Target, work: Path, built: pk.BuiltPackage,
                      runs: int) -> dict[str, object]:
    ref = t.ref("bench/function:v0.1.0")
    assert built.base_layer_digest
    tools = [
        _crossfetch_pull(t, ref, work / "fn-package.yaml", work / "fn-cache"),
        _skopeo_copy(t, ref, work / "fn-oci"),
        Tool("curl base layer", [*t.curl(), "-o", str(work / "fn-base.tgz"),
                                 t.blob_url("bench/function", built.base_layer_digest)]),
    ]
    series = measure(tools, runs)
    _check(work / "fn-package.yaml", built.package_yaml)
    return report.scenario(
        "function", t.name, series, reference="skopeo copy",
        notes="crossfetch reads only the base layer; skopeo copies the whole image",
        targets=[report.ratio_target("crossfetch pull", "skopeo copy", "<=", 0.5)],
        sizes={"image_bytes": sum(len(b) for b in built.blobs.values()),
               "base_layer_bytes": len(built.blobs[built.base_layer_digest])},
    )


def scenario_provider(t: Target, work: Path, built: pk.BuiltPackage,
                      runs: int) -> dict[str, object]:
    ref = t.ref("bench/provider:v1")
    assert built.base_layer_digest
    url = t.blob_url("bench/provider", built.base_layer_digest)
    tools = [
        _crossfetch_pull(t, ref, work / "prov-package.yaml", work / "prov-cache"),
        _curl_gunzip(t, url, work / "prov-curl.tar"),
        # Attribution, not a peer: the same pull without libyaml's pass over each document.
        _crossfetch_pull(t, ref, work / "prov-unchecked.yaml", work / "prov-cache-unchecked",
                         name="crossfetch pull (documents unchecked)",
                         program=(str(VENV_BIN / "python"), str(CLIENTS / "pull_unchecked.py"))),
    ]
    series = measure(tools, runs)
    _check(work / "prov-package.yaml", built.package_yaml)
    return report.scenario(
        "provider", t.name, series, reference="curl | gzip -d",
        notes="curl | gzip -d writes the layer's tar; crossfetch verifies digests, parses every "
        "document (as Crossplane does), stores package.yaml in its cache and copies it to -o; "
        "'documents unchecked' is the same pull without libyaml's pass over each document "
        "(bench/clients/pull_unchecked.py, attribution only)",
        targets=[report.ratio_target("crossfetch pull", "curl | gzip -d", "<=", 0.6),
                 report.rss_target("crossfetch pull", 64e6)],
        sizes={"package_yaml_bytes": len(built.package_yaml),
               "base_layer_bytes": len(built.blobs[built.base_layer_digest])},
    )


def scenario_blob(t: Target, work: Path, built: pk.BuiltPackage, peer_py: Path,
                  runs: int) -> dict[str, object]:
    repo = "bench/blob"
    ref = t.ref(f"{repo}:v1")
    digest = built.runtime_layer_digest
    assert digest
    size = len(built.blobs[digest])
    host = t.registry.host
    ca = [str(t.ca)] if t.ca else []
    out = work / "blob.out"
    peer = [t.name, host, repo, digest, str(out), *ca]
    tools = [
        Tool("curl", [*t.curl(), "-o", str(out), t.blob_url(repo, digest)]),
        Tool("python-dxf", [str(peer_py), str(CLIENTS / "blob_dxf.py"), *peer]),
        Tool("oras-py", [str(peer_py), str(CLIENTS / "blob_oras.py"), *peer]),
        _skopeo_copy(t, ref, work / "blob-oci"),
        Tool("crossfetch RegistryClient",
             [str(VENV_BIN / "python"), str(CLIENTS / "blob_crossfetch.py"), ref, digest,
              str(size), str(out), str(t.policy)]),
    ]
    series = measure(tools, runs)
    if out.stat().st_size != size:
        raise SystemExit(f"bench: blob output is {out.stat().st_size} bytes, expected {size}")
    return report.scenario(
        "blob", t.name, series, reference="curl",
        notes="one blob to a file, each tool as a whole process (start-up included); "
        "skopeo copies the whole single-blob image; oras-py does not verify the digest",
        targets=[report.ratio_target("crossfetch RegistryClient", "curl", "<=", 1.5)],
        sizes={"blob_bytes": size},
    )


def scenario_doctor(t: Target, runs: int) -> dict[str, object]:
    py = str(VENV_BIN / "python")
    argv = [str(VENV_BIN / "crossfetch"), "doctor", t.ref("bench/function:v0.1.0"), "--config",
            str(t.policy), "--no-node-config"]
    tools = [Tool("crossfetch doctor", argv), Tool("python -c pass", [py, "-c", "pass"])]
    series = measure(tools, runs)
    return report.scenario(
        "doctor", t.name, series, reference="python -c pass",
        notes="every stage against a healthy registry; the interpreter's start-up is the floor",
        targets=[report.time_target("crossfetch doctor", 0.150)])


def scenario_scaling(t: Target, work: Path, sizes_mib: list[int], runs: int,
                     peer_py: Path | None, plot: Path | None) -> dict[str, object]:
    """pull -o time and peak RSS against package.yaml size, with curl | gzip -d beside it."""
    points = []
    for mib in sizes_mib:
        b = pk.big_provider(work / "layouts" / f"scale-{mib}", mib)
        repo = f"bench/scale{mib}"
        skopeo_push(f"oci:{b.layout}:{b.tag}", t.ref(f"{repo}:v1"), tls_verify=False)
        assert b.base_layer_digest
        out, out_curl = work / f"scale-{mib}.yaml", work / f"scale-{mib}.tar"
        url = t.blob_url(repo, b.base_layer_digest)
        tools = [_crossfetch_pull(t, t.ref(f"{repo}:v1"), out, work / "scale-cache"),
                 _curl_gunzip(t, url, out_curl)]
        series = measure(tools, runs)
        _check(out, b.package_yaml)
        cf, ref = series
        points.append({"package_yaml_bytes": len(b.package_yaml),
                       "layer_bytes": len(b.blobs[b.base_layer_digest]),
                       "crossfetch": cf.to_dict(), "curl_gzip": ref.to_dict(),
                       "ratio": round(cf.median_s / ref.median_s, 3)})
        print(f"bench: scaling {len(b.package_yaml) / 1e6:6.1f} MB: crossfetch "
              f"{cf.median_s * 1000:.0f} ms ({cf.min_s * 1000:.0f}-{cf.max_s * 1000:.0f}), "
              f"{cf.peak_rss_mib:.1f} MiB; curl | gzip -d {ref.median_s * 1000:.0f} ms; "
              f"ratio {points[-1]['ratio']:.2f}", file=sys.stderr, flush=True)
        shutil.rmtree(work / "layouts" / f"scale-{mib}", ignore_errors=True)
        out.unlink(missing_ok=True)
        out_curl.unlink(missing_ok=True)
    result: dict[str, object] = {"scenario": "scaling", "transport": t.name, "points": points,
                                 "tools": [], "targets": []}
    if peer_py is not None and plot is not None:
        data = work / "scaling.json"
        data.write_text(json.dumps(result))
        subprocess.run([str(peer_py), str(Path(__file__).with_name("plot.py")), str(data),
                        str(plot)], check=True)
        result["plot"] = str(plot)
    return result


def scenario_startup(work: Path, runs: int, pull_argv: list[str]) -> dict[str, object]:
    py = str(VENV_BIN / "python")
    cf = str(VENV_BIN / "crossfetch")
    tools = [
        Tool("python -c pass", [py, "-c", "pass"]),
        Tool("crossfetch --version", [cf, "--version"]),
        Tool("crossfetch --help", [cf, "--help"]),
        Tool("crossfetch pull --help", [cf, "pull", "--help"]),
    ]
    series = measure(tools, runs)
    help_imports = summarize(importtime([py, "-m", "crossfetch.cli.main", "--help"]))
    pull_imports = summarize(importtime([py, "-m", "crossfetch.cli.main", *pull_argv]))
    result = report.scenario("startup", "-", series, reference="python -c pass",
                             notes="bare interpreter start-up is the floor", targets=[])
    result["importtime_help"] = help_imports
    result["importtime_pull"] = pull_imports
    return result


def _check(path: Path, expected: bytes) -> None:
    if path.read_bytes() != expected:
        raise SystemExit(f"bench: {path} differs from the package.yaml that was built")


def machine_info(peer_py: Path | None) -> dict[str, object]:
    def first_line(cmd: list[str]) -> str:
        try:
            out = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=30)
        except OSError:
            return "missing"
        return (out.stdout or out.stderr).strip().splitlines()[0] if (out.stdout or out.stderr) \
            else "?"

    cpu = "?"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    import os

    info: dict[str, object] = {
        "cpu": cpu,
        "loadavg": Path("/proc/loadavg").read_text().split()[:3],
        "cores": os.cpu_count(),
        "kernel": platform.release(),
        "python": first_line([str(VENV_BIN / "python"), "--version"]),
        "crossfetch": first_line([str(VENV_BIN / "crossfetch"), "--version"]),
        "docker-registry": first_line(["/usr/bin/docker-registry", "--version"]),
        "skopeo": first_line(["skopeo", "--version"]),
        "curl": first_line(["curl", "--version"]),
        "gzip": first_line(["gzip", "--version"]),
    }
    if peer_py is not None:
        info.update(versions(peer_py))
    return info


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="bench/run", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=7, help="timed runs per tool (default 7)")
    ap.add_argument("--scenarios", default=",".join(SCENARIOS),
                    help=f"comma-separated subset of {','.join(SCENARIOS)}")
    ap.add_argument("--tls", action="store_true",
                    help="also run function/provider/blob over HTTPS (private CA, same storage)")
    ap.add_argument("--peer-venv", type=Path, default=DEFAULT_PEER_VENV,
                    help=f"throwaway venv for oras-py and python-dxf (default {DEFAULT_PEER_VENV})")
    ap.add_argument("--results", type=Path, default=ROOT / "bench" / "results",
                    help="where the JSON goes (default bench/results)")
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    ap.add_argument("--scaling-mb", default=SCALING_MB,
                    help=f"package.yaml sizes in MiB for the scaling run (default {SCALING_MB})")
    ap.add_argument("--scaling-runs", type=int, default=3,
                    help="timed runs per size in the scaling run (default 3)")
    ap.add_argument("--plot", type=Path, default=ROOT / "docs" / "bench-scaling.png",
                    help="where the scaling plot goes (default docs/bench-scaling.png)")
    args = ap.parse_args(argv)
    chosen = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    unknown = set(chosen) - set(SCENARIOS)
    if unknown:
        ap.error(f"unknown scenario(s) {', '.join(sorted(unknown))}")
    for binary, apt in (("curl", "curl"), ("skopeo", "skopeo"), ("gzip", "gzip"),
                        (GNU_TIME, "time"), ("/usr/bin/docker-registry", "docker-registry")):
        need(binary, apt)
    if not (VENV_BIN / "crossfetch").exists():
        sys.exit("bench: .venv/bin/crossfetch is missing; run scripts/bootstrap first")
    need("hyperfine", "hyperfine")
    # An installed wheel has its bytecode; an editable checkout run with
    # PYTHONDONTWRITEBYTECODE=1 would compile every module in every timed process (~100 ms).
    subprocess.run([str(VENV_BIN / "python"), "-m", "compileall", "-q",
                    str(ROOT / "src" / "crossfetch")], check=True)
    peer_py = None
    if "blob" in chosen or "scaling" in chosen:
        peer_py = peer_python(args.peer_venv,
                              ("matplotlib",) if "scaling" in chosen else ())

    started = time.time()
    work = Path(tempfile.mkdtemp(prefix="crossfetch-bench-"))
    results: dict[str, object] = {"started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                                  "runs": args.runs, "machine": machine_info(peer_py),
                                  "scenarios": []}
    scenarios: list[dict[str, object]] = []
    registries: list[Registry] = []
    try:
        targets = _start(work, args.tls, registries)
        built = _build_and_push(work, targets[0], chosen)
        for t in targets:
            for name in ("function", "provider", "blob", "doctor"):
                if name not in chosen:
                    continue
                print(f"bench: {name} over {t.name} ...", file=sys.stderr, flush=True)
                if name == "function":
                    result = scenario_function(t, work, built[name], args.runs)
                elif name == "provider":
                    result = scenario_provider(t, work, built[name], args.runs)
                elif name == "doctor":
                    result = scenario_doctor(t, args.runs)
                else:
                    assert peer_py is not None
                    result = scenario_blob(t, work, built[name], peer_py, args.runs)
                scenarios.append(result)
                report.print_scenario(result)
        if "startup" in chosen:
            t = targets[0]
            pull = ["pull", t.ref("bench/function:v0.1.0"), "--config", str(t.policy),
                    "--pull-policy", "Always", "--cache-dir", str(work / "importtime-cache"),
                    "-o", str(work / "importtime.yaml")]
            print("bench: startup ...", file=sys.stderr, flush=True)
            scenarios.append(scenario_startup(work, args.runs, pull))
            report.print_scenario(scenarios[-1])
        if "scaling" in chosen:
            print("bench: scaling ...", file=sys.stderr, flush=True)
            sizes = [int(x) for x in args.scaling_mb.split(",") if x.strip()]
            scenarios.append(scenario_scaling(targets[0], work, sizes, args.scaling_runs,
                                              peer_py, args.plot))
    finally:
        for r in registries:
            r.stop()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    results["scenarios"] = scenarios
    # Other work on the machine shows up as noise: record the load at the end too.
    results["loadavg_end"] = Path("/proc/loadavg").read_text().split()[:3]
    results["seconds"] = round(time.time() - started, 1)
    args.results.mkdir(parents=True, exist_ok=True)
    path = args.results / f"{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(results, indent=2))
    (args.results / "latest.json").write_text(json.dumps(results, indent=2))
    print(report.verdicts(scenarios))
    print(f"bench: results in {path} ({results['seconds']} s)", file=sys.stderr)
    return 0 if report.all_hold(scenarios) else 1


def _start(work: Path, tls: bool, registries: list[Registry]) -> list[Target]:
    plain = Registry(work / "reg")
    registries.append(plain)
    plain.start()
    policy = work / "policy.yaml"
    docs = [_imageconfig(f"{plain.host}/", "Disabled", None)]
    targets = [Target("http", plain, policy, None)]
    if tls:
        from tests.support.certs import make_pki

        pki = make_pki(work / "pki")
        ca_dir = work / "ca"  # skopeo's --src-cert-dir reads *.crt from a directory
        ca_dir.mkdir()
        shutil.copy(pki.ca_cert, ca_dir / "ca.crt")
        secure = Registry(work / "reg", tls=pki.server, storage=plain.storage)
        registries.append(secure)
        secure.start()
        docs.append(_imageconfig(f"{secure.host}/", "Strict", pki.ca_cert.read_text()))
        targets.append(Target("https", secure, policy, ca_dir / "ca.crt"))
    policy.write_text("---\n".join(docs))
    return targets


def _build_and_push(work: Path, t: Target, chosen: list[str]) -> dict[str, pk.BuiltPackage]:
    built: dict[str, pk.BuiltPackage] = {}
    wanted: dict[str, tuple[str, Callable[[Path], pk.BuiltPackage]]] = {
        "function": ("bench/function:v0.1.0", lambda d: pk.function_with_runtime(d, 30)),
        "provider": ("bench/provider:v1", lambda d: pk.big_provider(d, 100)),
        "blob": ("bench/blob:v1", lambda d: pk.function_with_runtime(d, BLOB_RUNTIME_MIB)),
    }
    needs = set(chosen) | ({"function"} if {"startup", "doctor"} & set(chosen) else set())
    for name, (repo_tag, build) in wanted.items():
        if name not in needs:
            continue
        t0 = time.perf_counter()
        b = build(work / "layouts" / name)
        skopeo_push(f"oci:{b.layout}:{b.tag}", t.ref(repo_tag), tls_verify=False)
        built[name] = b
        print(f"bench: built and pushed {name} in {time.perf_counter() - t0:.1f} s",
              file=sys.stderr, flush=True)
    return built


if __name__ == "__main__":
    sys.exit(main())
