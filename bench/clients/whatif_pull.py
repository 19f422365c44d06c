"""Prototype pulls for bench/whatif.py (measurement only; not crossfetch code paths to ship).

usage: whatif_pull.py MODE REF --config P -o OUT --pull-policy Always --cache-dir C
MODE: cli | cli-noca | lean | lean-noclick (see bench/whatif.py).
"""

from __future__ import annotations

import hashlib
import os
import sys
from collections.abc import Iterator
from typing import Any


def _patch_no_ca() -> None:
    """Plain-HTTP clients get a verifying SSL context without roots (never used for http://;
    it would fail closed if it were), instead of httpx loading the CA bundle for verify=True."""
    import ssl

    import httpx

    import crossfetch.transport.http as h

    original = h.Transport._client

    def _client(self: h.Transport, ep: Any, scheme: str) -> Any:
        key = (scheme, None, ep.headers)
        if scheme == "http" and key not in self._clients:
            self._clients[key] = httpx.Client(
                verify=ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT),
                timeout=httpx.Timeout(self.timeouts.read, connect=self.timeouts.connect),
                headers={"User-Agent": h.USER_AGENT, **dict(ep.headers)},
                follow_redirects=False, trust_env=True)
        return original(self, ep, scheme)

    h.Transport._client = _client  # type: ignore[method-assign]


def _lean(ref: str, opts: dict[str, str]) -> None:
    """crossfetch's policy, cache and xpkg code over a stdlib http.client blob source."""
    import http.client

    from crossfetch.cache import Cache
    from crossfetch.client import Client, PullPolicy, write_output
    from crossfetch.oci import ACCEPT, Descriptor
    from crossfetch.policy.credentials import keychain_provider
    from crossfetch.policy.node import load_node_policy
    from crossfetch.policy.resolver import Policy

    policy = Policy.load([opts["--config"]], env={})
    policy.node = load_node_policy(hosts_dirs=(), certs_dirs=(), registries_conf=None,
                                   daemon_json=None, system=True)
    policy.keychains = keychain_provider(policy.objects, pull_secret_files=(), username=None,
                                         password=None, env=os.environ)

    class Source:
        def __init__(self, host: str, repo: str) -> None:
            self.conn = http.client.HTTPConnection(host, timeout=60)
            self.repo = repo

        def head(self, ident: str) -> str:
            self.conn.request("HEAD", f"/v2/{self.repo}/manifests/{ident}",
                              headers={"Accept": ACCEPT})
            resp = self.conn.getresponse()
            resp.read()
            return str(resp.getheader("docker-content-digest"))

        def fetch_manifest(self, ident: str) -> tuple[bytes, str, str]:
            self.conn.request("GET", f"/v2/{self.repo}/manifests/{ident}",
                              headers={"Accept": ACCEPT})
            resp = self.conn.getresponse()
            raw = resp.read()
            mt = (resp.getheader("content-type") or "").split(";")[0]
            return raw, mt, "sha256:" + hashlib.sha256(raw).hexdigest()

        def open_blob(self, desc: Descriptor) -> Iterator[bytes]:
            self.conn.request("GET", f"/v2/{self.repo}/blobs/{desc.digest}")
            resp = self.conn.getresponse()
            h = hashlib.sha256()
            while chunk := resp.read(256 * 1024):
                h.update(chunk)
                yield chunk
            if "sha256:" + h.hexdigest() != desc.digest:
                raise RuntimeError("digest mismatch")

    class NoTransport:  # keeps Client from importing httpx
        def close(self) -> None:
            pass

    client = Client(policy, cache=Cache(opts["--cache-dir"]), pull_policy=PullPolicy.ALWAYS,
                    transport=NoTransport())  # type: ignore[arg-type]
    decision = client.decide(ref)
    src = Source(decision.resolved.registry, decision.resolved.repository)
    top = src.head(decision.resolved.identifier)
    result = client._fetch(decision, src, top, lambda: None)
    write_output(result.path, opts["-o"])


def main() -> None:
    mode, rest = sys.argv[1], sys.argv[2:]
    if mode in ("cli", "cli-noca"):
        if mode == "cli-noca":
            _patch_no_ca()
        from crossfetch.cli.main import main as cli

        cli(["pull", *rest])
        return
    if mode == "lean":
        import click  # noqa: F401 - the CLI framework's import cost, as crossfetch pays it
    ref, flags = rest[0], rest[1:]
    _lean(ref, dict(zip(flags[::2], flags[1::2], strict=True)))


if __name__ == "__main__":
    main()
