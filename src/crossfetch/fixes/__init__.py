"""Fixes, written at the edge: one writer per format and one fix per cause.

Errors carry facts (``url``, ``host``, ``mode``, ``cause``); the CLI and ``doctor`` turn them
into a :class:`Fix` for the targeted Crossplane version with :func:`for_error`, or call a cause
function of :mod:`.causes` directly.

Formats, one writer each: :mod:`.imageconfig` (ImageConfig), :mod:`.configmap` (CA bundle
ConfigMap), :mod:`.helm` (Crossplane Helm values), :mod:`.hoststoml` (containerd hosts.toml),
:mod:`.registriesconf` (containers registries.conf).
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from ..errors import CrossfetchError
from . import causes
from .fix import CROSSFETCH_ONLY, Audience, Fix, Step, Target

if TYPE_CHECKING:
    from ..crossplane.profile import Profile

__all__ = ["CROSSFETCH_ONLY", "Audience", "Fix", "Step", "Target", "causes", "for_error"]


def _registry(err: CrossfetchError) -> str | None:
    if err.url:
        netloc = urlsplit(err.url).netloc
        if netloc:
            return netloc
    return err.host


def for_error(err: CrossfetchError, profile: Profile | None = None, *,
              crossplane_speaks_http: bool | None = None) -> Fix | None:
    """The fix for ``err``'s cause, written for the Crossplane release ``profile`` models
    (``None``: the default, newest one), or ``None`` when the cause has no written fix.
    ``crossplane_speaks_http`` overrides whether that release falls back to plain HTTP for the
    host (default: its go-containerregistry rule for the registry that failed)."""
    from ..crossplane.profile import get, plain_http_allowed

    registry = _registry(err)
    if registry is None:
        return None
    target = profile or get()
    host = err.host or registry
    cause = err.cause
    if cause == "plain-http":
        if crossplane_speaks_http is None:
            crossplane_speaks_http = plain_http_allowed(target, registry)
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
