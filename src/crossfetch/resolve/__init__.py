"""Dependency resolution.

* :mod:`.semver`: Masterminds/semver constraint semantics, v1.5.0 and v3.4+.
* :func:`resolve`: the whole graph of a package, fetched concurrently; what a Crossplane
  release will do with it (:mod:`.crossplane`); and a set of versions that satisfies every
  constraint (:mod:`.solve`).
"""

from __future__ import annotations

from .lock import Resolution, resolve

__all__ = ["Resolution", "resolve"]
