"""``crossfetch pull -o`` against the real registry: /dev/null stays a device (as root), a
FIFO is written in place, a symlink stays a symlink, and an -o error stops the pull before
any request reaches the registry."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from tests.integration.conftest import PushedPackage
from tests.support.certs import PKI
from tests.support.registry import Registry

CLI = [sys.executable, "-m", "crossfetch.cli.main"]


def pull(registry: Registry, pki: PKI, p: PushedPackage, out: str, cache: Path,
         *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, "pull", registry.ref(p.ref), "--ca-bundle", str(pki.ca_cert),
                           "--cache-dir", str(cache), "--no-node-config", "-o", out, *extra],
                          capture_output=True, text=True, timeout=120, check=False)


@pytest.mark.skipif(os.geteuid() != 0, reason="only root could replace /dev/null")
def test_dev_null_stays_a_character_device(tmp_path: Path, https_registry: Registry, pki: PKI,
                                           packages: dict[str, PushedPackage]) -> None:
    r = pull(https_registry, pki, packages["configuration"], "/dev/null", tmp_path)
    assert r.returncode == 0, r.stderr
    st = os.stat("/dev/null")
    assert stat.S_ISCHR(st.st_mode) and (os.major(st.st_rdev), os.minor(st.st_rdev)) == (1, 3)
    assert not [n for n in os.listdir("/dev") if n.startswith(".null.")]


def test_fifo_and_symlink(tmp_path: Path, https_registry: Registry, pki: PKI,
                          packages: dict[str, PushedPackage]) -> None:
    p = packages["provider_kubernetes"]
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    got = bytearray()

    def reader() -> None:
        with open(fifo, "rb") as f:
            while chunk := f.read(65536):
                got.extend(chunk)

    t = threading.Thread(target=reader)
    t.start()
    r = pull(https_registry, pki, p, str(fifo), tmp_path / "c")
    t.join(30)
    assert r.returncode == 0, r.stderr
    assert bytes(got) == p.built.package_yaml and stat.S_ISFIFO(fifo.lstat().st_mode)

    (tmp_path / "real").mkdir()
    target = tmp_path / "real" / "package.yaml"
    target.write_text("old\n")
    link = tmp_path / "link.yaml"
    link.symlink_to(target)
    r = pull(https_registry, pki, p, str(link), tmp_path / "c", "-O", "json")
    assert r.returncode == 0, r.stderr
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert target.read_bytes() == p.built.package_yaml
    assert json.loads(r.stdout)["output"] == str(link)


@pytest.mark.parametrize("bad", ["missing-dir", "directory"])
def test_o_errors_come_before_any_request(tmp_path: Path, https_registry: Registry, pki: PKI,
                                          packages: dict[str, PushedPackage], bad: str) -> None:
    given = str(tmp_path / "no" / "p.yaml") if bad == "missing-dir" else str(tmp_path)
    mark = https_registry.mark()
    r = pull(https_registry, pki, packages["configuration"], given, tmp_path / "c")
    assert r.returncode == 2
    assert r.stderr.startswith(f"error: -o {given}") or r.stderr.startswith(
        f"error: cannot write -o {given}")
    assert "Traceback" not in r.stderr
    assert https_registry.requests(since=mark) == []
    assert not (tmp_path / "c").exists()
