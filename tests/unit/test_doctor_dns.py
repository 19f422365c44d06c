"""The dns stage's advice: public names get a mirror, *.localtest.me is loopback wherever it
resolves, and a *.localhost name this resolver does not map stops the chain. Names that do not
resolve here are made so by a resolver stub (no network in unit tests)."""

from __future__ import annotations

import socket

import pytest

from crossfetch.crossplane import get
from crossfetch.doctor.net import Target, dns_stage, is_public_name
from crossfetch.doctor.report import Status


@pytest.fixture(autouse=True)
def nothing_resolves(monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(*_: object, **__: object) -> list[object]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", fail)


@pytest.mark.parametrize(("host", "public"), [
    ("ghcr.io", True), ("xpkg.crossplane.io", True), ("gitea.cnoe.localtest.me", True),
    ("registry.local", False), ("gitea.localhost", False), ("reg.svc.cluster.local", False),
    ("harbor.corp", False), ("registry", False), ("10.0.0.5", False), ("nexus.internal", False),
])
def test_public_names(host: str, public: bool) -> None:
    assert is_public_name(host) is public


def target(registry: str) -> Target:
    host, _, port = registry.partition(":")
    return Target(registry, host, int(port or 443), "https")


def test_unreachable_public_registry_gets_a_mirror_not_a_coredns_rewrite() -> None:
    check = dns_stage(target("ghcr.io"), 1, in_cluster=False, target=get("v2.3"))
    assert (check.status, check.cause) == (Status.FAIL, "dns-failure")
    assert check.data["publicName"] is True
    assert check.fix is not None
    assert "rewriteImage:" in check.fix and "rewrite name" not in check.fix


def test_mirror_needs_rewrite_image_so_v1_18_gets_none() -> None:
    check = dns_stage(target("ghcr.io"), 1, in_cluster=False, target=get("v1.18"))
    assert check.fix is not None and "rewriteImage:" not in check.fix


def test_private_name_gets_cluster_dns_advice() -> None:
    check = dns_stage(target("registry.corp:5000"), 1, in_cluster=False, target=get("v2.3"))
    assert check.fix is not None and "rewrite name registry.corp" in check.fix


def test_localtest_me_is_loopback_whatever_this_resolver_says() -> None:
    check = dns_stage(target("gitea.cnoe.localtest.me:8443"), 1, in_cluster=False,
                      target=get("v2.3"))
    assert check.status is Status.FAIL  # it does not resolve *here*
    assert "always answers loopback (127.0.0.1" in check.detail
    assert "pod itself" in check.detail
    assert check.fix is not None and "rewrite name gitea.cnoe.localtest.me" in check.fix


def test_unmapped_dot_localhost_stops_the_chain_at_dns() -> None:
    check = dns_stage(target("gitea.localhost:3000"), 1, in_cluster=False, target=get("v2.3"))
    assert (check.status, check.cause) == (Status.FAIL, "dns-failure")
    assert "not checked" in check.detail and "RFC 6761" in check.detail
    assert check.fix is not None and "127.0.0.1 gitea.localhost" in check.fix
