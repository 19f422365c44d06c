"""Keychains that read no credential source until a registry asks for credentials.

Used when credentials can only come from the implicit sources (Docker's ``config.json`` and
its helpers): an anonymous pull then never loads them. Explicit inputs (``--pull-secret``,
``--username``, an ImageConfig ``pullSecretRef``) are validated up front instead, so a broken
one fails before any request.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..reference import Reference
    from .model import Credential, Keychain, Source
    from .objects import ImageConfig
    from .resolver import KeychainProvider


class DeferredKeychain:
    """A :class:`~crossfetch.policy.model.Keychain` built on first use."""

    def __init__(self, build: Callable[[], Keychain | None]) -> None:
        self._build = build
        self._built = False
        self._real: Keychain | None = None
        self._lock = threading.Lock()  # resolve asks from several threads: build once

    def _get(self) -> Keychain | None:
        with self._lock:
            if not self._built:
                self._real, self._built = self._build(), True
            return self._real

    def describe(self, registry: str) -> Source | None:
        real = self._get()
        return real.describe(registry) if real else None

    def resolve(self, registry: str) -> Credential | None:
        real = self._get()
        return real.resolve(registry) if real else None


class DeferredKeychains:
    """A :class:`~crossfetch.policy.resolver.KeychainProvider` whose sources load lazily."""

    def __init__(self, build: Callable[[], KeychainProvider | None]) -> None:
        self._build = build
        self._built = False
        self._provider: KeychainProvider | None = None
        self._lock = threading.Lock()

    def _get(self) -> KeychainProvider | None:
        with self._lock:
            if not self._built:
                self._provider, self._built = self._build(), True
            return self._provider

    def __call__(self, resolved: Reference, pull_secret: ImageConfig | None) -> Keychain:
        def build() -> Keychain | None:
            provider = self._get()
            return provider(resolved, pull_secret) if provider else None

        return DeferredKeychain(build)
