"""Client certificates from ``kubernetes.io/tls`` Secrets (placeholder)."""

from __future__ import annotations

from .objects import ObjectSet
from .resolver import ClientCertLoader


def client_cert_loader(objects: ObjectSet) -> ClientCertLoader | None:
    """A loader for ImageConfig ``clientCertSecretRef`` Secrets among ``objects``."""
    return None
