"""Shared pytest settings for every crossfetch test suite.

``tests`` is a package so that tests (and demo scripts run from the repo root) can import the
helpers in ``tests.support``.
"""

from __future__ import annotations

import os

# Subprocesses (skopeo, registry) must never pick up a proxy from the developer's shell: every
# test server is on loopback.
for _var in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
    os.environ.pop(_var, None)
os.environ.setdefault("NO_PROXY", "127.0.0.1,localhost,::1")
