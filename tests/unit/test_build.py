"""``crossfetch build``: the layout, headers and diffIDs of real ``crossplane xpkg build`` output.

The reference is ``testdata/xpkg/function-conditional-patch-and-transform.xpkg``, written by the
real CLI. Its inputs are recovered from it (package.yaml split into crossplane.yaml and the CRD;
the examples layer split back into its files) and built again: the uncompressed layers must be
byte-identical (same diffIDs).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import re
import tarfile
from pathlib import Path

import pytest

from crossfetch.xpkg import goyaml
from crossfetch.xpkg.build import (
    BuildError,
    LintError,
    build,
    friendly_id,
    single_file_tar,
    tar_header,
)
from tests.support.cli import invoke
from tests.support.packages import XPKG_FILE
from tests.support.testdata import TESTDATA


def _members(path: Path) -> dict[str, bytes]:
    with tarfile.open(path) as t:
        return {m.name: t.extractfile(m).read() for m in t.getmembers()}  # type: ignore[union-attr]


def _config(members: dict[str, bytes]) -> dict[str, object]:
    name = next(n for n in members if n.startswith("sha256:"))
    return json.loads(members[name])  # type: ignore[no-any-return]


def recover_inputs(xpkg: Path, dest: Path) -> Path:
    """Write the package source a real .xpkg was built from: crossplane.yaml, the objects
    (one file each) and the example files."""
    members = _members(xpkg)
    cfg = _config(members)
    labels = cfg["config"]["Labels"]  # type: ignore[index]
    layer = {v: members[k.split(":", 1)[1].split(":", 1)[1] + ".tar.gz"]
             for k, v in labels.items()}

    def file_in(gz: bytes, name: str) -> str:
        with tarfile.open(fileobj=io.BytesIO(gzip.decompress(gz))) as t:
            return t.extractfile(name).read().decode()  # type: ignore[union-attr]

    stream = file_in(layer["base"], "package.yaml")
    docs = [d for d in stream[len("---\n"):].split("\n---\n") if d.strip()]
    root = dest / "package"
    (root / "input").mkdir(parents=True)
    (root / "crossplane.yaml").write_text(docs[0] + "\n")
    for i, d in enumerate(docs[1:]):
        (root / "input" / f"{i:02d}.yaml").write_text("---\n" + d.rstrip("\n") + "\n")
    examples = file_in(layer["upbound"], ".up/examples.yaml").split("\n...\n\n---\n")
    assert examples[-1] == ""
    (root / "examples").mkdir()
    for i, e in enumerate(examples[:-1]):
        (root / "examples" / f"{i:02d}.yaml").write_text(e)
    return root


@pytest.fixture
def recovered(tmp_path: Path) -> Path:
    return recover_inputs(XPKG_FILE, tmp_path)


def test_diff_ids_equal_the_real_cli_for_the_recovered_inputs(recovered: Path) -> None:
    real = _config(_members(XPKG_FILE))["rootfs"]["diff_ids"]  # type: ignore[index]
    result = build(recovered, examples_root=recovered / "examples")
    assert [x.diff_id for x in result.layers] == real
    assert [x.label for x in result.layers] == ["base", "upbound"]


def test_layout_and_headers_match_the_real_file(recovered: Path) -> None:
    result = build(recovered, examples_root=recovered / "examples")
    ours, real = result.path.read_bytes(), XPKG_FILE.read_bytes()

    def shape(raw: bytes) -> list[tuple[bytes, bytes]]:
        out, off = [], 0
        while raw[off:off + 512] != b"\0" * 512:
            h = raw[off:off + 512]
            size = int(h[124:135], 8)
            # everything but the name, the size of gzip data and the checksum over both
            out.append((h[100:124] + h[136:148] + h[156:512],
                        re.sub(rb"[0-9a-f]{64}", b"H", h[:100])))
            off += 512 + -(-size // 512) * 512
        assert raw[off:] == b"\0" * 1024
        return out

    assert shape(ours) == shape(real)
    m_ours, m_real = _members(result.path), _members(XPKG_FILE)
    hexes = re.compile(rb"[0-9a-f]{64}")
    assert hexes.sub(b"H", m_ours["manifest.json"]) == hexes.sub(b"H", m_real["manifest.json"])
    assert json.loads(m_ours["manifest.json"])[0]["RepoTags"] is None
    cfg = _config(m_ours)
    assert cfg["created"] == "0001-01-01T00:00:00Z"
    assert cfg["history"] == [{"created": "0001-01-01T00:00:00Z"}] * 2
    labels = cfg["config"]["Labels"]  # type: ignore[index]
    assert labels == {f"io.crossplane.xpkg:{x.digest}": x.label for x in result.layers}
    for x in result.layers:  # layer names are the compressed digests; gzip header as ggcr's
        gz = m_ours[x.digest.split(":")[1] + ".tar.gz"]
        assert "sha256:" + hashlib.sha256(gz).hexdigest() == x.digest
        assert gz[:10] == bytes.fromhex("1f8b08000000000004ff")
    # The config is serialised like ggcr's (field order, compact), digests aside.
    name = next(n for n in m_real if n.startswith("sha256:"))
    real_cfg = m_real[name]
    ours_cfg = m_ours[next(n for n in m_ours if n.startswith("sha256:"))]
    assert len(ours_cfg) == len(real_cfg)
    assert hexes.sub(b"H", ours_cfg).startswith(hexes.sub(b"H", real_cfg)[:200])


def test_default_name_and_package_yaml_mode(recovered: Path) -> None:
    result = build(recovered, examples_root=recovered / "examples")
    hexd = result.digest.split(":")[1]
    assert result.path == recovered / f"function-conditional-patch-and-transform-{hexd[:12]}.xpkg"
    members = _members(result.path)
    base = next(x for x in result.layers if x.label == "base")
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(
            members[base.digest.split(":")[1] + ".tar.gz"]))) as t:
        (m,) = t.getmembers()
    assert (m.name, m.mode, m.mtime, m.uid, m.uname) == ("package.yaml", 0o644, 0, 0, "")


def test_two_builds_are_byte_identical(recovered: Path, tmp_path: Path) -> None:
    a = build(recovered, examples_root=recovered / "examples", output=tmp_path / "a.xpkg")
    for f in recovered.rglob("*.yaml"):
        os.utime(f, (1, 1))  # timestamps of the inputs do not matter
    b = build(recovered, examples_root=recovered / "examples", output=tmp_path / "b.xpkg")
    assert a.path.read_bytes() == b.path.read_bytes()
    assert a.digest == b.digest


def test_friendly_id() -> None:
    assert friendly_id("function-foo", "0123456789abcdef") == "function-foo-0123456789ab"
    assert friendly_id("a" * 60, "f" * 64) == "a" * 50 + "-" + "f" * 12
    assert friendly_id("Fn.Foo", "ab" * 32) == "n-oo-abababababab"


def test_tar_header_is_go_archive_tar() -> None:
    h = tar_header("package.yaml", 60919)
    assert h[100:108] == b"0000644\0" and h[329:345] == b"0000000\x000000000\0"
    assert h[257:265] == b"ustar\x0000" and h[156:157] == b"0"
    assert len(single_file_tar("x", b"abc")) == 512 + 512 + 1024


def test_examples_outside_the_root_and_ignore_globs(tmp_path: Path) -> None:
    root = tmp_path / "pkg"
    (root / "input").mkdir(parents=True)
    (root / "crossplane.yaml").write_text(
        "apiVersion: meta.pkg.crossplane.io/v1beta1\nkind: Function\nmetadata:\n  name: fn\n")
    (root / "input" / "skip.yaml").write_text("apiVersion: v1\nkind: ConfigMap\n")
    (root / "notes.txt").write_text("not yaml")
    r = build(root, examples_root=tmp_path / "none", ignore=("input/*",),
              output=tmp_path / "o.xpkg")
    assert [x.label for x in r.layers] == ["base"]  # no examples dir, no examples layer
    pkg = _package_yaml(r.path)
    assert pkg == (b"---\napiVersion: meta.pkg.crossplane.io/v1beta1\nkind: Function\n"
                   b"metadata:\n  creationTimestamp: null\n  name: fn\nspec: {}\n---\n")


def _package_yaml(path: Path) -> bytes:
    members = _members(path)
    cfg = _config(members)
    (key,) = [k for k, v in cfg["config"]["Labels"].items() if v == "base"]  # type: ignore[index]
    gz = members[key.rsplit(":", 1)[1] + ".tar.gz"]
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(gz))) as t:
        return t.extractfile("package.yaml").read()  # type: ignore[union-attr]


def _fn(root: Path, extra: str = "") -> None:
    root.mkdir(parents=True, exist_ok=True)
    (root / "crossplane.yaml").write_text(
        "apiVersion: meta.pkg.crossplane.io/v1beta1\nkind: Function\nmetadata:\n  name: fn\n"
        + extra)


@pytest.mark.parametrize(("files", "needle"), [
    ({"b.yaml": "\n\napiVersion: apiextensions.crossplane.io/v1\nkind: Composition\n"
      "metadata:\n  name: c\n"}, "b.yaml:3: a Function package may not contain"),
    ({"b.yaml": "---\napiVersion: meta.pkg.crossplane.io/v1\nkind: Provider\n"
      "metadata:\n  name: p\n"}, "not exactly one package meta type: found 2"),
    ({"b.yaml": "a: [1, 2\n"}, "b.yaml:2: invalid YAML"),
    ({"b.yaml": "- 1\n"}, "b.yaml:1: a package document must be a YAML mapping"),
])
def test_lint_errors_name_file_and_line(tmp_path: Path, files: dict[str, str],
                                        needle: str) -> None:
    root = tmp_path / "pkg"
    _fn(root)
    for name, text in files.items():
        (root / name).write_text(text)
    with pytest.raises(LintError) as info:
        build(root, output=tmp_path / "o.xpkg")
    assert needle in str(info.value)
    assert info.value.fix
    assert not (tmp_path / "o.xpkg").exists()


def test_lint_bad_crossplane_constraint(tmp_path: Path) -> None:
    _fn(tmp_path / "pkg", "spec:\n  crossplane:\n    version: '>= banana'\n")
    with pytest.raises(LintError, match=r"crossplane.yaml:1: package version constraints"):
        build(tmp_path / "pkg", output=tmp_path / "o.xpkg")


def test_real_testdata_packages_build_and_lint(tmp_path: Path) -> None:
    for name in ("function-patch-and-transform", "provider-kubernetes",
                 "configuration-aws-network"):
        r = build(TESTDATA / name, examples_root=tmp_path / "none",
                  output=tmp_path / f"{name}.xpkg")
        assert r.kind in ("Function", "Provider", "Configuration")
        assert _package_yaml(r.path).startswith(b"---\napiVersion: meta.pkg.crossplane.io/")


def _layer_tar(name: str, data: bytes) -> bytes:
    return single_file_tar(name, data)


def test_embed_runtime_docker_save_tarball(tmp_path: Path) -> None:
    layer = _layer_tar("bin/fn", b"\x7fELF" + b"x" * 5000)
    diff = "sha256:" + hashlib.sha256(layer).hexdigest()
    cfg = json.dumps({"architecture": "arm64", "os": "linux", "created": "2024-01-01T00:00:00Z",
                      "config": {"Entrypoint": ["/bin/fn"], "Labels": {"a": "b"}},
                      "rootfs": {"type": "layers", "diff_ids": [diff]},
                      "history": [{"created_by": "COPY fn"}]}).encode()
    tarpath = tmp_path / "runtime.tar"
    with tarfile.open(tarpath, "w") as t:
        manifest = json.dumps([{"Config": "cfg.json", "RepoTags": ["fn:rt"],
                                "Layers": ["abc/layer.tar"]}]).encode()
        for name, data in (("cfg.json", cfg), ("abc/layer.tar", layer),
                           ("manifest.json", manifest)):
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            t.addfile(ti, io.BytesIO(data))
    _fn(tmp_path / "pkg")
    r = build(tmp_path / "pkg", output=tmp_path / "o.xpkg", runtime_image=tarpath)
    assert [x.label for x in r.layers] == [None, "base"]
    assert r.layers[0].diff_id == diff  # the uncompressed runtime layer was gzipped as is
    got = _config(_members(r.path))
    assert got["architecture"] == "arm64" and got["os"] == "linux"
    assert got["config"]["Entrypoint"] == ["/bin/fn"]  # type: ignore[index]
    assert got["config"]["Labels"]["a"] == "b"  # type: ignore[index]
    assert len(got["history"]) == 2  # type: ignore[arg-type]
    assert list(got) == ["architecture", "created", "history", "os", "rootfs", "config"]
    # Reproducible with a runtime too.
    r2 = build(tmp_path / "pkg", output=tmp_path / "o2.xpkg", runtime_image=tarpath)
    assert r.path.read_bytes() == r2.path.read_bytes()


def test_embed_runtime_oci_layout_keeps_compressed_layers(tmp_path: Path) -> None:
    layer = gzip.compress(_layer_tar("bin/fn", b"ELF" * 100), mtime=0)
    raw = gzip.decompress(layer)
    blobs = tmp_path / "oci" / "blobs" / "sha256"
    blobs.mkdir(parents=True)

    def put(data: bytes) -> str:
        h = hashlib.sha256(data).hexdigest()
        (blobs / h).write_bytes(data)
        return "sha256:" + h

    ld = put(layer)
    cd = put(json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {
        "type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(raw).hexdigest()]}}).encode())
    md = put(json.dumps({"schemaVersion": 2, "config": {"digest": cd}, "layers": [
        {"digest": ld}]}).encode())
    (tmp_path / "oci" / "index.json").write_text(json.dumps({"manifests": [{"digest": md}]}))
    (tmp_path / "oci" / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    _fn(tmp_path / "pkg")
    r = build(tmp_path / "pkg", output=tmp_path / "o.xpkg", runtime_image=tmp_path / "oci")
    assert r.layers[0].digest == ld


def test_not_an_image(tmp_path: Path) -> None:
    _fn(tmp_path / "pkg")
    (tmp_path / "x").mkdir()
    with pytest.raises(BuildError, match="neither a `docker save` tarball"):
        build(tmp_path / "pkg", output=tmp_path / "o.xpkg", runtime_image=tmp_path / "x")


def test_goyaml_scalars_and_key_order() -> None:
    out = goyaml.dump({"b10": 1, "b9": 2, "a_b": "y", "aB": "", "n": "1", "t": "true",
                       "f": 1.0, "g": 1.5, "s": "plain text", "m": "a\nb\n", "z": None,
                       "ts": "2024-01-01"})
    # go-yaml's order: a non-letter sorts before a letter, digit runs compare as numbers.
    assert out == ('a_b: "y"\naB: ""\nb9: 2\nb10: 1\nf: 1\ng: 1.5\nm: |\n  a\n  b\n"n": "1"\n'
                   's: plain text\nt: "true"\nts: "2024-01-01"\nz: null\n')


def test_cli_build_json(recovered: Path, tmp_path: Path) -> None:
    res = invoke(["build", "-f", str(recovered), "-e", str(recovered / "examples"),
                  "-o", str(tmp_path / "x.xpkg"), "-O", "json"])
    assert res.exit_code == 0, res.output
    d = json.loads(res.stdout)
    assert d["ok"] and d["kind"] == "Function" and d["path"] == str(tmp_path / "x.xpkg")
    bad = invoke(["build", "-f", str(tmp_path / "missing")])
    assert bad.exit_code == 2 and bad.stderr.startswith("error: ")


def test_go_type_zero_values_on_a_provider_meta(tmp_path: Path) -> None:
    root = tmp_path / "pkg"
    root.mkdir()
    (root / "crossplane.yaml").write_text(
        "apiVersion: meta.pkg.crossplane.io/v1\nkind: Provider\nmetadata:\n  name: p\n"
        "spec:\n  dependsOn:\n  - provider: xpkg.example/p\n")
    r = build(root, examples_root=tmp_path / "none", output=tmp_path / "p.xpkg")
    assert _package_yaml(r.path) == (
        b"---\napiVersion: meta.pkg.crossplane.io/v1\nkind: Provider\nmetadata:\n"
        b"  creationTimestamp: null\n  name: p\nspec:\n  controller: {}\n  dependsOn:\n"
        b'  - provider: xpkg.example/p\n    version: ""\n---\n')
    (root / "crossplane.yaml").write_text(
        "apiVersion: meta.pkg.crossplane.io/v1\nkind: Provider\nmetadata:\n  name: p\n"
        "spec:\n  crossplane: {}\n")
    with pytest.raises(LintError, match="poorly formatted"):  # the empty constraint
        build(root, examples_root=tmp_path / "none", output=tmp_path / "p.xpkg")
