"""Pulls through a real forward proxy (tinyproxy): plain-HTTP forwarding and CONNECT tunnels,
with and without proxy credentials, and NO_PROXY. The proxy's own log proves which requests
went through it; the registry's access log proves they arrived."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.conftest import PushedPackage
from tests.integration.test_pull import imageconfig, policy_file
from tests.support.certs import PKI
from tests.support.cli import invoke
from tests.support.fwdproxy import ForwardProxy
from tests.support.registry import Registry

USER, PASSWORD = "proxyuser", "pr0xy-s3cret"


@pytest.fixture(scope="module")
def proxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ForwardProxy]:
    with ForwardProxy(tmp_path_factory.mktemp("fwdproxy")) as p:
        yield p


@pytest.fixture(scope="module")
def auth_proxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ForwardProxy]:
    with ForwardProxy(tmp_path_factory.mktemp("fwdproxy-auth"), auth=(USER, PASSWORD)) as p:
        yield p


def _pull(tmp_path: Path, ref: str, env: dict[str, str], *extra: str) -> tuple[int, str, str]:
    r = invoke(["pull", ref, "-O", "json", "--no-node-config", "--retries", "0",
                "--cache-dir", str(tmp_path / "cache"), "-o", str(tmp_path / "p.yaml"), *extra],
               env={"NO_PROXY": "", "no_proxy": "", **env})
    return r.exit_code, r.stdout, r.stderr


def _http_case(tmp_path: Path, registry: Registry) -> list[str]:
    cfg = policy_file(tmp_path, imageconfig(f"{registry.host}/", mode="Disabled"))
    return ["--config", str(cfg)]


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_pull_through_proxy(scheme: str, tmp_path: Path, proxy: ForwardProxy, pki: PKI,
                            http_registry: Registry, https_registry: Registry,
                            packages: dict[str, PushedPackage]) -> None:
    p = packages["function_with_runtime"]
    registry = http_registry if scheme == "http" else https_registry
    extra = _http_case(tmp_path, registry) if scheme == "http" else ["--ca-bundle",
                                                                      str(pki.ca_cert)]
    before = len(proxy.requests())
    code, out, err = _pull(tmp_path, registry.ref(p.ref), {f"{scheme.upper()}_PROXY": proxy.url},
                           *extra)
    assert code == 0, err
    assert json.loads(out)["digest"] == p.built.manifest_digest
    assert (tmp_path / "p.yaml").read_bytes() == p.built.package_yaml
    seen = proxy.requests()[before:]
    if scheme == "http":  # forwarded: absolute URLs on the request line
        assert any(s.startswith(f"GET http://{registry.host}/v2/") for s in seen), seen
    else:  # tunnelled: the proxy sees only CONNECT, never a path
        assert seen and all(s.startswith(f"CONNECT {registry.host}") for s in seen), seen


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_proxy_credentials_from_the_proxy_url(scheme: str, tmp_path: Path,
                                              auth_proxy: ForwardProxy, pki: PKI,
                                              http_registry: Registry, https_registry: Registry,
                                              packages: dict[str, PushedPackage]) -> None:
    p = packages["configuration"]
    registry = http_registry if scheme == "http" else https_registry
    extra = _http_case(tmp_path, registry) if scheme == "http" else ["--ca-bundle",
                                                                      str(pki.ca_cert)]
    var = f"{scheme.upper()}_PROXY"
    # Without credentials the proxy answers 407: an error that says so, not a traceback.
    code, out, err = _pull(tmp_path, registry.ref(p.ref), {var: auth_proxy.url}, *extra)
    assert code == 1, err
    error = json.loads(out)
    assert error["cause"] == "proxy-error" and "407" in error["message"], error
    assert "USER:PASSWORD@" in error["fix"] or "user:password@" in error["fix"]
    assert not (tmp_path / "p.yaml").exists()
    # With user:password in the proxy URL they become Proxy-Authorization.
    code, out, err = _pull(tmp_path, registry.ref(p.ref),
                           {var: auth_proxy.url_with_credentials(USER, PASSWORD)}, *extra)
    assert code == 0, err
    assert (tmp_path / "p.yaml").read_bytes() == p.built.package_yaml
    assert PASSWORD not in out + err


def test_no_proxy_goes_direct(tmp_path: Path, proxy: ForwardProxy, pki: PKI,
                              https_registry: Registry,
                              packages: dict[str, PushedPackage]) -> None:
    p = packages["function_with_runtime"]
    before = len(proxy.requests())
    code, _, err = _pull(tmp_path, https_registry.ref(p.ref),
                         {"HTTPS_PROXY": proxy.url, "NO_PROXY": "127.0.0.1",
                          "no_proxy": "127.0.0.1"},
                         "--ca-bundle", str(pki.ca_cert))
    assert code == 0, err
    assert proxy.requests()[before:] == []
