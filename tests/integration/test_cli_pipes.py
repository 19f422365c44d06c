"""``crossfetch pull -o - | head``: when the reader leaves, crossfetch exits quietly, as Unix
tools do, instead of printing ``error: Broken pipe``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.integration.conftest import PushedPackage
from tests.support.certs import PKI
from tests.support.registry import Registry

CLI = [sys.executable, "-m", "crossfetch.cli.main"]


def test_pull_to_a_closed_pipe_exits_quietly(https_registry: Registry, pki: PKI,
                                             packages: dict[str, PushedPackage],
                                             tmp_path: Path) -> None:
    p = packages["provider_kubernetes"]  # ~118 KB of package.yaml: more than a pipe holds
    assert len(p.built.package_yaml) > 65536 + 100
    argv = [*CLI, "pull", https_registry.ref(p.ref), "-o", "-", "--ca-bundle",
            str(pki.ca_cert), "--cache-dir", str(tmp_path / "cache"), "--no-node-config"]
    for _ in range(2):  # a fresh pull, then the cache hit (written with sendfile or copy)
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert proc.stdout is not None and proc.stderr is not None
        head = proc.stdout.read(100)
        proc.stdout.close()  # `head -c 100` leaves
        err = proc.stderr.read().decode()
        code = proc.wait(timeout=120)
        assert head == p.built.package_yaml[:100]
        assert code == 141, err
        assert "error" not in err.lower() and "Traceback" not in err, err
