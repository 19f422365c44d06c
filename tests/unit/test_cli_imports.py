"""Start-up stays lean: each CLI path imports only what it uses (no timing assertions; the
benchmarks measure time, this pins which heavy modules stay out)."""

from __future__ import annotations

import subprocess
import sys

import pytest

PROBE = """
import sys
from crossfetch.cli.main import main
try:
    main({argv!r})
except SystemExit:
    pass
print(" ".join(sorted(m.split(".")[0] for m in sys.modules)))
"""


def modules_after(argv: list[str]) -> set[str]:
    out = subprocess.run([sys.executable, "-c", PROBE.format(argv=argv)], capture_output=True,
                         text=True, timeout=60, check=True).stdout
    return set(out.split()[-1000:])


@pytest.mark.parametrize("argv", [["--version"], ["--help"], ["pull", "--help"]])
def test_help_and_version_import_no_network_stack(argv: list[str]) -> None:
    mods = modules_after(argv)
    for heavy in ("httpx", "click", "grpc", "google", "rich", "cryptography", "pydantic",
                  "http", "ssl", "yaml"):
        assert heavy not in mods, f"{heavy} imported by crossfetch {' '.join(argv)}"


def test_a_pull_without_a_terminal_imports_no_grpc_rich_or_cryptography() -> None:
    # A pull that fails fast (nothing listens on port 1) still walks the whole import path.
    mods = modules_after(["pull", "127.0.0.1:1/a/b:v1", "--retries", "0", "--no-node-config"])
    assert "crossfetch" in mods
    for heavy in ("httpx", "httpcore", "click", "grpc", "google", "rich", "cryptography",
                  "pydantic", "certifi"):
        assert heavy not in mods, f"{heavy} imported on the pull path"
