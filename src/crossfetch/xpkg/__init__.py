"""Crossplane package semantics: base-layer choice, streaming package.yaml reads, meta parsing.

Nothing here speaks HTTP: blobs arrive as iterators of bytes
(see :class:`crossfetch.oci.BlobSource`).
"""

from __future__ import annotations

from .extract import PackageRead, extract_package, read_config
from .layers import (
    ANNOTATION,
    BASE,
    LABEL_PREFIX,
    BaseLayerChoice,
    config_labels,
    find_base_layer,
    needs_config,
)
from .meta import (
    MAX_ALIASES,
    META_CAP,
    PACKAGE_CAP,
    Dependency,
    Package,
    PackageScanner,
    load_safe,
    parse_package_stream,
)
from .stream import LAYER_CAP, FlattenResult, read_flattened, read_package_yaml

__all__ = [
    "ANNOTATION", "BASE", "LABEL_PREFIX", "LAYER_CAP", "MAX_ALIASES", "META_CAP", "PACKAGE_CAP",
    "BaseLayerChoice", "Dependency", "FlattenResult", "Package", "PackageRead",
    "PackageScanner", "config_labels", "extract_package", "find_base_layer", "load_safe",
    "needs_config", "parse_package_stream", "read_config", "read_flattened",
    "read_package_yaml",
]
