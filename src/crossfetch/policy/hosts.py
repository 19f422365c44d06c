"""Host matching for credentials, as Docker and the kubelet match registry keys.

``registry.example:5000``, ``https://registry.example:5000`` and
``https://registry.example:5000/v1/`` are one key; Docker Hub has several names; a pull-secret
key may carry a path (``registry.example/team``) or a one-label wildcard (``*.example.com``).
"""

from __future__ import annotations

DOCKER_HUB_KEY = "https://index.docker.io/v1/"
"""The key Docker writes for Docker Hub in ``config.json``."""
HUB_HOSTS = frozenset({"docker.io", "index.docker.io", "registry-1.docker.io"})
"""Every host name that means Docker Hub."""


def normalize_host(key: str) -> str:
    """Docker's rule: drop ``http(s)://`` and anything after the first ``/``; lower-case."""
    k = key.strip()
    for prefix in ("https://", "http://"):
        if k.lower().startswith(prefix):
            k = k[len(prefix):]
            break
    return k.split("/", 1)[0].lower()


def same_registry(a: str, b: str) -> bool:
    """Whether two host names are one registry (case-insensitive; Docker Hub's aliases)."""
    a, b = a.lower(), b.lower()
    return a == b or (a in HUB_HOSTS and b in HUB_HOSTS)


def key_path(key: str) -> str:
    """The repository path a key is limited to (``""`` for the whole registry)."""
    k = key.strip()
    for prefix in ("https://", "http://"):
        if k.lower().startswith(prefix):
            k = k[len(prefix):]
    _, _, path = k.partition("/")
    path = path.strip("/")
    # Docker's ``/v1/`` and ``/v2/`` suffixes name the API, not a repository path.
    return "" if path in ("v1", "v2") else path


def glob_host(pattern: str, host: str) -> bool:
    """kubelet-style wildcard: each ``*`` label matches one label; ports must be equal."""
    ph, _, pport = pattern.partition(":")
    hh, _, hport = host.partition(":")
    if pport != hport:
        return False
    pl, hl = ph.split("."), hh.split(".")
    return len(pl) == len(hl) and all(p == "*" or p == h for p, h in zip(pl, hl, strict=True))
