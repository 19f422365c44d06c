"""Docker daemon.json: insecure-registries (host:port and CIDR), registry-mirrors."""

from __future__ import annotations

from pathlib import Path

import pytest

from crossfetch.errors import ConfigError
from crossfetch.policy.node.daemonjson import load_daemon_json

FIXTURE = Path(__file__).parent / "data" / "node" / "daemon.json"


def test_insecure_entries_match_host_port_and_cidr() -> None:
    d = load_daemon_json(FIXTURE)
    cidr = d.insecure_source("10.1.2.3:5000")
    assert cidr is not None and (cidr.kind, cidr.line) == ("daemon.json", 4)
    host = d.insecure_source("reg.local:5000")
    assert host is not None and host.line == 5
    assert d.insecure_source("plain.example") is not None  # the scheme is ignored
    assert d.insecure_source("reg.local:5001") is None
    assert d.insecure_source("reg.local") is None
    assert d.insecure_source("11.0.0.1:5000") is None
    assert d.insecure_source("ten.example") is None  # names are never resolved


def test_ipv6_cidr(tmp_path: Path) -> None:
    p = tmp_path / "daemon.json"
    p.write_text('{"insecure-registries": ["fd00::/8"]}')
    d = load_daemon_json(p)
    assert d.insecure_source("[fd00::5]:5000") is not None
    assert d.insecure_source("10.0.0.1") is None


def test_registry_mirrors_apply_to_docker_hub_only() -> None:
    d = load_daemon_json(FIXTURE)
    [m] = d.mirror_endpoints("docker.io")
    assert (m.url, m.role, sorted(m.capabilities)) == (
        "https://hub-mirror.example.com", "mirror", ["pull", "resolve"])
    assert m.source.line == 8
    assert d.mirror_endpoints("quay.io") == []


@pytest.mark.parametrize(("text", "line", "needle"), [
    ('{\n  "insecure-registries": [\n    "10.0.0.0/8",\n  ]\n}', 4, "invalid JSON"),
    ('{"insecure-registries": "10.0.0.0/8"}', 1, "must be a list"),
    ('{\n"insecure-registries": ["300.1.0.0/8"]}', 2, "neither host"),
])
def test_malformed(tmp_path: Path, text: str, line: int, needle: str) -> None:
    p = tmp_path / "daemon.json"
    p.write_text(text)
    with pytest.raises(ConfigError, match=needle) as e:
        load_daemon_json(p)
    assert e.value.file == str(p) and e.value.line == line and e.value.exit_code == 2
