"""`-v` shows each HTTP request (method, URL, status, time) on stderr, and never a credential."""

from __future__ import annotations

import base64
import re
from pathlib import Path

from tests.integration.conftest import PushedPackage
from tests.support.certs import PKI
from tests.support.cli import invoke
from tests.support.registry import Registry

LINE = re.compile(r"^> (HEAD|GET|POST) (https?://\S+) -> (\d{3}) .*\(\d+\.\d ms\)$")


def test_verbose_lists_every_request_without_credentials(
        tmp_path: Path, basic_auth_registry: Registry, pki: PKI,
        registry_credentials: tuple[str, str], packages: dict[str, PushedPackage]) -> None:
    user, password = registry_credentials
    p = packages["function_with_runtime"]
    r = invoke(["pull", basic_auth_registry.ref(p.ref), "-v", "--ca-bundle", str(pki.ca_cert),
                "--username", user, "--password-stdin", "--no-node-config",
                "--cache-dir", str(tmp_path / "c"), "-o", str(tmp_path / "p.yaml")],
               input=password)
    assert r.exit_code == 0, r.stderr
    traced = [LINE.match(line) for line in r.stderr.splitlines() if line.startswith("> ")]
    assert traced and all(traced), r.stderr
    seen = [(m.group(1), m.group(3)) for m in traced if m]
    assert ("HEAD", "401") in seen and ("HEAD", "200") in seen  # the challenge, then answered
    assert any(method == "GET" and "/blobs/" in m.group(2)
               for m in traced if m for method in [m.group(1)])
    basic = base64.b64encode(f"{user}:{password}".encode()).decode()
    assert password not in r.stderr and basic not in r.stderr
    assert "Authorization" not in r.stderr
