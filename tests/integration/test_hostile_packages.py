"""Hostile packages from a real registry: each is refused with its named error (exit 1, one
``error:`` line with a fix, ``"ok": false`` under ``-O json``), nothing is cached and no
``-o`` file appears. Packages are built by tests/support/packages.py and pushed byte for byte
by the raw pusher; crossfetch only pulls them."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from crossfetch.xpkg import LAYER_CAP
from tests.integration.conftest import ssl_context
from tests.support import packages as pk
from tests.support.certs import PKI
from tests.support.push import raw_push
from tests.support.registry import Registry

CLI = [sys.executable, "-m", "crossfetch.cli.main"]
META = (pk.TESTDATA / "provider-kubernetes/crossplane.yaml").read_text()
CRDS = [p.read_text() for p in sorted((pk.TESTDATA / "provider-kubernetes/crds").glob("*.yaml"))]
GOOD = pk.package_stream(META, CRDS[:2])
COMPOSITION = ("apiVersion: apiextensions.crossplane.io/v1\nkind: Composition\n"
               "metadata: {name: c}\n")


def layer(package: bytes) -> bytes:
    return pk.make_tar({"package.yaml": package})


def with_doc(index: int, doc: bytes) -> bytes:
    """GOOD with ``doc`` inserted as document ``index`` (0 = before the meta object)."""
    docs = [META.encode(), *(c.encode() for c in CRDS[:2])]
    docs.insert(index, doc)
    return b"".join(b"---\n" + d.removeprefix(b"---\n") for d in docs)


def bomb(prefix: str) -> bytes:
    lines = [prefix, 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    prev = "a"
    for name in "bcdefghi":
        lines.append(f"{name}: &{name} [" + ",".join([f"*{prev}"] * 9) + "]")
        prev = name
    return ("\n".join(lines) + "\n").encode()


def deep_crd(depth: int) -> bytes:
    return (b"apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\n"
            b"spec: " + b"[" * depth + b"]" * depth + b"\n")


def many_entries(n: int) -> bytes:
    return pk.raw_tar(*((pk.tar_header(f"f{i}".encode()), b"") for i in range(n)))


def link(kind: bytes, target: bytes, real_first: bool = False) -> bytes:
    members = [(pk.tar_header(b"real.yaml", size=len(GOOD)), GOOD)] if real_first else []
    members.append((pk.tar_header(b"package.yaml", typeflag=kind, linkname=target), b""))
    return pk.raw_tar(*members)


def big_pax_path() -> bytes:
    return pk.lying_tar(GOOD, pax={"path": "a/" * (600 * 1024) + "package.yaml"})


# name -> (builder of the image, expected cause)
HOSTILE: dict[str, tuple[Callable[[], pk.BuiltPackage], str]] = {
    "traversal ../package.yaml": (
        lambda: pk.image([pk.make_tar({"../package.yaml": GOOD})]), "no-package-yaml"),
    "absolute /package.yaml": (
        lambda: pk.image([pk.raw_tar((pk.tar_header(b"/package.yaml", size=len(GOOD)),
                                      GOOD))]), "no-package-yaml"),
    "traversal on the flatten path": (
        lambda: pk.image([pk.make_tar({"x/../../package.yaml": GOOD})], base=None),
        "no-package-yaml"),
    "symlink package.yaml -> /etc/passwd": (
        lambda: pk.image([link(b"2", b"/etc/passwd")]), "unsafe-package-yaml"),
    "hardlink package.yaml -> real.yaml": (
        lambda: pk.image([link(b"1", b"real.yaml", real_first=True)]), "unsafe-package-yaml"),
    "symlink package.yaml on the flatten path": (
        lambda: pk.image([link(b"2", b"../../etc/passwd")], base=None),
        "unsafe-package-yaml"),
    "gzip bomb (inflates past the 1 GiB cap)": (
        lambda: pk.image([pk.gzip_bomb_layer(LAYER_CAP + 64 * 1024 * 1024, GOOD)],
                         compress=False), "gzip-bomb"),
    "tar bomb (20,000 entries, no package.yaml)": (
        lambda: pk.image([many_entries(20_000)]), "no-package-yaml"),
    "pax path record over 1 MiB": (lambda: pk.image([big_pax_path()]), "invalid-layer"),
    "tar size beyond the stream": (
        lambda: pk.image([pk.lying_tar(GOOD, size=len(GOOD) + 1_000_000)]), "invalid-layer"),
    "tar size negative (pax size=-5)": (
        lambda: pk.image([pk.lying_tar(GOOD, pax={"size": "-5"})]), "invalid-layer"),
    "tar size negative on the flatten path": (
        lambda: pk.image([pk.lying_tar(GOOD, pax={"size": "-5"})], base=None),
        "invalid-layer"),
    "tar size huge (pax 10**30)": (
        lambda: pk.image([pk.lying_tar(GOOD, pax={"size": str(10**30)})]),
        "package-too-large"),
    "tar size huge (base-256 header)": (
        lambda: pk.image([pk.lying_tar(GOOD, size=b"\x80" + b"\x7f" * 11)]),
        "package-too-large"),
    "tar size not a number": (
        lambda: pk.image([pk.lying_tar(GOOD, size=b"12a45\x00")]), "invalid-layer"),
    "YAML alias bomb in the meta object": (
        lambda: pk.image([layer(pk.package_stream(
            bomb(META.rstrip("\n")).decode(), CRDS[:1]))]), "yaml-aliases"),
    "YAML alias bomb in an object": (
        lambda: pk.image([layer(with_doc(2, bomb(
            "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition")))]),
        "yaml-aliases"),
    "deep nesting in an object": (
        lambda: pk.image([layer(with_doc(3, deep_crd(5000)))]), "invalid-yaml"),
    "deep JSON nesting in the image config": (
        lambda: pk.image([layer(GOOD)], base=None,
                         config=b'{"a":' * 100_000 + b"1" + b"}" * 100_000),
        "invalid-manifest"),
    "non-UTF-8 in the meta object": (
        lambda: pk.image([layer(GOOD.replace(b"provider-kubernetes", b"provider-\xff", 1))]),
        "invalid-utf8"),
    "non-UTF-8 in the third document": (
        lambda: pk.image([layer(with_doc(2, deep_crd(1).replace(b"spec:", b"caf\xe9:")))]),
        "invalid-utf8"),
    "invalid YAML in the last document": (
        lambda: pk.image([layer(with_doc(3, b"apiVersion: v1\nkind: [unclosed\n"))]),
        "invalid-yaml"),
    "a document that is not an object": (
        lambda: pk.image([layer(with_doc(1, b"- just\n- a list\n"))]), "invalid-object"),
    "two meta objects": (
        lambda: pk.image([layer(with_doc(3, META.encode()))]), "multiple-meta-objects"),
    "a Composition in a Provider": (
        lambda: pk.image([layer(with_doc(1, COMPOSITION.encode()))]), "disallowed-object"),
}
REPO = {name: f"hostile/case-{i}:v1" for i, name in enumerate(HOSTILE)}
META_THIRD = "hostile/meta-third:v1"
META_THIRD_YAML = pk.package_stream(CRDS[0], [CRDS[1], META, *CRDS[2:4]])


@pytest.fixture(scope="module")
def hostile(https_registry: Registry, pki: PKI) -> dict[str, pk.BuiltPackage]:
    built = {name: builder() for name, (builder, _) in HOSTILE.items()}
    built[META_THIRD] = pk.image([layer(META_THIRD_YAML)], package_yaml=META_THIRD_YAML)
    refs = {**REPO, META_THIRD: META_THIRD}

    def push(name: str) -> None:
        repo, _, tag = refs[name].rpartition(":")
        b = built[name]
        raw_push(https_registry.url, repo, tag, b.manifest, b.media_type, b.blobs,
                 verify=ssl_context(pki.ca_cert))

    with ThreadPoolExecutor(max_workers=3) as pool:
        list(pool.map(push, built))
    return built


def pull(registry: Registry, pki: PKI, ref: str, cache: Path, out: Path,
         *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, "pull", f"{registry.host}/{ref}", "--ca-bundle", str(pki.ca_cert),
         "--cache-dir", str(cache), "-o", str(out), "--no-node-config", "--retries", "0",
         *extra], capture_output=True, text=True, timeout=240, check=False)


def stored(cache: Path) -> list[Path]:
    """Anything in the cache that could read as a package: entry records, package files."""
    if not cache.exists():
        return []
    return [p for p in cache.rglob("*") if p.name in ("entry.json", "package.yaml")]


@pytest.mark.timeout(600)
@pytest.mark.parametrize("name", list(HOSTILE), ids=list(HOSTILE))
def test_hostile_package_is_refused_and_nothing_is_stored(
        name: str, hostile: dict[str, pk.BuiltPackage], https_registry: Registry, pki: PKI,
        tmp_path: Path) -> None:
    cause = HOSTILE[name][1]
    cache, out = tmp_path / "cache", tmp_path / "package.yaml"
    r = pull(https_registry, pki, REPO[name], cache, out, "-O", "json")
    assert r.returncode == 1, r.stdout + r.stderr
    doc = json.loads(r.stdout)
    assert doc["ok"] is False and doc["cause"] == cause, doc
    assert doc.get("fix"), doc
    text = pull(https_registry, pki, REPO[name], cache, out)
    assert text.returncode == 1
    errors = [line for line in text.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "fix:" in text.stderr, text.stderr
    assert "Traceback" not in text.stderr
    assert stored(cache) == [] and not out.exists()


def test_a_meta_object_third_in_the_stream_pulls(
        hostile: dict[str, pk.BuiltPackage], https_registry: Registry, pki: PKI,
        tmp_path: Path) -> None:
    cache, out = tmp_path / "cache", tmp_path / "package.yaml"
    r = pull(https_registry, pki, META_THIRD, cache, out, "-O", "json")
    assert r.returncode == 0, r.stdout + r.stderr
    doc = json.loads(r.stdout)
    assert doc["kind"] == "Provider" and doc["objects"] == {"CustomResourceDefinition": 4}
    assert out.read_bytes() == META_THIRD_YAML
