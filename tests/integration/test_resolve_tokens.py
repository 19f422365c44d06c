"""resolve's workers share one Client: one token cache, so a token registry issues one token per
repository scope however many threads and registry clients touch it."""

from __future__ import annotations

from pathlib import Path

from crossfetch import Cache, Client
from crossfetch.cli.common import build_policy
from crossfetch.resolve import resolve
from tests.support import resolve_graph as g
from tests.support.certs import PKI
from tests.support.registry import Registry
from tests.support.tokenserver import TokenServer

CONFLICT = [s for s in g.SPECS if "conflict" in s.repo]


def test_one_token_per_repository_across_workers(
    http_registry: Registry, token_registry: Registry, token_server: TokenServer, pki: PKI,
    tmp_path: Path,
) -> None:
    # the plain front shares storage with the token front: push there, name the token front
    g.publish(token_registry.host, "unused.invalid", private_auth=("", ""), specs=CONFLICT,
              push_to=http_registry.host)
    policy = build_policy({"no_node_config": True, "ca_bundle": str(pki.ca_cert)})
    before = len(token_server.issued)
    with Client(policy, cache=Cache(tmp_path / "cache")) as client:
        res = resolve(client, f"{token_registry.host}/cfg/conflict:v1.0.0", jobs=8)
    assert len(res.crossplane.installs) == 4 and res.solution.ok
    scopes = [tuple(a["name"] for a in claims["access"]) for claims in token_server.issued[before:]]
    repos = {"cfg/conflict", "conflict/app-a", "conflict/app-b", "conflict/lib"}
    # tags and pulls of one repository run on different threads and registry clients
    assert sorted(s for (s,) in scopes) == sorted(repos)
