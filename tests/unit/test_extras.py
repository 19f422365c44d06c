"""Optional extras: a missing one is a usage error naming the pip command, not an ImportError."""

from __future__ import annotations

import importlib.util
import socket
from pathlib import Path

import pytest

from crossfetch._extras import MissingExtra, require_extra
from crossfetch.cri import RuntimeClient


def test_present_modules_pass() -> None:
    require_extra("cri", "the kubelet path", "json", "email.utils")


def test_missing_module_names_the_extra() -> None:
    with pytest.raises(MissingExtra) as e:
        require_extra("serve", "crossfetch serve", "json", "no_such_module_xyz")
    assert e.value.exit_code == 2
    assert e.value.fix == "pip install 'crossfetch[serve]'"
    assert e.value.detail["missing"] == ["no_such_module_xyz"]


def test_runtime_client_without_grpc(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Socket problems are reported first (same everywhere); then the missing extra."""
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(tmp_path / "c.sock"))
    real = importlib.util.find_spec

    def fake(name: str, *a: object) -> object:
        return None if name in ("grpc", "google") else real(name, *a)

    monkeypatch.setattr(importlib.util, "find_spec", fake)
    with pytest.raises(MissingExtra, match=r"crossfetch\[cri\]"):
        RuntimeClient(f"unix://{tmp_path}/c.sock").version()
    sock.close()


def test_every_command_builds_its_parser_and_help() -> None:
    """Catches an option two helpers both define (argparse fails only when the parser is
    built, i.e. when a user runs that command)."""
    import importlib

    from crossfetch.cli.main import COMMANDS

    for name, (module_name, _) in COMMANDS.items():
        parser = importlib.import_module(module_name).PARSERS[name](f"crossfetch {name}")
        assert f"crossfetch {name}" in parser.format_help()
