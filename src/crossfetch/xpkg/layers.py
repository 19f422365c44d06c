"""Which layer of an image holds ``package.yaml``: the one marked ``io.crossplane.xpkg: base``.

The mark is a layer annotation in the manifest (after ``crossplane xpkg push``) or a config
label ``io.crossplane.xpkg:sha256:<layer digest>: base`` (written by ``crossplane xpkg build``).
With no mark the caller flattens all layers. Reading only the base layer means a Function's
runtime layers (tens of MB) are never downloaded.
"""

from __future__ import annotations

from typing import Any, Literal, NamedTuple

from ..errors import PackageError
from ..oci import Descriptor, Manifest

BASE = "base"
ANNOTATION = "io.crossplane.xpkg"
LABEL_PREFIX = "io.crossplane.xpkg:"


class BaseLayerChoice(NamedTuple):
    """The chosen layer (None: flatten), how it was found, and a note for the user."""

    layer: Descriptor | None
    how: Literal["annotation", "label", "none"]
    note: str | None = None


def _two_bases(where: str, digests: list[str]) -> PackageError:
    return PackageError(
        f"the image marks {len(digests)} layers as io.crossplane.xpkg: base in its {where} "
        f"({', '.join(digests)}); a package has at most one base layer",
        cause="multiple-base-layers",
        fix="rebuild the package with `crossplane xpkg build` so one layer holds package.yaml")


def needs_config(manifest: Manifest) -> bool:
    """True when no layer annotation marks the base layer, so the config labels must be read."""
    return not any(layer.annotations.get(ANNOTATION) == BASE for layer in manifest.layers)


def config_labels(config: dict[str, Any]) -> dict[str, str]:
    """Image labels from ``config.Labels`` and Docker's ``container_config.Labels``."""
    out: dict[str, str] = {}
    for section in ("container_config", "config"):  # config wins on a conflict
        sub = config.get(section)
        labels = sub.get("Labels") if isinstance(sub, dict) else None
        if isinstance(labels, dict):
            out.update({str(k): str(v) for k, v in labels.items()})
    return out


def base_label_digests(config: dict[str, Any]) -> list[str]:
    """Layer digests that config labels mark as ``base``, in label order, without repeats."""
    digests: list[str] = []
    for key, value in config_labels(config).items():
        if key.startswith(LABEL_PREFIX) and value == BASE:
            digest = key[len(LABEL_PREFIX):]
            if digest not in digests:
                digests.append(digest)
    return digests


def find_base_layer(manifest: Manifest, config: dict[str, Any] | None = None) -> BaseLayerChoice:
    """Choose the base layer: layer annotation first, then (if ``config`` is given) labels."""
    annotated = [layer for layer in manifest.layers if layer.annotations.get(ANNOTATION) == BASE]
    if len(annotated) > 1:
        raise _two_bases("layer annotations", [layer.digest for layer in annotated])
    if annotated:
        return BaseLayerChoice(annotated[0], "annotation")
    if config is None:
        return BaseLayerChoice(None, "none", "no layer annotation marks the base layer and the "
                               "image config was not read; flattening all layers")
    digests = base_label_digests(config)
    if len(digests) > 1:
        raise _two_bases("config labels", digests)
    if not digests:
        return BaseLayerChoice(None, "none",
                               "no layer is marked io.crossplane.xpkg: base; flattening all "
                               "layers to find package.yaml")
    for layer in manifest.layers:
        if layer.digest == digests[0]:
            return BaseLayerChoice(layer, "label")
    return BaseLayerChoice(None, "none",
                           f"the config label marks {digests[0]} as the base layer, but the "
                           "manifest has no such layer; flattening all layers")
