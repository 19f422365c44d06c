"""Where the shared, real package metadata lives: ``$CROSSFETCH_TESTDATA`` if set, else
``../shared/testdata`` beside the checkout (as CI lays it out), else ``/work/shared/testdata``."""

from __future__ import annotations

import os
from pathlib import Path


def _find() -> Path:
    env = os.environ.get("CROSSFETCH_TESTDATA")
    if env:
        return Path(env)
    beside = Path(__file__).resolve().parents[2].parent / "shared" / "testdata"
    if beside.is_dir():
        return beside
    return Path("/work/shared/testdata")


TESTDATA = _find()
