"""Node configuration readers (placeholder until the node-config readers land)."""

from __future__ import annotations

from collections.abc import Sequence

from ..resolver import NodePolicy


def load_node_policy(*, hosts_dirs: Sequence[str] = (), certs_dirs: Sequence[str] = (),
                     registries_conf: str | None = None, daemon_json: str | None = None,
                     system: bool = True) -> NodePolicy | None:
    """The node's registry configuration as one :class:`NodePolicy` (``None``: nothing)."""
    return None
