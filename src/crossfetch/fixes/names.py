"""Names shared by every fix format: object names derived from a registry, where things live."""

from __future__ import annotations

import json
import re

CROSSPLANE_NAMESPACE = "crossplane-system"
"""Where Crossplane's Helm chart installs it (and so its CA bundle ConfigMap and pull Secrets)."""
CA_KEY = "ca.crt"
"""The ConfigMap / certs.d key a CA bundle is stored under."""
CERTS_D = "/etc/containerd/certs.d"
"""containerd's registry host directory (its CRI ``config_path``) on a node."""


def object_name(registry: str, suffix: str = "") -> str:
    """A valid Kubernetes object name derived from a registry host (or prefix)."""
    base = re.sub(r"[^a-z0-9-]+", "-", registry.lower()).strip("-")[:50] or "registry"
    return f"{base}-{suffix}" if suffix else base


def containerd_hosts_dir(registry: str, certs_d: str = CERTS_D) -> str:
    """Where containerd looks for ``registry``'s ``hosts.toml`` (with ``config_path`` set)."""
    return f"{certs_d}/{registry}"


def toml_str(s: str) -> str:
    """``s`` as a TOML basic string (a JSON string is one)."""
    return json.dumps(s)
