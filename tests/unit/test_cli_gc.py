"""The cyclic collector is off only for a short-lived command that is the process's own command
line (``crossfetch.cli.main.SHORT_LIVED``), never for a caller that runs the CLI in-process."""

from __future__ import annotations

import gc
import subprocess
import sys

from crossfetch.cli.main import SHORT_LIVED
from tests.support.cli import invoke

PROBE = """
import gc, sys
sys.argv = ["crossfetch", *sys.argv[1:]]
from crossfetch.cli.main import main
try:
    code = main()
except SystemExit as e:
    code = e.code
print("EXIT", code, "ENABLED", gc.isenabled(), "FROZEN", gc.get_freeze_count() > 0)
"""


def _process(*argv: str) -> str:
    run = subprocess.run([sys.executable, "-c", PROBE, *argv], capture_output=True, text=True,
                         timeout=60, check=False)
    return run.stdout.strip().splitlines()[-1]


def test_a_doctor_process_runs_without_the_collector_and_freezes_what_it_made() -> None:
    # An invalid reference ends the diagnosis at its first stage, without any network.
    assert _process("doctor", "Not A Reference") == "EXIT 2 ENABLED False FROZEN True"


def test_a_pull_process_runs_without_the_collector() -> None:
    assert _process("pull", "--help") == "EXIT 0 ENABLED False FROZEN True"


def test_other_commands_keep_the_collector() -> None:
    assert _process("tags", "--help") == "EXIT 0 ENABLED True FROZEN False"
    assert not SHORT_LIVED & {"serve", "resolve", "push", "build", "tags"}


def test_an_in_process_doctor_leaves_the_collector_alone() -> None:
    frozen = gc.get_freeze_count()
    result = invoke(["doctor", "Not A Reference", "-O", "json"])
    assert result.exit_code == 2
    assert gc.isenabled() and gc.get_freeze_count() == frozen
