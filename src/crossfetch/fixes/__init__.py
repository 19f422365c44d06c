"""Fixes, written at the edge: one writer per format and one fix per cause.

Errors carry facts (``url``, ``host``, ``mode``, ``cause``); the CLI and ``doctor`` turn them
into a :class:`Fix` for the targeted Crossplane version with :func:`for_error`, or call a cause
function of :mod:`.causes` directly.

Formats, one writer each: :mod:`.imageconfig` (ImageConfig), :mod:`.configmap` (CA bundle
ConfigMap), :mod:`.helm` (Crossplane Helm values), :mod:`.hoststoml` (containerd hosts.toml),
:mod:`.registriesconf` (containers registries.conf).
"""

from __future__ import annotations

from urllib.parse import urlsplit

from ..errors import CrossfetchError
from . import causes
from .fix import CROSSFETCH_ONLY, Audience, Fix, Step, Target

__all__ = ["CROSSFETCH_ONLY", "Audience", "Fix", "Step", "Target", "causes", "for_error"]


def _registry(err: CrossfetchError) -> str | None:
    if err.url:
        netloc = urlsplit(err.url).netloc
        if netloc:
            return netloc
    return err.host


def for_error(err: CrossfetchError, target: Target | None = None, *,
              crossplane_speaks_http: bool | None = None) -> Fix | None:
    """The fix for ``err``'s cause, written for ``target`` (``None``: the newest Crossplane),
    or ``None`` when the cause has no written fix. ``crossplane_speaks_http``: whether that
    Crossplane falls back to plain HTTP for the host by itself."""
    registry = _registry(err)
    if registry is None:
        return None
    host = err.host or registry
    cause = err.cause
    if cause == "plain-http":
        return causes.plain_http(registry, target=target,
                                 crossplane_speaks_http=crossplane_speaks_http)
    if cause == "tls-expected":
        return causes.tls_expected(registry)
    if cause == "untrusted-certificate":
        return causes.trust(registry, target=target)
    if cause == "hostname-mismatch":
        return causes.hostname(host)
    if cause == "expired-certificate":
        return causes.expired()
    if cause == "client-certificate-required":
        return causes.client_certificate(registry, target=target)
    return None
