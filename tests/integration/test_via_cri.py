"""``crossfetch pull --via cri``: the node's containerd pulls, crossfetch reads its store.

A real containerd runs with its own root, state, socket and a ``hosts.toml`` directory that
points at the tests' registries; the registries are the real ones from the shared test bed.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import TEST_PASSWORD, TEST_USER, PushedPackage
from tests.support.certs import PKI
from tests.support.containerd import Containerd, containerd_skip_reason, write_hosts_toml
from tests.support.registry import Registry

pytestmark = [pytest.mark.containerd]

if reason := containerd_skip_reason():
    pytest.skip(reason, allow_module_level=True)

CLI = [sys.executable, "-m", "crossfetch.cli.main"]


def cf(*args: str, cache: Path, runtime: Containerd | None = None,
       extra: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
    via = ["--via", "cri", "--runtime-endpoint", runtime.endpoint] if runtime else []
    return subprocess.run([*CLI, *args, *via, "--cache-dir", str(cache), "--no-node-config",
                           "--retries", "0", *extra],
                          capture_output=True, text=True, timeout=180, check=False)


@pytest.fixture
def hosts_dir(tmp_path: Path) -> Path:
    d = tmp_path / "certs.d"
    d.mkdir()
    return d


@pytest.fixture
def containerd(tmp_path: Path, hosts_dir: Path) -> Iterator[Containerd]:
    with Containerd(tmp_path / "ctd", hosts_dir=hosts_dir) as c:
        yield c


def test_plain_http_allowed_only_by_node_hosts_toml(
        tmp_path: Path, hosts_dir: Path, containerd: Containerd, http_registry: Registry,
        packages: dict[str, PushedPackage]) -> None:
    p = packages["configuration"]
    ref = http_registry.ref(p.ref)
    # The direct path under Strict refuses the plain-HTTP registry.
    direct = cf("pull", ref, cache=tmp_path / "direct")
    assert direct.returncode == 1 and "plain HTTP" in direct.stderr
    # The node says https: the runtime refuses, and crossfetch passes its reason through.
    write_hosts_toml(hosts_dir, http_registry.host, f"https://{http_registry.host}")
    refused = cf("pull", ref, cache=tmp_path / "c1", runtime=containerd)
    assert refused.returncode == 1, refused.stderr
    assert "hosts.toml" in refused.stderr
    # The node allows plain HTTP for this registry: the node path works.
    write_hosts_toml(hosts_dir, http_registry.host, http_registry.host, plain_http=True)
    out = tmp_path / "package.yaml"
    ok = cf("pull", ref, "-o", str(out), "-O", "json", cache=tmp_path / "c2", runtime=containerd)
    assert ok.returncode == 0, ok.stderr
    assert out.read_bytes() == p.built.package_yaml
    d = json.loads(ok.stdout)
    assert d["via"] == "cri" and d["runtimePulled"] is True
    assert d["digest"] == p.built.manifest_digest


def test_self_signed_https_with_ca_in_hosts_toml_and_byte_identical(
        tmp_path: Path, hosts_dir: Path, containerd: Containerd, https_registry: Registry,
        pki: PKI, packages: dict[str, PushedPackage]) -> None:
    p = packages["function_with_runtime"]
    ref = https_registry.ref(p.ref)
    write_hosts_toml(hosts_dir, https_registry.host, https_registry.host, ca=pki.ca_cert)
    via_node, direct = tmp_path / "node.yaml", tmp_path / "direct.yaml"
    r = cf("pull", ref, "-o", str(via_node), cache=tmp_path / "c1", runtime=containerd)
    assert r.returncode == 0, r.stderr
    r = cf("pull", ref, "-o", str(direct), cache=tmp_path / "c2",
           extra=("--ca-bundle", str(pki.ca_cert)))
    assert r.returncode == 0, r.stderr
    assert via_node.read_bytes() == direct.read_bytes() == p.built.package_yaml


def test_already_present_image_makes_no_registry_request(
        tmp_path: Path, hosts_dir: Path, containerd: Containerd, http_registry: Registry,
        packages: dict[str, PushedPackage]) -> None:
    p = packages["provider_kubernetes"]
    ref = http_registry.ref(p.ref)
    write_hosts_toml(hosts_dir, http_registry.host, http_registry.host, plain_http=True)
    first = cf("pull", ref, "-O", "json", cache=tmp_path / "c1", runtime=containerd)
    assert first.returncode == 0, first.stderr
    mark = http_registry.mark()
    again = cf("pull", ref, "-O", "json", "--pull-policy", "Always", cache=tmp_path / "c2",
               runtime=containerd)
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["runtimePulled"] is False
    assert http_registry.requests(since=mark) == []


def test_htpasswd_registry_with_pull_secret_as_auth_config(
        tmp_path: Path, hosts_dir: Path, containerd: Containerd, basic_auth_registry: Registry,
        pki: PKI, packages: dict[str, PushedPackage]) -> None:
    import base64

    p = packages["configuration"]
    reg = basic_auth_registry
    write_hosts_toml(hosts_dir, reg.host, reg.host, ca=pki.ca_cert)
    auth = base64.b64encode(f"{TEST_USER}:{TEST_PASSWORD}".encode()).decode()
    secret = tmp_path / "pull-secret.json"
    secret.write_text(json.dumps({"auths": {reg.host: {"auth": auth}}}))
    denied = cf("pull", reg.ref(p.ref), cache=tmp_path / "c0", runtime=containerd)
    assert denied.returncode == 1
    out = tmp_path / "p.yaml"
    r = cf("pull", reg.ref(p.ref), "-o", str(out), cache=tmp_path / "c1", runtime=containerd,
           extra=("--pull-secret", str(secret)))
    assert r.returncode == 0, r.stderr
    assert out.read_bytes() == p.built.package_yaml
    assert TEST_PASSWORD not in r.stderr + r.stdout


def test_missing_socket(tmp_path: Path) -> None:
    r = subprocess.run([*CLI, "pull", "127.0.0.1:5000/x/y:v1", "--via", "cri",
                        "--runtime-endpoint", f"unix://{tmp_path}/nope.sock", "--cache-dir",
                        str(tmp_path), "--no-node-config"],
                       capture_output=True, text=True, timeout=60, check=False)
    assert r.returncode == 1
    assert "nope.sock" in r.stderr and "fix:" in r.stderr


def test_cri_disabled(tmp_path: Path, hosts_dir: Path) -> None:
    with Containerd(tmp_path / "ctd", hosts_dir=hosts_dir, disable_cri=True) as c:
        r = cf("pull", "127.0.0.1:5000/x/y:v1", "-O", "json", cache=tmp_path, runtime=c)
    assert r.returncode == 1
    assert json.loads(r.stdout)["cause"] == "cri-disabled"


def doctor(ref: str, runtime_endpoint: str) -> tuple[int, dict[str, Any]]:
    r = subprocess.run([*CLI, "doctor", ref, "--via", "cri", "--runtime-endpoint",
                        runtime_endpoint, "--no-node-config", "-O", "json"],
                       capture_output=True, text=True, timeout=180, check=False)
    return r.returncode, json.loads(r.stdout)


def by_name(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in report["checks"]}


def test_doctor_via_cri_adds_a_runtime_stage(
        tmp_path: Path, hosts_dir: Path, containerd: Containerd, http_registry: Registry,
        packages: dict[str, PushedPackage]) -> None:
    p = packages["configuration"]
    write_hosts_toml(hosts_dir, http_registry.host, http_registry.host, plain_http=True)
    code, report = doctor(http_registry.ref(p.ref), containerd.endpoint)
    checks = by_name(report)
    assert code == 0 and report["ok"], report
    rt = checks["runtime"]
    assert rt["status"] == "pass" and rt["data"]["runtime"] == "containerd"
    assert rt["data"]["version"] and rt["data"]["pulled"] is True
    assert checks["package"]["status"] == "pass"
    assert checks["tls"]["status"] == "skip" and "--via cri" in checks["tls"]["detail"]


def test_doctor_via_cri_reports_a_refused_pull_and_a_missing_socket(
        tmp_path: Path, hosts_dir: Path, containerd: Containerd, http_registry: Registry,
        packages: dict[str, PushedPackage]) -> None:
    p = packages["configuration"]
    write_hosts_toml(hosts_dir, http_registry.host, f"https://{http_registry.host}")
    code, report = doctor(http_registry.ref(p.ref), containerd.endpoint)
    rt = by_name(report)["runtime"]
    assert code == 1 and rt["status"] == "fail" and rt["cause"] == "pull-refused", rt
    assert "hosts.toml" in rt["fix"]
    assert by_name(report)["package"]["status"] == "skip"
    code, report = doctor(http_registry.ref(p.ref), f"unix://{tmp_path}/none.sock")
    rt = by_name(report)["runtime"]
    assert code == 1 and rt["cause"] == "socket-missing", rt


def test_never_makes_no_runtime_pull(
        tmp_path: Path, hosts_dir: Path, containerd: Containerd, http_registry: Registry,
        packages: dict[str, PushedPackage]) -> None:
    p = packages["configuration"]
    ref = http_registry.ref(p.ref)
    write_hosts_toml(hosts_dir, http_registry.host, http_registry.host, plain_http=True)

    def pulls() -> int:  # containerd's CRI logs each PullImage request (level info)
        return sum(1 for line in containerd.log_text().splitlines()
                   if 'msg="PullImage' in line and "returns" not in line)

    # Neither in the cache nor in the runtime: an error, and nothing asks the registry.
    mark = http_registry.mark()
    r = cf("pull", ref, "--pull-policy", "Never", "-O", "json", cache=tmp_path / "c0",
           runtime=containerd)
    assert r.returncode == 1, r.stderr
    d = json.loads(r.stdout)
    assert d["ok"] is False and d["cause"] == "not-cached" and "Never" in d["message"]
    assert pulls() == 0 and http_registry.requests(since=mark) == []
    assert containerd.ctr("images", "ls", "-q").strip() == ""

    # The runtime has it (pulled once, as the kubelet would): Never reads its store, no pull.
    first = cf("pull", ref, cache=tmp_path / "c1", runtime=containerd)
    assert first.returncode == 0, first.stderr
    assert pulls() == 1
    mark = http_registry.mark()
    r = cf("pull", ref, "--pull-policy", "Never", "-O", "json", cache=tmp_path / "c2",
           runtime=containerd)
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert d["runtimePulled"] is False and d["digest"] == p.built.manifest_digest
    assert pulls() == 1 and http_registry.requests(since=mark) == []

    # In crossfetch's cache: Never needs no runtime at all (this socket does not exist).
    r = cf("pull", ref, "--pull-policy", "Never", "--runtime-endpoint",
           f"unix://{tmp_path}/none.sock", cache=tmp_path / "c2",
           extra=("--via", "cri"))
    assert r.returncode == 0, r.stderr
    assert pulls() == 1
