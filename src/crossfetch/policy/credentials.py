"""Credential sources (placeholder until the auth sources land)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from .objects import ObjectSet
from .resolver import KeychainProvider


def keychain_provider(objects: ObjectSet, *, pull_secret_files: Sequence[str] = (),
                      username: str | None = None, password: str | None = None,
                      env: Mapping[str, str] | None = None) -> KeychainProvider | None:
    """Builds per-reference keychains from every credential source."""
    return None
