"""crossfetch demo: two real registries, one sample Function, pulled under explicit policy.

Run through ``scripts/demo`` (which installs everything first). Nothing here uses crossfetch to
publish: the package is built as an OCI layout and pushed with skopeo, as a user's CI would.
"""

from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support.certs import make_pki  # noqa: E402
from tests.support.packages import function_with_runtime  # noqa: E402
from tests.support.push import skopeo_push  # noqa: E402
from tests.support.registry import Registry  # noqa: E402

CROSSFETCH = str(ROOT / ".venv" / "bin" / "crossfetch")


def step(title: str) -> None:
    print(f"\n\033[1m== {title}\033[0m", flush=True)


def run(*args: str, expect: int = 0, cwd: Path) -> None:
    shown = " ".join(shlex.quote(a) for a in ("crossfetch", *args))
    print(f"$ {shown}", flush=True)
    proc = subprocess.run([CROSSFETCH, *args], cwd=cwd, text=True, capture_output=True,
                          check=False)
    for stream in (proc.stdout, proc.stderr):
        if stream.strip():
            print("  " + stream.rstrip().replace("\n", "\n  "), flush=True)
    print(f"  (exit {proc.returncode})", flush=True)
    if proc.returncode != expect:
        raise SystemExit(f"demo failed: expected exit {expect}, got {proc.returncode}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--https-port", type=int, default=8443)
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    opts = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="crossfetch-demo-"))
    step(f"work directory {work}")
    pki = make_pki(work / "pki")
    ca = work / "ca.crt"
    ca.write_bytes(pki.ca_cert.read_bytes())
    print(f"made a private CA ({ca}) and a server certificate for 127.0.0.1/localhost")

    https = Registry(work / "registries", tls=pki.server, port=opts.https_port)
    plain = Registry(work / "registries")
    with https, plain:
        step("registries")
        print(f"HTTPS (self-signed CA): {https.url}")
        print(f"plain HTTP:             {plain.url}")

        step("publish a sample Function with skopeo (independent of crossfetch)")
        pkg = function_with_runtime(work / "build", runtime_mb=8)
        name = "fns/function-go-templating:v0.1.0"
        skopeo_push(f"oci:{pkg.layout}:{pkg.tag}", f"{https.host}/{name}", cert_dir=pki.ca_cert)
        skopeo_push(f"oci:{pkg.layout}:{pkg.tag}", f"{plain.host}/{name}", tls_verify=False)
        print(f"pushed {name} ({pkg.manifest_digest}) to both registries")

        ca_pem = ca.read_text()
        (work / "local.yaml").write_text(f"""\
# The same YAML Crossplane uses, plus the tls block from its ImageConfig design.
apiVersion: pkg.crossplane.io/v1beta1
kind: ImageConfig
metadata: {{name: demo-https}}
spec:
  matchImages: [{{type: Prefix, prefix: "{https.host}/"}}]
  registry:
    tls:
      mode: Strict
      caBundleConfigMapRef: {{name: demo-ca, key: ca.crt}}
---
apiVersion: pkg.crossplane.io/v1beta1
kind: ImageConfig
metadata: {{name: demo-plain-http}}
spec:
  matchImages: [{{type: Prefix, prefix: "{plain.host}/"}}]
  registry:
    tls: {{mode: Disabled}}
---
apiVersion: v1
kind: ConfigMap
metadata: {{name: demo-ca, namespace: crossplane-system}}
data:
  ca.crt: |
{"".join("    " + line + chr(10) for line in ca_pem.splitlines())}""")
        common = ["--cache-dir", str(work / "cache"), "--no-node-config"]

        step("1. HTTPS with the CA given on the command line")
        run("pull", f"{https.host}/{name}", "--ca-bundle", "ca.crt", "-o", "package.yaml",
            *common, cwd=work)

        step("2. HTTPS with the CA from an ImageConfig caBundleConfigMapRef (fresh cache)")
        run("pull", f"{https.host}/{name}", "--config", "local.yaml", "--pull-policy", "Always",
            "-O", "json", *common, cwd=work)

        step("3. the same HTTPS registry without trusting its CA: refused")
        run("pull", f"{https.host}/{name}", "--retries", "0", *common, cwd=work, expect=1)

        step("4. plain HTTP under the default policy (Strict): refused, never downgraded")
        run("pull", f"{plain.host}/{name}", "--retries", "0", *common, cwd=work, expect=1)

        step("4b. doctor: why exactly does it fail? (stage by stage, with the fix)")
        run("doctor", f"{plain.host}/{name}", "--no-node-config", cwd=work, expect=1)

        step("5. plain HTTP allowed for that one registry by ImageConfig tls.mode: Disabled")
        run("pull", f"{plain.host}/{name}", "--config", "local.yaml", "-o", "package-http.yaml",
            "--pull-policy", "Always", *common, cwd=work)

        step("6. inspect, and a digest-pinned pull served from the cache")
        run("inspect", f"{https.host}/{name}", "--config", "local.yaml", *common, cwd=work)
        run("pull", f"{https.host}/fns/function-go-templating@{pkg.manifest_digest}",
            "--pull-policy", "Never", *common, cwd=work)

        same = (work / "package.yaml").read_bytes() == (work / "package-http.yaml").read_bytes()
        step("result")
        print(f"package.yaml over HTTPS and over plain HTTP identical: {same}")
        print(f"only the base layer was read: the {8} MiB runtime layer stayed on the registry")
        if not same:
            raise SystemExit("demo failed: the two pulls differ")
    if not opts.keep:
        import shutil

        shutil.rmtree(work, ignore_errors=True)
    print("\ndemo OK")


if __name__ == "__main__":
    main()
