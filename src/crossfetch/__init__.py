"""crossfetch: fetch, inspect and diagnose Crossplane packages from any OCI registry.

The public API is re-exported here lazily, so ``import crossfetch`` stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "Reference": "reference",
    "Policy": "policy.resolver",
    "Decision": "policy.model",
    "Endpoint": "policy.model",
    "TLSConfig": "policy.model",
    "TLSMode": "policy.model",
    "Credential": "policy.model",
    "Client": "client",
    "PullPolicy": "client",
    "PullResult": "client",
    "HeadResult": "client",
    "Cache": "cache",
    "CrossfetchError": "errors",
    "FetchError": "errors",
    "ConfigError": "errors",
}

__all__ = [  # noqa: RUF022 - grouped by layer
    "__version__", "Reference", "Policy", "Decision", "Endpoint", "TLSConfig", "TLSMode",
    "Credential", "Client", "PullPolicy", "PullResult", "HeadResult", "Cache",
    "CrossfetchError", "FetchError", "ConfigError",
]

if TYPE_CHECKING:
    from .cache import Cache
    from .client import Client, HeadResult, PullPolicy, PullResult
    from .errors import ConfigError, CrossfetchError, FetchError
    from .policy.model import Credential, Decision, Endpoint, TLSConfig, TLSMode
    from .policy.resolver import Policy
    from .reference import Reference


def __getattr__(name: str) -> Any:
    mod = _EXPORTS.get(name)
    if mod is None:
        raise AttributeError(f"module 'crossfetch' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f".{mod}", __name__), name)
