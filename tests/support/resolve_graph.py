"""A real dependency graph for ``crossfetch resolve``: 30+ packages, several tags each.

Built from ../shared/testdata metadata (platform-ref-aws with its five provider dependencies,
configuration-aws-network, provider-kubernetes, the functions) plus generated packages, and
published with the raw test pusher. Dependencies name ``xpkg.upbound.io/...`` and
``xpkg.crossplane.io/...`` as real packages do; :func:`rewrite_policy` maps both onto the local
registry with ImageConfig ``rewriteImage``. ``{R}`` is the local registry, ``{P}`` the private
(htpasswd) one.

Tags include pre-releases (``-rc.1``) and incomplete tags (``v1``, ``v1.1``).
"""

from __future__ import annotations

from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from . import packages as pk
from .push import raw_push

UPBOUND_TAGS = ("v0.36.0", "v0.47.1", "v1.0.0", "v1.1.0", "v1.2.0-rc.1", "v1", "v1.1")
UP = "xpkg.upbound.io"
CP = "xpkg.crossplane.io"

Dep = tuple[str, str, str]
"""(kind, package as written, constraint)"""


@dataclass(frozen=True)
class Spec:
    repo: str
    """Where it lives in the local registry (after any rewrite), ``{R}/`` or ``{P}/`` prefixed."""
    kind: str
    tags: tuple[str, ...]
    deps: tuple[Dep, ...] = ()
    testdata: str | None = None
    crossplane: str = ">=v1.14.0-0"
    by_tag: tuple[tuple[str, tuple[Dep, ...]], ...] = ()
    """Per-tag dependencies overriding ``deps``."""


def _up(path: str) -> str:
    return f"{{R}}/upbound/{path}"


def _cp(path: str) -> str:
    return f"{{R}}/crossplane/{path}"


FAMILY = ("Provider", f"{UP}/upbound/provider-family-aws", ">=v1.0.0")

SPECS: tuple[Spec, ...] = (
    # -- the main graph: cfg/platform -------------------------------------------------------
    Spec("{R}/cfg/platform", "Configuration", ("v1.0.0", "v1.1.0-rc.1", "v1", "v1.0"), (
        ("Configuration", "{R}/cfg/platform-ref-aws", ">=v1.0.0"),
        ("Configuration", "{R}/cfg/aws-network", ">=v0.1.0"),
        ("Configuration", "{R}/cfg/observability", "^1.0.0"),
        ("Configuration", "{R}/cfg/data", ">=v2.0.0"),
        ("Provider", f"{CP}/crossplane-contrib/provider-kubernetes", ">=v0.15.0"),
        ("Function", f"{CP}/crossplane-contrib/function-patch-and-transform", ">=v0.7.0"),
    )),
    Spec("{R}/cfg/platform-ref-aws", "Configuration", ("v1.0.0", "v1.1.0", "v1.2.0-rc.1"),
         testdata="configuration-platform-ref-aws/crossplane.yaml"),
    Spec("{R}/cfg/aws-network", "Configuration", ("v0.1.0", "v0.2.0", "v0.3.0-rc.1"),
         testdata="configuration-aws-network/crossplane.yaml"),
    *(Spec(_up(f"upbound/provider-aws-{s}"), "Provider", UPBOUND_TAGS, (FAMILY,))
      for s in ("ec2", "eks", "iam", "rds")),
    Spec(_up("upbound/provider-family-aws"), "Provider", ("v1.0.0", "v1.1.0", "v1", "v1.1")),
    Spec(_up("crossplane-contrib/provider-helm"), "Provider",
         ("v0.14.0", "v0.15.0", "v0.19.0", "v0.20.0-rc.1", "v0")),
    Spec(_up("crossplane-contrib/function-auto-ready"), "Function",
         ("v0.4.1", "v0.4.2", "v0.5.0"), testdata="function-auto-ready/crossplane.yaml"),
    Spec(_up("crossplane-contrib/function-go-templating"), "Function",
         ("v0.9.1", "v0.9.2", "v0.10.0"), testdata="function-go-templating/crossplane.yaml"),
    Spec(_up("crossplane-contrib/function-kcl"), "Function", ("v0.11.1", "v0.11.2", "v0.12.0")),
    Spec(_cp("crossplane-contrib/provider-kubernetes"), "Provider",
         ("v0.14.0", "v0.15.0", "v0.16.0", "v0.17.0-rc.1"),
         testdata="provider-kubernetes/crossplane.yaml"),
    Spec(_cp("crossplane-contrib/function-patch-and-transform"), "Function",
         ("v0.7.0", "v0.8.2", "v0.9.0-rc.1"),
         testdata="function-patch-and-transform/crossplane.yaml"),
    Spec("{R}/cfg/observability", "Configuration", ("v1.0.0", "v1.3.0", "v2.0.0"), (
        ("Provider", f"{UP}/grafana/provider-grafana", ">=v0.10.0"),
        ("Provider", "{R}/providers/provider-prometheus", "~1.2"),
        ("Provider", "{R}/providers/provider-loki", "1.x"),
        ("Provider", "{R}/providers/provider-tempo", ">=1.0.0, <1.5.0"),
        ("Function", f"{CP}/crossplane-contrib/function-cel-filter", ">=v0.1.0"),
    )),
    Spec(_up("grafana/provider-grafana"), "Provider", ("v0.9.0", "v0.10.0", "v0.11.0-rc.1"),
         (("Provider", "{R}/providers/provider-family-observability", ">=v1.0.0"),)),
    *(Spec(f"{{R}}/providers/provider-{n}", "Provider",
           ("v1.0.0", "v1.2.0", "v1.2.3", "v1.4.0", "v1.5.0-rc.1", "v2.0.0", "v1"),
           (("Provider", "{R}/providers/provider-family-observability", ">=v1.0.0"),))
      for n in ("prometheus", "loki", "tempo")),
    Spec("{R}/providers/provider-family-observability", "Provider", ("v1.0.0", "v1.0.1")),
    Spec(_cp("crossplane-contrib/function-cel-filter"), "Function", ("v0.1.0", "v0.1.1")),
    Spec("{R}/cfg/data", "Configuration", ("v2.0.0", "v2.1.0"), (
        ("Provider", f"{UP}/upbound/provider-aws-rds", "v1.x"),
        ("Provider", "{R}/providers/provider-sql", "@digest:{R}/providers/provider-sql:v1.3.0"),
        ("Provider", "{R}/providers/provider-kafka", ">=v1.0.0-0, <v2.0.0"),
        ("Provider", "{R}/providers/provider-redis", "^0.1.0"),
        ("Function", f"{CP}/crossplane-contrib/function-python", ">=v0.1.0"),
    )),
    Spec("{R}/providers/provider-sql", "Provider", ("v1.2.0", "v1.3.0", "v1.4.0")),
    Spec("{R}/providers/provider-kafka", "Provider", ("v1.0.0", "v1.1.0", "v1.2.0-rc.1")),
    Spec("{R}/providers/provider-redis", "Provider",
         ("v0.1.0", "v0.1.5", "v0.2.0", "v0.3.0-rc.1", "v1.0.0")),
    Spec(_cp("crossplane-contrib/function-python"), "Function", ("v0.1.0", "v0.2.0"),
         crossplane=">=v2.3.0-0"),
    # -- a conflict Crossplane walks into: app-a's newest needs lib v2, app-b needs lib < v2 --
    Spec("{R}/cfg/conflict", "Configuration", ("v1.0.0",), (
        ("Provider", "{R}/conflict/app-a", ">=v1.0.0"),
        ("Provider", "{R}/conflict/app-b", ">=v1.0.0"),
    )),
    Spec("{R}/conflict/app-a", "Provider", ("v1.0.0", "v2.0.0"), by_tag=(
        ("v1.0.0", (("Provider", "{R}/conflict/lib", ">=v1.0.0"),)),
        ("v2.0.0", (("Provider", "{R}/conflict/lib", ">=v2.0.0"),)),
    )),
    Spec("{R}/conflict/app-b", "Provider", ("v1.0.0",),
         (("Provider", "{R}/conflict/lib", "<v2.0.0"),)),
    Spec("{R}/conflict/lib", "Provider", ("v1.0.0", "v1.5.0", "v2.0.0", "v2.1.0")),
    # -- a cycle --
    Spec("{R}/cfg/cycle", "Configuration", ("v1.0.0",),
         (("Configuration", "{R}/cycle/a", ">=v1.0.0"),)),
    Spec("{R}/cycle/a", "Configuration", ("v1.0.0",),
         (("Configuration", "{R}/cycle/b", ">=v1.0.0"),)),
    Spec("{R}/cycle/b", "Configuration", ("v1.0.0",),
         (("Configuration", "{R}/cycle/a", ">=v1.0.0"),)),
    # -- nothing satisfies leaf >= v3 --
    Spec("{R}/cfg/unsat", "Configuration", ("v1.0.0",),
         (("Configuration", "{R}/unsat/mid", ">=v1.0.0"),)),
    Spec("{R}/unsat/mid", "Configuration", ("v1.0.0", "v1.1.0"),
         (("Provider", "{R}/unsat/leaf", ">=v3.0.0"),)),
    Spec("{R}/unsat/leaf", "Provider", ("v1.0.0", "v2.0.0", "v3.0.0-rc.1")),
    # -- space-separated AND: fine in v3, "improper constraint" in v1.5.0 --
    Spec("{R}/cfg/space-and", "Configuration", ("v1.0.0",),
         (("Provider", "{R}/providers/provider-kafka", ">=v1.0.0 <v2.0.0"),)),
    # -- a dependency on a private registry (htpasswd) --
    Spec("{R}/cfg/private", "Configuration", ("v1.0.0",),
         (("Provider", "{P}/private/provider-secret", ">=v1.0.0"),)),
    Spec("{P}/private/provider-secret", "Provider", ("v1.0.0", "v1.1.0")),
)

#: The graph under cfg/platform: what resolve must reach (30 packages with the root).
PLATFORM_ROOT = "{R}/cfg/platform:v1.0.0"

_API = {"Configuration": "meta.pkg.crossplane.io/v1", "Provider": "meta.pkg.crossplane.io/v1",
        "Function": "meta.pkg.crossplane.io/v1beta1"}


def _sub(text: str, r: str, p: str) -> str:
    return text.replace("{R}", r).replace("{P}", p)


def meta_yaml(spec: Spec, tag: str, r: str, p: str, digests: dict[str, str]) -> str:
    """A generated meta object; dependencies alternate between the legacy and the new form."""
    name = spec.repo.rsplit("/", 1)[1]
    deps = dict(spec.by_tag).get(tag, spec.deps)
    lines = [f"apiVersion: {_API[spec.kind]}", f"kind: {spec.kind}", "metadata:",
             f"  name: {name}", "  annotations:", f"    meta.crossplane.io/version: '{tag}'",
             "spec:", "  crossplane:", f"    version: '{spec.crossplane}'"]
    if deps:
        lines.append("  dependsOn:")
    for i, (kind, pkg, constraint) in enumerate(deps):
        pkg = _sub(pkg, r, p)
        if constraint.startswith("@digest:"):
            constraint = digests[_sub(constraint[len("@digest:"):], r, p)]
        if i % 2 == 0:
            lines += [f"  - {kind.lower()}: {pkg}", f"    version: '{constraint}'"]
        else:
            lines += ["  - apiVersion: pkg.crossplane.io/v1", f"    kind: {kind}",
                      f"    package: {pkg}", f"    version: '{constraint}'"]
    return "\n".join(lines) + "\n"


def build(spec: Spec, tag: str, r: str, p: str, digests: dict[str, str]
          ) -> tuple[bytes, dict[str, bytes], bytes]:
    """(manifest, blobs, package.yaml) of one tag."""
    if spec.testdata:
        meta = (pk.TESTDATA / spec.testdata).read_text()
    else:
        meta = meta_yaml(spec, tag, r, p, digests)
    stream = pk.package_stream(meta, [])
    image = pk._Image({})
    image.layer(pk.make_tar({"package.yaml": stream}), annotations=pk.BASE)
    manifest = image.manifest()
    return manifest, dict(image.blobs), stream


def publish(local: str, private: str, *, private_auth: tuple[str, str],
            specs: Iterable[Spec] = SPECS, jobs: int = 8,
            push_to: str | None = None) -> dict[str, str]:
    """Push every tag of every spec; return ``{ref: manifest digest}``. ``local`` and
    ``private`` are ``host:port`` of plain-HTTP registries; ``push_to`` sends what names
    ``local`` to another front of the same storage (a proxy's registry)."""
    digests: dict[str, str] = {}
    specs = list(specs)
    # digest-pinned dependencies need their target pushed first
    firsts = [s for s in specs if any(c.startswith("@digest:") for _, _, c in s.deps)]
    order = [s for s in specs if s not in firsts] + firsts

    def push(spec: Spec) -> list[tuple[str, str]]:
        # one repository's tags in sequence: parallel uploads of a shared blob collide
        out = []
        repo_full = _sub(spec.repo, local, private)
        host, repo = repo_full.split("/", 1)
        auth = private_auth if host == private else None
        target = push_to if push_to and host == local else host
        for tag in spec.tags:
            manifest, blobs, _ = build(spec, tag, local, private, digests)
            digest = raw_push(f"http://{target}", repo, tag, manifest, pk.OCI_MANIFEST, blobs,
                              verify=False, auth=auth)
            out.append((f"{repo_full}:{tag}", digest))
        return out

    with ThreadPoolExecutor(jobs) as pool:
        for batch in ([s for s in order if s not in firsts], firsts):
            for pushed in pool.map(push, batch):
                digests.update(pushed)
    return digests


def rewrite_policy(local: str, private: str | None = None,
                   secret: tuple[str, str] | None = None) -> str:
    """ImageConfigs mapping xpkg.upbound.io/ and xpkg.crossplane.io/ onto the local registry
    (plain HTTP allowed for both registries), and a pull secret for the private one."""
    docs = [
        _imageconfig("upbound", f"{UP}/", rewrite=f"{local}/upbound/"),
        _imageconfig("crossplane", f"{CP}/", rewrite=f"{local}/crossplane/"),
        _imageconfig("local", f"{local}/", mode="Disabled"),
    ]
    if private:
        docs.append(_imageconfig("private", f"{private}/", mode="Disabled",
                                 secret="private-pull" if secret else None))
    if private and secret:
        import base64
        import json

        auth = base64.b64encode(f"{secret[0]}:{secret[1]}".encode()).decode()
        cfg = json.dumps({"auths": {private: {"auth": auth}}})
        docs.append("apiVersion: v1\nkind: Secret\nmetadata: {name: private-pull}\n"
                    "type: kubernetes.io/dockerconfigjson\n"
                    f"stringData:\n  .dockerconfigjson: '{cfg}'\n")
    return "---\n".join(docs)


def _imageconfig(name: str, prefix: str, *, rewrite: str | None = None, mode: str | None = None,
                 secret: str | None = None) -> str:
    doc = (f"apiVersion: pkg.crossplane.io/v1beta1\nkind: ImageConfig\nmetadata: {{name: {name}}}\n"
           f"spec:\n  matchImages: [{{type: Prefix, prefix: '{prefix}'}}]\n")
    if mode or secret:
        doc += "  registry:\n"
        if secret:
            doc += f"    authentication:\n      pullSecretRef: {{name: {secret}}}\n"
        if mode:
            doc += f"    tls:\n      mode: {mode}\n"
    if rewrite:
        doc += f"  rewriteImage: {{prefix: '{rewrite}'}}\n"
    return doc
