"""``crossfetch serve``: a TLS pull-through bridge for registries Crossplane cannot reach.

It serves the read half of the OCI distribution API over TLS under configured route prefixes,
and fetches from each upstream through crossfetch's policy (any TLS mode, CA, mTLS, mirrors,
credentials). aiohttp, prometheus-client and bcrypt come with the ``crossfetch[serve]`` extra
and are imported only by this package.
"""

from __future__ import annotations

from .config import Route, ServeConfig, parse_duration, parse_size

__all__ = ["Route", "ServeConfig", "parse_duration", "parse_size"]
