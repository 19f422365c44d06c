"""Reading package.yaml from layer blobs: sniffing, tar safety, digests, caps, flattening."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from crossfetch.errors import DigestMismatch, LimitExceeded, PackageError
from crossfetch.oci import Descriptor, Manifest, parse_manifest
from crossfetch.xpkg import ANNOTATION, extract_package, read_flattened, read_package_yaml
from crossfetch.xpkg.meta import Package
from tests.support.testdata import TESTDATA

XPKG = TESTDATA / "xpkg" / "function-conditional-patch-and-transform.xpkg"
GZ_TYPE = "application/vnd.oci.image.layer.v1.tar+gzip"
META = (TESTDATA / "function-auto-ready/crossplane.yaml").read_bytes()
CRD = (TESTDATA / "function-auto-ready/input/autoready.fn.crossplane.io_inputs.yaml").read_bytes()
PACKAGE = META + b"---\n" + CRD
OTHER = (TESTDATA / "function-go-templating/crossplane.yaml").read_bytes()


def digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def desc(blob: bytes, **annotations: str) -> Descriptor:
    return Descriptor(GZ_TYPE, digest(blob), len(blob), dict(annotations))


def tar(*members: tuple[str, bytes] | tarfile.TarInfo,
        fmt: int = tarfile.PAX_FORMAT) -> bytes:
    """A tar of (name, data) regular files and ready-made TarInfo entries, in order."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as t:
        for m in members:
            if isinstance(m, tarfile.TarInfo):
                t.addfile(m)
            else:
                info = tarfile.TarInfo(m[0])
                info.size = len(m[1])
                t.addfile(info, io.BytesIO(m[1]))
    return buf.getvalue()


def link(name: str, target: str, kind: bytes = tarfile.SYMTYPE) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = target
    return info


def gz(data: bytes) -> bytes:
    return gzip.compress(data, 6, mtime=0)


def chunks(blob: bytes, size: int = 997) -> Iterator[bytes]:
    for i in range(0, len(blob), size):
        yield blob[i:i + size]


def read(blob: bytes, **kw: int) -> tuple[Package, bytes]:
    sink = io.BytesIO()
    pkg = read_package_yaml(chunks(blob), digest(blob), sink, expected_size=len(blob), **kw)
    return pkg, sink.getvalue()


def real_xpkg() -> tuple[dict[str, object], bytes, list[bytes]]:
    with tarfile.open(XPKG) as t:
        def member(name: str) -> bytes:
            f = t.extractfile(name)
            assert f is not None
            return f.read()
        index = json.loads(member("manifest.json"))[0]
        return json.loads(member(index["Config"])), member(index["Config"]), [
            member(n) for n in index["Layers"]]


# --- one layer ------------------------------------------------------------------------------


def test_real_xpkg_base_layer() -> None:
    _, _, layers = real_xpkg()
    pkg, out = read(layers[0])
    with tarfile.open(fileobj=io.BytesIO(layers[0])) as t:
        f = t.extractfile("package.yaml")
        assert f is not None
        assert out == f.read()
    assert pkg.name == "function-conditional-patch-and-transform"
    assert pkg.kind == "Function" and pkg.api_version == "meta.pkg.crossplane.io/v1beta1"
    assert pkg.size == len(out) and pkg.sha256 == hashlib.sha256(out).hexdigest()
    # the examples layer (.up/examples.yaml) is not a package
    with pytest.raises(PackageError) as e:
        read(layers[1])
    assert e.value.cause == "no-package-yaml"


@pytest.mark.parametrize("compress", [True, False], ids=["gzip", "plain"])
def test_compression_is_sniffed_not_trusted(compress: bool) -> None:
    raw = tar(("README.md", b"hi"), ("package.yaml", PACKAGE))
    pkg, out = read(gz(raw) if compress else raw)
    assert out == PACKAGE and pkg.objects == {"CustomResourceDefinition": 1}


def test_multi_member_gzip_is_read_through() -> None:
    raw = tar(("a.bin", os.urandom(3000)), ("package.yaml", PACKAGE))
    assert read(gz(raw[:1500]) + gz(raw[1500:]))[1] == PACKAGE


def test_first_package_yaml_wins_and_dot_slash_matches() -> None:
    raw = tar(("./package.yaml", PACKAGE), ("package.yaml", OTHER))
    assert read(gz(raw))[1] == PACKAGE


@pytest.mark.parametrize("name", ["../package.yaml", "/package.yaml", "sub/package.yaml",
                                  "package.yaml.bak", "a/../package.yaml"])
def test_other_paths_are_never_the_package(name: str) -> None:
    assert read(gz(tar((name, OTHER), ("package.yaml", PACKAGE))))[1] == PACKAGE
    with pytest.raises(PackageError, match=r"holds no package\.yaml"):
        read(gz(tar((name, OTHER))))


@pytest.mark.parametrize("entry, what", [
    (link("package.yaml", "/etc/passwd"), "symlink"),
    (link("./package.yaml", "other.yaml", tarfile.LNKTYPE), "hardlink"),
])
def test_links_named_package_yaml_are_refused(entry: tarfile.TarInfo, what: str) -> None:
    blob = gz(tar(("other.yaml", PACKAGE), entry, ("package.yaml", PACKAGE)))
    with pytest.raises(PackageError, match=what) as e:
        read(blob)
    assert e.value.cause == "unsafe-package-yaml"


@pytest.mark.parametrize("fmt", [tarfile.PAX_FORMAT, tarfile.GNU_FORMAT, tarfile.USTAR_FORMAT])
def test_long_names_before_the_package_are_skipped(fmt: int) -> None:
    long_dir = "d" * 90 + "/" + "e" * 60  # USTAR stores this with a prefix field
    members: list[tuple[str, bytes] | tarfile.TarInfo] = [(long_dir + "/x.yaml", b"x" * 700)]
    if fmt != tarfile.USTAR_FORMAT:
        members.append(("f" * 300 + ".yaml", OTHER))  # pax path record / GNU longname
    members.append((long_dir + "/package.yaml", OTHER))  # not at the root
    members.append(("package.yaml", PACKAGE))
    assert read(gz(tar(*members, fmt=fmt)))[1] == PACKAGE


def test_pax_path_names_the_member() -> None:
    # The ustar name field says one thing, the pax record another: the pax record is the name.
    info = tarfile.TarInfo("package.yaml")
    info.size = len(PACKAGE)
    info.pax_headers = {"path": "docs/package.yaml"}
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        t.addfile(info, io.BytesIO(PACKAGE))
    with pytest.raises(PackageError, match=r"holds no package\.yaml"):
        read(buf.getvalue())


@pytest.mark.parametrize("where", ["compressed-start", "middle", "last-byte"])
def test_one_flipped_byte_is_a_digest_mismatch(where: str) -> None:
    blob = bytearray(gz(tar(("package.yaml", PACKAGE), ("z.bin", os.urandom(4000)))))
    pos = {"compressed-start": 20, "middle": len(blob) // 2, "last-byte": len(blob) - 1}[where]
    good = digest(bytes(blob))
    blob[pos] ^= 0x01
    with pytest.raises(DigestMismatch) as e:
        read_package_yaml(chunks(bytes(blob)), good, io.BytesIO(), expected_size=len(blob))
    assert good in e.value.message and e.value.fix


def test_flipped_byte_inside_plain_package_yaml_is_caught_after_parsing() -> None:
    blob = bytearray(tar(("package.yaml", PACKAGE)))
    good = digest(bytes(blob))
    blob[600] ^= 0x20  # a letter's case inside package.yaml: still parses
    with pytest.raises(DigestMismatch):
        read_package_yaml(chunks(bytes(blob)), good, io.BytesIO())


def test_sha512_digests_are_verified() -> None:
    blob = gz(tar(("package.yaml", PACKAGE)))
    d512 = "sha512:" + hashlib.sha512(blob).hexdigest()
    assert read_package_yaml(chunks(blob), d512, io.BytesIO()).kind == "Function"
    with pytest.raises(DigestMismatch):
        read_package_yaml(chunks(blob + b"\0"), d512, io.BytesIO())


def test_more_bytes_than_the_descriptor_says_stop_the_read() -> None:
    blob = gz(tar(("package.yaml", PACKAGE)))
    with pytest.raises(DigestMismatch) as e:
        read_package_yaml(chunks(blob), digest(blob), io.BytesIO(), expected_size=len(blob) - 1)
    assert e.value.cause == "size-mismatch"


def test_package_cap() -> None:
    blob = gz(tar(("package.yaml", PACKAGE)))
    with pytest.raises(LimitExceeded) as e:
        read(blob, max_package_bytes=len(PACKAGE) - 1)
    assert e.value.cause == "package-too-large"
    assert read(blob, max_package_bytes=len(PACKAGE))[1] == PACKAGE


def test_gzip_bomb_is_capped() -> None:
    bomb = gz(tar(("zeros.bin", bytes(64 * 1024 * 1024)), ("package.yaml", PACKAGE)))
    assert len(bomb) < 200_000
    with pytest.raises(LimitExceeded) as e:
        read(bomb, max_decompressed=8 * 1024 * 1024)
    assert e.value.cause == "gzip-bomb"


def test_zstd_layers_are_refused_clearly() -> None:
    blob = b"\x28\xb5\x2f\xfd" + os.urandom(100)
    with pytest.raises(PackageError, match="zstd"):
        read(blob)


def test_garbage_is_not_a_tar() -> None:
    with pytest.raises(PackageError, match="not a valid tar"):
        read(b"not a tar archive at all" * 40)


def test_big_package_streams_through_the_writer_thread() -> None:
    crds = [p.read_bytes() for p in sorted((TESTDATA / "provider-kubernetes/crds").iterdir())]
    body = (TESTDATA / "provider-kubernetes/crossplane.yaml").read_bytes()
    docs = [body] + crds * 50  # ~6 MB
    data = b"".join(b"---\n" + d for d in docs)
    assert len(data) > 4 * 1024 * 1024
    pkg, out = read(gz(tar(("package.yaml", data))))
    assert out == data and pkg.objects == {"CustomResourceDefinition": 450}
    with pytest.raises(PackageError, match="more than one meta"):
        read(gz(tar(("package.yaml", data + b"---\n" + OTHER))))


# --- flattening -----------------------------------------------------------------------------


def flatten(layers: list[bytes], tmp_path: Path) -> tuple[int, bytes]:
    sink = io.BytesIO()
    tmp = tmp_path / "tmp"
    tmp.mkdir(exist_ok=True)
    try:
        result = read_flattened([(desc(b), chunks(b)) for b in layers], sink, tmp_dir=tmp)
        assert result.layer.digest == digest(layers[result.index])
        return result.index, sink.getvalue()
    finally:
        assert list(tmp.iterdir()) == []  # candidates never outlive the call


def test_flatten_later_layer_overrides(tmp_path: Path) -> None:
    layers = [gz(tar(("package.yaml", OTHER))), tar(("bin/fn", b"\x7fELF")),
              gz(tar(("./package.yaml", PACKAGE))), gz(tar(("x", b"")))]
    assert flatten(layers, tmp_path) == (2, PACKAGE)


def test_flatten_keeps_a_lower_package_when_nothing_overrides(tmp_path: Path) -> None:
    assert flatten([gz(tar(("package.yaml", PACKAGE))), gz(tar(("a", b"1")))], tmp_path) \
        == (0, PACKAGE)


@pytest.mark.parametrize("whiteout", [".wh.package.yaml", "./.wh..wh..opq"])
def test_flatten_whiteouts_delete_lower_package(whiteout: str, tmp_path: Path) -> None:
    layers = [gz(tar(("package.yaml", PACKAGE))), gz(tar((whiteout, b"")))]
    with pytest.raises(PackageError) as e:
        flatten(layers, tmp_path)
    assert e.value.cause == "no-package-yaml"
    # a package.yaml in a layer above the whiteout is back
    assert flatten([*layers, gz(tar(("package.yaml", OTHER)))], tmp_path) == (2, OTHER)
    # a whiteout hides lower layers only, not its own layer's file
    same = gz(tar((whiteout, b""), ("package.yaml", OTHER)))
    assert flatten([layers[0], same], tmp_path) == (1, OTHER)


def test_flatten_whiteout_in_a_subdirectory_does_not_delete(tmp_path: Path) -> None:
    layers = [gz(tar(("package.yaml", PACKAGE))), gz(tar(("sub/.wh.package.yaml", b"")))]
    assert flatten(layers, tmp_path) == (0, PACKAGE)


def test_flatten_refuses_symlink_and_checks_every_digest(tmp_path: Path) -> None:
    with pytest.raises(PackageError, match="symlink"):
        flatten([gz(tar(("package.yaml", PACKAGE))), gz(tar(link("package.yaml", "/x")))],
                tmp_path)
    good = gz(tar(("package.yaml", PACKAGE)))
    bad = gz(tar(("package.yaml", OTHER)))
    flipped = bad[:-1] + bytes([bad[-1] ^ 1])
    layers = [(desc(good), chunks(good)), (desc(bad), chunks(flipped))]
    tmp = tmp_path / "t2"
    tmp.mkdir()
    with pytest.raises(DigestMismatch):
        read_flattened(layers, io.BytesIO(), tmp_dir=tmp)
    assert list(tmp.iterdir()) == []


def test_flatten_shares_the_decompression_cap(tmp_path: Path) -> None:
    layers = [gz(tar(("a.bin", bytes(3 * 1024 * 1024)))) for _ in range(3)]
    layers.append(gz(tar(("package.yaml", PACKAGE))))
    with pytest.raises(LimitExceeded):
        read_flattened([(desc(b), chunks(b)) for b in layers], io.BytesIO(),
                       tmp_dir=tmp_path, max_decompressed=8 * 1024 * 1024)


# --- the whole read from a BlobSource -------------------------------------------------------


class FakeSource:
    """Blobs by digest; records what was opened (an in-memory stand-in for a registry)."""

    def __init__(self, blobs: list[bytes]) -> None:
        self.blobs = {digest(b): b for b in blobs}
        self.opened: list[str] = []

    def fetch_manifest(self, identifier: str) -> tuple[bytes, str, str]:
        raise AssertionError("not used")

    def open_blob(self, d: Descriptor) -> Iterator[bytes]:
        self.opened.append(d.digest)
        return chunks(self.blobs[d.digest], 4096)


def image(config: bytes, layers: list[Descriptor]) -> Manifest:
    doc = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
           "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                      "digest": digest(config), "size": len(config)},
           "layers": [{"mediaType": d.media_type, "digest": d.digest, "size": d.size,
                       "annotations": d.annotations} for d in layers]}
    m = parse_manifest(json.dumps(doc).encode())
    assert isinstance(m, Manifest)
    return m


def test_extract_annotated_reads_only_the_base_layer(tmp_path: Path) -> None:
    runtime = gz(tar(("bin/function", os.urandom(50_000))))
    base = tar(("package.yaml", PACKAGE))  # plain tar under a gzip media type
    config = b'{"config": {}}'
    src = FakeSource([config, runtime, base])
    m = image(config, [desc(runtime), desc(base, **{ANNOTATION: "base"})])
    sink = io.BytesIO()
    got = extract_package(src, m, sink, tmp_dir=tmp_path)
    assert src.opened == [digest(base)]  # neither the config nor the runtime layer
    assert (got.how, got.layer.digest, got.config_read) == ("annotation", digest(base), False)
    assert sink.getvalue() == PACKAGE


def test_extract_real_xpkg_uses_the_config_label(tmp_path: Path) -> None:
    _, config, layers = real_xpkg()
    src = FakeSource([config, *layers])
    m = image(config, [desc(b) for b in layers])
    got = extract_package(src, m, io.BytesIO(), tmp_dir=tmp_path)
    assert src.opened == [digest(config), digest(layers[0])]
    assert got.how == "label" and got.config_read
    assert got.package.objects == {"CustomResourceDefinition": 1}


def test_extract_unmarked_image_flattens(tmp_path: Path) -> None:
    layers = [gz(tar(("package.yaml", OTHER))), gz(tar(("package.yaml", PACKAGE)))]
    labels = {"io.crossplane.xpkg:" + digest(b"elsewhere"): "base"}
    config = json.dumps({"config": {"Labels": labels}}).encode()
    src = FakeSource([config, *layers])
    got = extract_package(src, image(config, [desc(b) for b in layers]), io.BytesIO(),
                          tmp_dir=tmp_path)
    assert got.how == "flattened" and got.layer.digest == digest(layers[1])
    assert got.note is not None and "no such layer" in got.note
    assert got.package.name == "function-auto-ready"


def test_extract_verifies_the_config(tmp_path: Path) -> None:
    config = b'{"config": {}}'
    layer = gz(tar(("package.yaml", PACKAGE)))
    src = FakeSource([config, layer])
    src.blobs[digest(config)] = b'{"config": {"Labels": {}}}'  # a proxy altered it
    with pytest.raises(DigestMismatch):
        extract_package(src, image(config, [desc(layer)]), io.BytesIO(), tmp_dir=tmp_path)
