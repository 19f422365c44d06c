"""The whole read of a package from any :class:`~crossfetch.oci.BlobSource`.

Config first only when the manifest does not annotate the base layer; then the base layer
alone, or every layer flattened when nothing is marked.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any, BinaryIO, Literal, NamedTuple

from ..capped import read_capped
from ..oci import (
    MAX_MANIFEST_BYTES,
    BlobSource,
    Descriptor,
    Manifest,
    check_config,
    load_json,
    verify_bytes,
)
from .layers import find_base_layer, needs_config
from .meta import PACKAGE_CAP, Package
from .stream import LAYER_CAP, read_flattened, read_package_yaml


class PackageRead(NamedTuple):
    """A package read from an image: what it says and where it came from."""

    package: Package
    layer: Descriptor
    how: Literal["annotation", "label", "flattened"]
    note: str | None
    config_read: bool


def read_config(source: BlobSource, manifest: Manifest) -> dict[str, Any]:
    """Download, verify and parse the image config (capped like a manifest)."""
    desc = manifest.config
    what = f"image config {desc.digest}"
    data = read_capped(source.open_blob(desc), MAX_MANIFEST_BYTES, what, declared=desc.size)
    verify_bytes(data, desc.digest, "image config")
    return check_config(load_json(data, what), what)


def _lazy(source: BlobSource, desc: Descriptor) -> Iterator[bytes]:
    yield from source.open_blob(desc)  # opened only when the flattener reaches this layer


def extract_package(source: BlobSource, manifest: Manifest, sink: BinaryIO, *,
                    tmp_dir: str | os.PathLike[str],
                    max_package_bytes: int = PACKAGE_CAP,
                    max_decompressed: int = LAYER_CAP) -> PackageRead:
    """Write ``package.yaml`` of ``manifest``'s image to ``sink`` and return what it says.

    On any error the sink holds partial or unverified bytes: the caller discards it.
    """
    config = read_config(source, manifest) if needs_config(manifest) else None
    choice = find_base_layer(manifest, config)
    if choice.layer is not None:
        package = read_package_yaml(
            source.open_blob(choice.layer), choice.layer.digest, sink,
            expected_size=choice.layer.size, max_package_bytes=max_package_bytes,
            max_decompressed=max_decompressed)
        how: Literal["annotation", "label"] = "label" if choice.how == "label" else "annotation"
        return PackageRead(package, choice.layer, how, choice.note, config is not None)
    flat = read_flattened([(d, _lazy(source, d)) for d in manifest.layers], sink,
                          tmp_dir=tmp_dir, max_package_bytes=max_package_bytes,
                          max_decompressed=max_decompressed)
    return PackageRead(flat.package, flat.layer, "flattened", choice.note, config is not None)
