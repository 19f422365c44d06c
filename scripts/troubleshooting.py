"""Regenerate docs/troubleshooting.md from real runs: seven field cases, each reproduced here with
real registries (docker-registry), real certificates and real name resolution, and the real
``crossfetch doctor`` output plus the fix per Crossplane release.

    .venv/bin/python scripts/troubleshooting.py            # writes docs/troubleshooting.md
    .venv/bin/python scripts/troubleshooting.py --stdout   # prints it instead

Names resolve through a private /etc/hosts: every command runs in its own mount namespace
(``unshare -rm``) with a hosts file bind-mounted over /etc/hosts, so ``registry.lab.internal``
or ``gitea.cnoe.localtest.me`` resolve as they would on a user's machine, while the machine's
own files stay untouched. This machine is loopback-only, so every registry listens on
127.0.0.x and ports are picked by the OS (they differ per run).
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import shlex
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import trustme  # noqa: E402

from crossfetch.crossplane.profile import SUPPORTED  # noqa: E402
from crossfetch.trust import parse_pem_bundle  # noqa: E402
from tests.support.certs import CertPair, self_signed, write_leaf  # noqa: E402
from tests.support.packages import function_with_runtime  # noqa: E402
from tests.support.push import skopeo_push  # noqa: E402
from tests.support.registry import Registry  # noqa: E402

CROSSFETCH = str(ROOT / ".venv" / "bin" / "crossfetch")
DOC = ROOT / "docs" / "troubleshooting.md"
REPO = "fns/function-go-templating"
TAG = "v0.1.0"
VERSIONS = SUPPORTED

HOSTS = {
    "registry.lab.internal": "127.0.0.1",
    "registry.corp.example": "127.0.0.1",
    "plain.lab.internal": "127.0.0.2",
    "registry.registry.svc.cluster.local": "127.0.0.2",
    "gitea.cnoe.localtest.me": "127.0.0.1",
}

NETPOL = """\
apiVersion: v1
kind: List
items:
- apiVersion: networking.k8s.io/v1
  kind: NetworkPolicy
  metadata: {name: default-deny-egress, namespace: crossplane-system}
  spec:
    podSelector: {}
    policyTypes: [Egress]
    egress:
    - to:
      - namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: kube-system}}
        podSelector: {matchLabels: {k8s-app: kube-dns}}
      ports: [{protocol: UDP, port: 53}, {protocol: TCP, port: 53}]
"""


class Runner:
    """Runs crossfetch in a mount namespace with the case's /etc/hosts, in the work dir."""

    def __init__(self, work: Path) -> None:
        self.work = work
        self.hosts = work / "hosts"
        self.hosts.write_text("127.0.0.1 localhost\n::1 localhost\n" + "".join(
            f"{ip} {name}\n" for name, ip in HOSTS.items()))

    def run(self, *args: str) -> tuple[int, str]:
        inner = (f"mount --bind {shlex.quote(str(self.hosts))} /etc/hosts && exec "
                 + " ".join(shlex.quote(a) for a in (CROSSFETCH, *args)))
        proc = subprocess.run(["unshare", "-rm", "sh", "-c", inner], cwd=self.work, text=True,
                              capture_output=True, timeout=120, check=False,
                              env={"PATH": "/usr/bin:/bin", "HOME": str(self.work),
                                   "CROSSFETCH_NO_PROGRESS": "1",
                                   "XDG_CACHE_HOME": str(self.work / "cache")})
        return proc.returncode, (proc.stdout + proc.stderr).replace(str(self.work), ".")

    def shown(self, *args: str) -> str:
        """``$ crossfetch ARGS``, its output and exit code, as a fenced block."""
        code, out = self.run(*args)
        cmd = " ".join(shlex.quote(a) for a in ("crossfetch", *args))
        return f"```console\n$ {cmd}\n{out.rstrip()}\n# exit {code}\n```\n"

    def per_version(self, *args: str) -> str:
        """doctor's Crossplane verdict for every modelled release: a table, then each fix that
        differs from the newest release's (shown in full in its doctor output above) once."""
        rows: list[str] = ["| release | Crossplane's verdict |", "|---|---|"]
        fixes: dict[str, list[str]] = {}
        newest = ""
        for version in VERSIONS:
            _, out = self.run("doctor", *args, "--crossplane-version", version, "-O", "json")
            cp: dict[str, Any] = json.loads(out)["crossplane"]
            verdict = "would pull" if cp["ok"] else f"would not pull: `{cp['cause']}`"
            rows.append(f"| {version} | {verdict} |")
            if cp["fix"]:
                key = cp["fix"].replace(version, "<release>")
                fixes.setdefault(key, []).append(version)
                if version == VERSIONS[-1]:
                    newest = key
        parts = ["\n".join(rows) + "\n"]
        for key, versions in fixes.items():
            if key == newest:
                continue
            shown = key.replace("<release>", versions[-1])
            parts.append(f"The fix for {', '.join(versions)} differs (shown for "
                         f"{versions[-1]}):\n\n```\n{shown.rstrip()}\n```\n")
        return "\n".join(parts)


def leaf(ca: trustme.CA, directory: Path, name: str) -> CertPair:
    return write_leaf(ca.issue_cert(name, common_name=name), directory, name)


def serve(work: Path, *, host: str, tls: CertPair | None = None) -> Registry:
    reg = Registry(work / "registries", host=host, tls=tls)
    reg.start()
    return reg


def generate(work: Path) -> str:
    run = Runner(work)
    ca = trustme.CA(organization_name="corp private CA")
    ca_file = work / "corp-ca.crt"
    ca_file.write_bytes(ca.cert_pem.bytes())
    built = function_with_runtime(work / "layout")

    regs: list[Registry] = []
    try:
        ss = self_signed(work, "registry.lab.internal", host="registry.lab.internal")
        shutil.copy(ss.cert, work / "lab.crt")
        lab = serve(work, host="127.0.0.1", tls=ss)
        corp = serve(work, host="127.0.0.1", tls=leaf(ca, work, "registry.corp.example"))
        gitea = serve(work, host="127.0.0.1", tls=leaf(ca, work, "gitea.cnoe.localtest.me"))
        plain1 = serve(work, host="127.0.0.1")
        plain2 = serve(work, host="127.0.0.2")
        regs += [lab, corp, gitea, plain1, plain2]
        # skopeo pushes by address: the registries' certificates name hosts, so it verifies
        # nothing here (the content, not the trust, is what this step sets up).
        for reg in regs:
            skopeo_push(f"oci:{built.layout}:{built.tag}",
                        f"{reg.bind_host}:{reg.port}/{REPO}:{TAG}", tls_verify=False)
        (work / "np.yaml").write_text(NETPOL)
        return render(run, lab=lab, corp=corp, gitea=gitea, plain1=plain1, plain2=plain2)
    finally:
        for reg in regs:
            reg.stop()


def ref(host: str, reg: Registry) -> str:
    return f"{host}:{reg.port}/{REPO}:{TAG}"


def render(run: Runner, *, lab: Registry, corp: Registry, gitea: Registry, plain1: Registry,
           plain2: Registry) -> str:
    lab_ref = ref("registry.lab.internal", lab)
    corp_ref = ref("registry.corp.example", corp)
    gitea_ref = ref("gitea.cnoe.localtest.me", gitea)
    ip_ref = ref("127.0.0.1", plain1)
    ip2_ref = ref("127.0.0.2", plain2)
    name_ref = ref("plain.lab.internal", plain2)
    svc_ref = ref("registry.registry.svc.cluster.local", plain2)
    public_ref = "xpkg.crossplane.io/crossplane-contrib/function-auto-ready:v0.2.1"
    q = "--no-node-config"
    out: list[str] = [HEADER.format(versions=", ".join(VERSIONS))]

    out.append(CASE1)
    out.append(run.shown("doctor", lab_ref, q))
    out.append("Crossplane's verdict per release:\n\n" + run.per_version(lab_ref, q))
    out.append("Save the certificate (doctor printed its fingerprint) and check again, as "
               "crossfetch and as Crossplane will fetch with it:\n\n")
    lab_fp = parse_pem_bundle((run.work / "lab.crt").read_bytes())[0].fingerprint
    out.append(run.shown("trust", "registry.lab.internal:" + str(lab.port), "--fingerprint",
                         lab_fp, "-o", "lab-ca.crt"))
    out.append(run.shown("pull", lab_ref, "--as-crossplane", "--ca-bundle", "lab-ca.crt", q))

    out.append(CASE2)
    out.append(run.shown("doctor", ip_ref, q))
    out.append(run.shown("pull", ip_ref, "--as-crossplane", q))
    out.append("The same registry content on an address outside the rule:\n\n")
    out.append(run.shown("pull", ip2_ref, "--as-crossplane", q))
    out.append("Per release, for that address:\n\n" + run.per_version(ip2_ref, q))

    out.append(CASE3)
    out.append(run.shown("doctor", name_ref, q))
    out.append("Per release:\n\n" + run.per_version(name_ref, q))
    out.append(CASE3_LOCAL)
    out.append(run.shown("pull", svc_ref, "--as-crossplane", "--crossplane-version", "v2.2.3",
                         q))
    out.append(run.shown("pull", svc_ref, "--as-crossplane", "--crossplane-version", "v2.2.4",
                         q))

    out.append(CASE4)
    out.append(run.shown("doctor", gitea_ref, "--ca-bundle", "corp-ca.crt", q))
    out.append("Per release:\n\n" + run.per_version(gitea_ref, "--ca-bundle", "corp-ca.crt", q))

    out.append(CASE5)
    out.append(run.shown("doctor", corp_ref, q))
    out.append("Per release:\n\n" + run.per_version(corp_ref, q))
    out.append(run.shown("pull", corp_ref, "--as-crossplane", "--ca-bundle", "corp-ca.crt", q))

    out.append(CASE6)
    out.append(run.shown("doctor", public_ref, q))
    out.append("Per release:\n\n" + run.per_version(public_ref, q))

    out.append(CASE7)
    out.append(run.shown("doctor", lab_ref, "--ca-bundle", "lab.crt", "--network-policies",
                         "np.yaml", q))
    out.append(FOOTER)
    return "\n".join(out)


HEADER = """\
# Troubleshooting: seven cases from the field

Each case below was reproduced on one machine with real registries (`docker-registry`), real
certificates and real name resolution, and the output shown is what `crossfetch` printed.
`scripts/troubleshooting.py` re-makes this page; ports are picked by the OS on every run.

`crossfetch doctor` ends with two verdicts: whether **crossfetch can pull** from here, and
whether the **Crossplane release** named by `--crossplane-version` (default: the newest
modelled) **would pull** from its pod. The second one follows that release's package manager:
HTTPS with the system roots plus its one CA bundle (`registryCaBundleConfig`, given to
crossfetch as `--ca-bundle`), plain HTTP only for the hosts its go-containerregistry allows,
ImageConfig `rewriteImage` and `pullSecretRef` where the release has them, and nothing from
the ImageConfig `tls` block (crossfetch's extension), client certificates or node files. The
releases modelled are {versions}; what each one does, and where in Crossplane's source that was
read, is in `src/crossfetch/crossplane/profile.py`.

This machine only has loopback addresses, so every registry below listens on 127.0.0.1 or
127.0.0.2, and names are mapped to those addresses in a private `/etc/hosts`. Crossplane runs
in a pod, where a loopback address is the pod itself: that is why most Crossplane verdicts
below also say "Also: ... loopback". On a real cluster the registry has a reachable address
and only the first cause remains.

`crossfetch pull --as-crossplane` answers the same question without a cluster: it fetches as
that release would (exit 0 if it would pull, 1 with its reason and fix if not).
"""

CASE1 = """\
## 1. A self-signed certificate on a port other than 443

Symptom in Crossplane: `x509: certificate signed by unknown authority`. A registry on an odd
port with a certificate made by `openssl req -x509`. The port is not the problem; trust is.
"""

CASE2 = """\
## 2. Plain HTTP on an IP address

Crossplane's package manager has no plain-HTTP setting, but go-containerregistry, which it
uses, tries HTTPS and then plain HTTP on its own for `localhost:PORT`, `*.localhost`,
`127.0.0.1`, `::1` and RFC 1918 addresses (10/8, 172.16/12, 192.168/16) — and, before
go-containerregistry v0.21.6, for `*.local` names. So a registry Service reached by its
ClusterIP (say `10.96.0.5:5000`) works over plain HTTP; the same registry behind a public or
other address does not. Here `127.0.0.1` stands for an address inside the rule and `127.0.0.2`
for one outside it (the rule matches the literal `127.0.0.1` only).
"""

CASE3 = """\
## 3. Plain HTTP on a DNS name

A name (`plain.lab.internal`) is never in go-containerregistry's plain-HTTP rule, so every
Crossplane release talks HTTPS to it only.
"""

CASE3_LOCAL = """\
In-cluster Service names (`*.svc.cluster.local`) were in the rule until go-containerregistry
v0.21.6 dropped `*.local` (PR #2281). Crossplane v2.2.4, v2.1.8 and v2.3.4 ship v0.21.6; v2.2.3
still ships v0.20.7. The same name, the same plain-HTTP registry, one patch release apart:
"""

CASE4 = """\
## 4. A loopback name inside a pod (`*.localtest.me`, idpbuilder)

`*.localtest.me` is public DNS that always answers loopback. idpbuilder serves Gitea as
`gitea.cnoe.localtest.me:8443`, which works from a laptop and fails from the Crossplane pod
with `dial tcp [::1]:8443: connect: connection refused` (crossplane#5798): inside the pod the
name is the pod itself. Here the name resolves as public DNS would, and the registry has a
certificate from idpbuilder-like private CA, given with `--ca-bundle`.
"""

CASE5 = """\
## 5. A certificate from a CA that is not trusted

A registry with a certificate from a company CA (`corp private CA`). crossfetch, Crossplane and
the node's containerd each need that CA.
"""

CASE6 = """\
## 6. A public registry that cannot be reached

An air-gapped or egress-filtered cluster pulling from `xpkg.crossplane.io`. This machine has no
route to the internet either, so the name does not resolve. A CoreDNS rewrite would not help;
pulling through a mirror the cluster can reach does (ImageConfig `rewriteImage`, from
Crossplane v1.20).
"""

CASE7 = """\
## 7. A NetworkPolicy that blocks the Crossplane pod

Given what `kubectl get networkpolicy -A -o yaml` prints, doctor decides whether the
Crossplane pod (namespace `crossplane-system`, labels `app=crossplane` by default) may reach the
registry and cluster DNS. Here `np.yaml` is a default-deny egress policy that allows DNS only.
"""

FOOTER = """\
## See also

- `crossfetch doctor --help` for every option (`--in-cluster`, `--via cri` for the node path).
- [Policy and node files](policy.md) for the ImageConfig `tls` block crossfetch adds.
"""


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--stdout", action="store_true", help="print instead of writing the page")
    opts = ap.parse_args(argv)
    if shutil.which("unshare") is None:
        raise SystemExit("needs unshare (util-linux) for a private /etc/hosts")
    assert all(ipaddress.ip_address(ip).is_loopback for ip in HOSTS.values())
    with tempfile.TemporaryDirectory(prefix="crossfetch-troubleshooting-") as tmp:
        page = generate(Path(tmp))
    if opts.stdout:
        sys.stdout.write(page)
    else:
        DOC.write_text(page)
        print(f"wrote {DOC.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
