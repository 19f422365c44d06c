"""Ready-to-paste fixes: the snippets errors and ``doctor`` print."""

from __future__ import annotations

import re


def object_name(registry: str, suffix: str = "") -> str:
    """A valid Kubernetes object name derived from a registry host."""
    base = re.sub(r"[^a-z0-9-]+", "-", registry.lower()).strip("-")[:50] or "registry"
    return f"{base}-{suffix}" if suffix else base


def imageconfig_yaml(registry: str, *, mode: str | None = None,
                     ca_configmap: tuple[str, str] | None = None,
                     pull_secret: str | None = None, name: str | None = None) -> str:
    """An ImageConfig matching ``registry/`` with the given ``tls`` and auth settings."""
    lines = [
        "apiVersion: pkg.crossplane.io/v1beta1",
        "kind: ImageConfig",
        "metadata:",
        f"  name: {name or object_name(registry)}",
        "spec:",
        "  matchImages:",
        "  - type: Prefix",
        f"    prefix: {registry}/",
        "  registry:",
    ]
    if pull_secret:
        lines += ["    authentication:", "      pullSecretRef:", f"        name: {pull_secret}"]
    if mode or ca_configmap:
        lines.append("    tls:")
        if mode:
            lines.append(f"      mode: {mode}")
        if ca_configmap:
            lines += ["      caBundleConfigMapRef:", f"        name: {ca_configmap[0]}",
                      f"        key: {ca_configmap[1]}"]
    return "\n".join(lines) + "\n"


def hosts_toml(registry: str, *, scheme: str = "https", ca_path: str | None = None,
               skip_verify: bool = False) -> str:
    """containerd ``/etc/containerd/certs.d/<registry>/hosts.toml`` for the node runtime."""
    lines = [f'server = "{scheme}://{registry}"', "", f'[host."{scheme}://{registry}"]',
             '  capabilities = ["pull", "resolve"]']
    if ca_path:
        lines.append(f'  ca = "{ca_path}"')
    if skip_verify:
        lines.append("  skip_verify = true")
    return "\n".join(lines) + "\n"
