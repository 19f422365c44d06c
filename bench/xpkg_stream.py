"""Throughput check (not a test): stream a ~100 MB package.yaml out of a layer blob.

Usage: PYTHONPATH=. .venv/bin/python bench/xpkg_stream.py [MB]

Builds a gzip layer (and a plain tar) around a package.yaml made of the provider-kubernetes
meta object and its real CRDs repeated, then times read_package_yaml reading it from a file in
64 KiB chunks (what an HTTP client hands over) into a temp file, in a fresh process so peak
RSS is that of the read alone. Each case runs three times (the machine is shared).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path


def _testdata() -> Path:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tests.support.testdata import TESTDATA as found

    return found


TESTDATA = _testdata() / "provider-kubernetes"

CHILD = r"""
import sys, time
from crossfetch.xpkg import read_package_yaml
path, digest, size = sys.argv[1], sys.argv[2], int(sys.argv[3])
def chunks():
    with open(path, "rb") as f:
        while block := f.read(65536):
            yield block
with open(sys.argv[4], "wb") as sink:
    t = time.perf_counter()
    pkg = read_package_yaml(chunks(), digest, sink, expected_size=size)
    dt = time.perf_counter() - t
# VmHWM, not ru_maxrss: Linux carries ru_maxrss over execve from the (big) parent.
rss = next(int(line.split()[1]) for line in open("/proc/self/status")
           if line.startswith("VmHWM:")) / 1024
print(f"{pkg.size / 1e6:.1f} MB package.yaml, {sum(pkg.objects.values())} objects: "
      f"{dt:.3f} s = {pkg.size / 1e6 / dt:.0f} MB/s decompressed, peak RSS {rss:.0f} MiB")
"""


def build(target_mb: int) -> bytes:
    meta = (TESTDATA / "crossplane.yaml").read_bytes()
    crds = [p.read_bytes() for p in sorted((TESTDATA / "crds").glob("*.yaml"))]
    out = io.BytesIO()
    out.write(b"---\n" + meta)
    i = 0
    while out.tell() < target_mb * 1_000_000:
        out.write(b"---\n" + crds[i % len(crds)])
        i += 1
    return out.getvalue()


def tar_of(data: bytes) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        info = tarfile.TarInfo("package.yaml")
        info.size = len(data)
        t.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def main() -> None:
    mb = int(sys.argv[1]) if len(sys.argv) > 1 else 100
    plain = tar_of(build(mb))
    with tempfile.TemporaryDirectory() as tmp:
        for label, blob in (("gzip", gzip.compress(plain, 6, mtime=0)), ("plain tar", plain)):
            path = Path(tmp, "blob")
            path.write_bytes(blob)
            digest = "sha256:" + hashlib.sha256(blob).hexdigest()
            for run in range(1, 4):  # the machine is shared: show every run, not one number
                print(f"{label} layer ({len(blob) / 1e6:.1f} MB blob), run {run}: ", end="",
                      flush=True)
                subprocess.run([sys.executable, "-c", CHILD, str(path), digest, str(len(blob)),
                                str(Path(tmp, "package.yaml"))], check=True)


if __name__ == "__main__":
    main()
