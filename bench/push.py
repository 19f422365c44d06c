"""``crossfetch push`` of a package with a 100 MiB runtime layer, against ``skopeo copy``.

Run from the repository root: ``.venv/bin/python -m bench.push [--runs N] [--tls]``.

One real ``docker-registry`` (plain HTTP on loopback, or HTTPS with a private CA); the package
is built once (untimed) with ``crossfetch build --embed-runtime-image-tarball`` from a
``docker save`` tarball holding 100 MiB of random bytes (incompressible, so the blob is
~100 MiB too). Measured, in alternating order (bench/measure.py), whole processes:

- ``crossfetch push -f pkg.xpkg REF`` (monolithic) and ``--chunk-size 16MiB``;
- ``skopeo copy docker-archive:pkg.xpkg docker://REF`` (the same archive, the issue's peer);
- ``skopeo copy oci:DIR docker://REF`` of the same blobs (no recompression: a fair floor).

Before every run the destination repository's links are removed from the registry's storage
(untimed), so every run uploads every blob (a HEAD finds nothing) while the disk stays flat.
Targets: crossfetch peak RSS < 100 MiB; crossfetch time / skopeo docker-archive time <= 1.0.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

from bench.measure import Tool, measure
from crossfetch.xpkg.build import build, tar_header
from tests.support.certs import make_pki
from tests.support.registry import Registry

ROOT = Path(__file__).resolve().parent.parent
CROSSFETCH = str(ROOT / ".venv" / "bin" / "crossfetch")
RUNTIME_MIB = 100


def runtime_tarball(path: Path, mib: int) -> None:
    """A ``docker save`` tarball of one uncompressed layer holding ``mib`` MiB of random
    bytes, written in 1 MiB pieces (the benchmark itself stays small)."""
    size = mib * 1024 * 1024
    layer = path.parent / "layer.tar"
    h = hashlib.sha256()
    with layer.open("wb") as f:
        for piece in (tar_header("bin/function", size),
                      *(os.urandom(1024 * 1024) for _ in range(mib)), b"\0" * 1024):
            f.write(piece)
            h.update(piece)
    cfg = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {
        "type": "layers", "diff_ids": ["sha256:" + h.hexdigest()]}}).encode()
    manifest = json.dumps([{"Config": "config.json", "RepoTags": None,
                            "Layers": ["layer.tar"]}]).encode()
    with tarfile.open(path, "w") as t:
        for name, data in (("config.json", cfg), ("manifest.json", manifest)):
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            t.addfile(ti, io.BytesIO(data))
        t.add(layer, "layer.tar")
    layer.unlink()


def package_source(root: Path) -> None:
    (root / "input").mkdir(parents=True)
    (root / "crossplane.yaml").write_text(
        "apiVersion: meta.pkg.crossplane.io/v1beta1\nkind: Function\n"
        "metadata:\n  name: function-bench\nspec: {}\n")


def oci_layout_of(xpkg: Path, dest: Path) -> None:
    """The same image as an OCI layout (blobs hard-linked where possible), for skopeo oci:."""
    from crossfetch.upload import PackageFile

    pkg = PackageFile.open(xpkg)
    blobs = dest / "blobs" / "sha256"
    blobs.mkdir(parents=True)
    for b in pkg.layers:
        with (blobs / b.digest[7:]).open("wb") as f:
            for chunk in pkg.read(b):
                f.write(chunk)
    (blobs / pkg.config_digest[7:]).write_bytes(pkg.config)
    # skopeo's oci: transport only finds OCI media types in index.json: same blobs, OCI types.
    m = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                               "size": len(pkg.config), "digest": pkg.config_digest},
                    "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                                "size": b.size, "digest": b.digest} for b in pkg.layers]}).encode()
    md = hashlib.sha256(m).hexdigest()
    (blobs / md).write_bytes(m)
    (dest / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    (dest / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [{
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "digest": "sha256:" + md, "size": len(m), "annotations": {
            "org.opencontainers.image.ref.name": "v1"}}]}))


def repo_dir(storage: Path, repo: str) -> Path:
    """A repository's links in the registry storage: removed before each run (untimed)."""
    return storage / "docker" / "registry" / "v2" / "repositories" / repo


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--tls", action="store_true", help="HTTPS with a private CA")
    ap.add_argument("--mib", type=int, default=RUNTIME_MIB)
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    args = ap.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="crossfetch-bench-push-"))
    try:
        runtime_tarball(work / "runtime.tar", args.mib)
        package_source(work / "pkg")
        t0 = time.perf_counter()
        pkg = build(work / "pkg", examples_root=work / "none", output=work / "pkg.xpkg",
                    runtime_image=work / "runtime.tar").path
        build_s = time.perf_counter() - t0
        (work / "runtime.tar").unlink()
        oci_layout_of(pkg, work / "oci")
        pki = make_pki(work / "pki") if args.tls else None
        with Registry(work / "reg", tls=pki.server if pki else None) as reg:
            storage = reg.storage
            policy = work / "policy.yaml"
            mode = "Strict" if pki else "Disabled"
            policy.write_text(
                "apiVersion: pkg.crossplane.io/v1beta1\nkind: ImageConfig\nmetadata: {name: b}\n"
                f"spec:\n  matchImages: [{{type: Prefix, prefix: '{reg.host}/'}}]\n"
                f"  registry:\n    tls:\n      mode: {mode}\n")
            tls_cf = ["--ca-bundle", str(pki.ca_cert)] if pki else []
            if pki:
                certs = work / "skopeo-certs"
                certs.mkdir()
                shutil.copy(pki.ca_cert, certs / "ca.crt")
                tls_sk = ["--dest-cert-dir", str(certs)]
            else:
                tls_sk = ["--dest-tls-verify=false"]
            env = {**os.environ, "CROSSFETCH_NO_PROGRESS": "1"}
            tools = [
                Tool("crossfetch push", [CROSSFETCH, "push", "-f", str(pkg),
                                         reg.ref("bench/cf:v1"), "--config", str(policy),
                                         *tls_cf, "--no-node-config"],
                     reset=repo_dir(storage, "bench/cf"), env=env),
                Tool("crossfetch push --chunk-size 16MiB", [
                    CROSSFETCH, "push", "-f", str(pkg), reg.ref("bench/cfc:v1"), "--config",
                    str(policy), *tls_cf, "--no-node-config", "--chunk-size", "16MiB"],
                     reset=repo_dir(storage, "bench/cfc"), env=env),
                Tool("skopeo copy docker-archive:", [
                    "skopeo", "--insecure-policy", "copy", "--quiet", *tls_sk,
                    f"docker-archive:{pkg}", f"docker://{reg.ref('bench/sk:v1')}"],
                     reset=repo_dir(storage, "bench/sk")),
                Tool("skopeo copy oci:", [
                    "skopeo", "--insecure-policy", "copy", "--quiet", *tls_sk,
                    f"oci:{work / 'oci'}:v1", f"docker://{reg.ref('bench/sko:v1')}"],
                     reset=repo_dir(storage, "bench/sko")),
            ]
            series = measure(tools, args.runs)
            # What crossfetch pushed reads back: skopeo sees the layer sizes.
            raw = subprocess.run(["skopeo", "inspect", "--raw", *(
                ["--cert-dir", str(work / "skopeo-certs")] if pki else ["--tls-verify=false"]),
                f"docker://{reg.ref('bench/cf:v1')}"], capture_output=True, text=True,
                check=True).stdout
            sizes = [x["size"] for x in json.loads(raw)["layers"]]
        by = {s.tool: s for s in series}
        cf, sk = by["crossfetch push"], by["skopeo copy docker-archive:"]
        out = {
            "scenario": "push", "transport": "https" if pki else "http", "runs": args.runs,
            "package_bytes": pkg.stat().st_size, "layer_bytes": sizes, "build_s": round(build_s, 3),
            "series": [s.to_dict() for s in series],
            "ratio_vs_skopeo_docker_archive": round(cf.median_s / sk.median_s, 3),
            "ratio_vs_skopeo_oci": round(cf.median_s / by["skopeo copy oci:"].median_s, 3),
            "targets": {"peak_rss_mib<100": cf.peak_rss_mib < 100,
                        "ratio<=1.0": cf.median_s / sk.median_s <= 1.0},
        }
        print(f"push of {pkg.stat().st_size / 1e6:.1f} MB package ({out['transport']}, "
              f"{args.runs} runs, median):")
        for s in series:
            print(f"  {s.tool:<38} {s.median_s:7.3f} s  (min {s.min_s:.3f}, max {s.max_s:.3f})"
                  f"  peak RSS {s.peak_rss_mib:6.1f} MiB  cpu {s.mean_cpu_s:.2f} s")
        print(f"  crossfetch / skopeo docker-archive: {out['ratio_vs_skopeo_docker_archive']}x; "
              f"/ skopeo oci: {out['ratio_vs_skopeo_oci']}x; targets {out['targets']}")
        results = ROOT / "bench" / "results"
        results.mkdir(exist_ok=True)
        stamp = time.strftime("%Y%m%d-%H%M%S")
        (results / f"push-{stamp}.json").write_text(json.dumps(out, indent=2))
        return 0 if all(out["targets"].values()) else 1
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
