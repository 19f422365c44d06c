"""``crossfetch resolve``'s parser: lazy imports, validation, and its help teaches by example."""

from __future__ import annotations

import subprocess
import sys

from tests.unit.test_cli_imports import PROBE

CLI = [sys.executable, "-m", "crossfetch.cli.main", "resolve"]


def test_help_imports_no_network_stack_or_yaml() -> None:
    out = subprocess.run([sys.executable, "-c", PROBE.format(argv=["resolve", "--help"])],
                         capture_output=True, text=True, timeout=60, check=True).stdout
    mods = set(out.splitlines()[-1].split())  # the help text itself comes before
    for heavy in ("http", "ssl", "yaml", "rich", "concurrent", "cryptography"):
        assert heavy not in mods, f"{heavy} imported by crossfetch resolve --help"


def test_help_has_examples_and_the_supported_releases() -> None:
    out = subprocess.run([*CLI, "--help"], capture_output=True, text=True, timeout=60,
                         check=True).stdout
    assert "Examples:" in out and "--emit configuration" in out and "v2.2.4" in out


def test_bad_values_are_usage_errors() -> None:
    for args in (["--jobs", "0"], ["--max-steps", "-1"], ["--crossplane-version", "v9.9"]):
        r = subprocess.run([*CLI, "x.io/a/b:v1", "--no-node-config", *args],
                           capture_output=True, text=True, timeout=60, check=False)
        assert r.returncode == 2, (args, r.stderr)
        assert r.stderr.startswith("error: ") and "Traceback" not in r.stderr
