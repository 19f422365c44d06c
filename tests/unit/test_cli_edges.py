"""CLI edges: duration options are validated by argparse (exit 2) on every command."""

from __future__ import annotations

import argparse

import pytest

from crossfetch.cli.common import seconds
from crossfetch.cli.main import COMMANDS
from tests.support.cli import invoke

BAD = ["-1", "0", "-0", "nan", "NaN", "inf", "-inf", "1e999", "abc", "", "86401"]
WITH_TIMEOUT = ["pull", "head", "tags", "inspect", "doctor", "trust"]


@pytest.mark.parametrize("text", BAD)
def test_seconds_rejects(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        seconds(text)


@pytest.mark.parametrize("text, value", [("0.5", 0.5), ("10", 10.0), ("1e2", 100.0),
                                         ("86400", 86400.0)])
def test_seconds_accepts(text: str, value: float) -> None:
    assert seconds(text) == value


@pytest.mark.parametrize("command", WITH_TIMEOUT)
@pytest.mark.parametrize("text", ["-1", "0", "nan", "inf"])
def test_every_command_rejects_a_bad_timeout_with_exit_2(command: str, text: str) -> None:
    assert command in COMMANDS
    target = "reg.example:8443" if command == "trust" else "reg.example/org/pkg:v1"
    r = invoke([command, target, "--timeout", text])
    assert r.exit_code == 2, r.output
    assert "--timeout" in r.stderr and "seconds" in r.stderr
    assert r.stdout == ""


def test_the_cli_helper_fails_a_run_that_crashes(monkeypatch: pytest.MonkeyPatch) -> None:
    from crossfetch.cli import fetch_cmds
    from tests.support.cli import TracebackInOutput

    def boom(ns: argparse.Namespace) -> None:
        raise ValueError("a bug")

    real = fetch_cmds.PARSERS["pull"]

    def parser(prog: str) -> argparse.ArgumentParser:
        p = real(prog)
        p.set_defaults(func=boom)
        return p

    monkeypatch.setitem(fetch_cmds.PARSERS, "pull", parser)
    with pytest.raises(TracebackInOutput, match="a bug"):
        invoke(["pull", "reg.example/org/pkg:v1"])


def test_the_subprocess_guard_fails_a_traceback_on_stderr() -> None:
    import subprocess
    import sys

    from tests.support.cli import TracebackInOutput

    crash = "import sys; sys.stderr.write('Traceback (most recent call last):\\n')"
    with pytest.raises(TracebackInOutput):
        subprocess.run([sys.executable, "-c", crash, "crossfetch.cli.main"],
                       capture_output=True, text=True, check=False)
    ok = subprocess.run([sys.executable, "-c", "print('fine')", "crossfetch.cli.main"],
                        capture_output=True, text=True, check=False)
    assert ok.stdout == "fine\n"
