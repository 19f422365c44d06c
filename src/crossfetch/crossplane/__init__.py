"""What a given Crossplane release does when it fetches a package.

:mod:`crossfetch.crossplane.profile` holds one row per behaviour per Crossplane version, each
citing the upstream file and commit it was read from. Everything that claims to say what
Crossplane will do (``doctor``, ``pull --as-crossplane``, fixes, ``resolve``) asks a
:class:`~crossfetch.crossplane.profile.Profile` instead of hard-coding a release.
"""

from __future__ import annotations

from crossfetch.crossplane.profile import (
    DEFAULT_VERSION,
    KNOWN,
    SUPPORTED,
    Profile,
    get,
    plain_http_allowed,
    plain_http_rule,
)

__all__ = ["DEFAULT_VERSION", "KNOWN", "SUPPORTED", "Profile", "get", "plain_http_allowed",
           "plain_http_rule"]
