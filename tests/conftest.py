"""Shared pytest settings for every crossfetch test suite.

``tests`` is a package so that tests (and demo scripts run from the repo root) can import the
helpers in ``tests.support``.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator

import pytest

from tests.support.cli import guard_subprocess_run

# Subprocesses (skopeo, registry) must never pick up a proxy from the developer's shell: every
# test server is on loopback.
for _var in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
    os.environ.pop(_var, None)
os.environ.setdefault("NO_PROXY", "127.0.0.1,localhost,::1")


@pytest.fixture(autouse=True)
def _no_crossfetch_tracebacks(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every ``crossfetch`` run in a subprocess fails its test if it prints a traceback."""
    monkeypatch.setattr(subprocess, "run", guard_subprocess_run(subprocess.run))
    yield
