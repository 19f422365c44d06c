"""Base-layer choice: annotation, config label (OCI and Docker), two bases, dangling marks."""

from __future__ import annotations

import hashlib
import json
import tarfile
from typing import Any

import pytest

from crossfetch.errors import PackageError
from crossfetch.oci import DOCKER_CONFIG, DOCKER_MANIFEST, OCI_MANIFEST, Manifest, parse_manifest
from crossfetch.xpkg import ANNOTATION, BASE, LABEL_PREFIX, find_base_layer, needs_config
from crossfetch.xpkg.layers import config_labels
from tests.support.testdata import TESTDATA

XPKG = TESTDATA / "xpkg" / "function-conditional-patch-and-transform.xpkg"
GZ = "application/vnd.oci.image.layer.v1.tar+gzip"


def digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def layer(seed: bytes, annotations: dict[str, str] | None = None) -> dict[str, Any]:
    d: dict[str, Any] = {"mediaType": GZ, "digest": digest(seed), "size": len(seed)}
    if annotations:
        d["annotations"] = annotations
    return d


def manifest(layers: list[dict[str, Any]], media_type: str = OCI_MANIFEST) -> Manifest:
    doc = {"schemaVersion": 2, "mediaType": media_type,
           "config": {"mediaType": DOCKER_CONFIG, "digest": digest(b"cfg"), "size": 3},
           "layers": layers}
    parsed = parse_manifest(json.dumps(doc).encode())
    assert isinstance(parsed, Manifest)
    return parsed


BASE_MARK = {ANNOTATION: BASE}


def test_annotation_chooses_the_base_layer_and_needs_no_config() -> None:
    m = manifest([layer(b"runtime"), layer(b"pkg", BASE_MARK), layer(b"examples")])
    assert not needs_config(m)
    choice = find_base_layer(m)
    assert choice.how == "annotation"
    assert choice.layer is not None and choice.layer.digest == digest(b"pkg")


def test_annotation_wins_over_config_labels() -> None:
    m = manifest([layer(b"a"), layer(b"b", BASE_MARK)])
    cfg = {"config": {"Labels": {LABEL_PREFIX + digest(b"a"): BASE}}}
    choice = find_base_layer(m, cfg)
    assert choice.how == "annotation" and choice.layer is not None
    assert choice.layer.digest == digest(b"b")


def test_other_annotation_values_do_not_mark_base() -> None:
    m = manifest([layer(b"a", {ANNOTATION: "upbound"}), layer(b"b", {ANNOTATION: "examples"})])
    assert needs_config(m)
    assert find_base_layer(m).layer is None


def test_two_annotated_base_layers_are_refused() -> None:
    m = manifest([layer(b"a", BASE_MARK), layer(b"b", BASE_MARK)])
    with pytest.raises(PackageError) as e:
        find_base_layer(m)
    assert e.value.cause == "multiple-base-layers"
    assert digest(b"a") in e.value.message and digest(b"b") in e.value.message
    assert e.value.fix


def test_no_annotation_without_config_means_flatten_with_a_note() -> None:
    m = manifest([layer(b"a"), layer(b"b")])
    assert needs_config(m)
    choice = find_base_layer(m)
    assert choice.layer is None and choice.how == "none" and choice.note


@pytest.mark.parametrize("section", ["config", "container_config"])
def test_config_label_chooses_the_layer(section: str) -> None:
    m = manifest([layer(b"a"), layer(b"b")], DOCKER_MANIFEST)
    cfg = {section: {"Labels": {LABEL_PREFIX + digest(b"b"): BASE,
                                LABEL_PREFIX + digest(b"a"): "upbound",
                                "org.opencontainers.image.title": "x"}}}
    choice = find_base_layer(m, cfg)
    assert choice.how == "label" and choice.layer is not None
    assert choice.layer.digest == digest(b"b")


def test_same_label_in_both_config_sections_is_one_base() -> None:
    m = manifest([layer(b"a")])
    labels = {LABEL_PREFIX + digest(b"a"): BASE}
    choice = find_base_layer(m, {"config": {"Labels": labels},
                                 "container_config": {"Labels": labels}})
    assert choice.how == "label"


def test_two_base_labels_are_refused() -> None:
    m = manifest([layer(b"a"), layer(b"b")])
    cfg = {"config": {"Labels": {LABEL_PREFIX + digest(b"a"): BASE}},
           "container_config": {"Labels": {LABEL_PREFIX + digest(b"b"): BASE}}}
    with pytest.raises(PackageError, match="at most one base layer"):
        find_base_layer(m, cfg)


def test_label_pointing_at_no_layer_flattens_with_a_note() -> None:
    m = manifest([layer(b"a"), layer(b"b")])
    cfg = {"config": {"Labels": {LABEL_PREFIX + digest(b"gone"): BASE}}}
    choice = find_base_layer(m, cfg)
    assert choice.layer is None and choice.how == "none"
    assert choice.note is not None and digest(b"gone") in choice.note


def test_null_and_missing_labels_are_tolerated() -> None:
    m = manifest([layer(b"a")])
    assert config_labels({"config": {"Labels": None}, "container_config": None}) == {}
    assert find_base_layer(m, {}).layer is None


def test_real_xpkg_file_config_label_marks_its_first_layer() -> None:
    with tarfile.open(XPKG) as t:
        index = json.loads(t.extractfile("manifest.json").read())[0]  # type: ignore[union-attr]
        config = json.loads(t.extractfile(index["Config"]).read())  # type: ignore[union-attr]
        blobs = [t.extractfile(name).read() for name in index["Layers"]]  # type: ignore[union-attr]
    m = manifest([{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
                   "digest": digest(b), "size": len(b)} for b in blobs], DOCKER_MANIFEST)
    assert needs_config(m)  # docker-save output carries labels, not annotations
    choice = find_base_layer(m, config)
    assert choice.how == "label" and choice.layer is not None
    assert choice.layer.digest == digest(blobs[0])
    # the other labelled layer ("upbound", the examples) is not mistaken for base
    assert config_labels(config)[LABEL_PREFIX + digest(blobs[1])] == "upbound"
