"""Kubernetes NetworkPolicy egress evaluation for ``crossfetch doctor``.

Answers "may the Crossplane pod open a connection to these registry addresses on this port?"
and, separately, "may it reach cluster DNS?" from the output of
``kubectl get networkpolicy -A -o yaml``, following the NetworkPolicy API semantics:
policies select pods in their own namespace; a pod is isolated for egress once any selecting
policy has ``Egress`` in its (defaulted) policyTypes; then traffic is allowed iff at least one
egress rule of those policies matches it. Where the answer depends on facts the policies do
not hold (is this IP a pod? which container port is named ``https``?) the verdict is
``undecidable`` instead of a guess. Pure logic: no cluster access, no network.

Out of scope: CNI-specific policy objects (CiliumNetworkPolicy, Calico, AdminNetworkPolicy,
which the loader rejects rather than ignores) and the rule that traffic to the pod's own node
is always allowed (node addresses are not known here).
"""

from __future__ import annotations

from .evaluate import (
    DEFAULT_NAMESPACE,
    DEFAULT_POD_LABELS,
    DNS_NAMESPACE,
    DNS_POD_LABELS,
    NAMESPACE_NAME_LABEL,
    evaluate_dns,
    evaluate_egress,
)
from .load import MAX_INPUT_CHARS, MAX_NODES, load_policies
from .model import (
    PROTOCOLS,
    EgressRule,
    EgressVerdict,
    IPAddr,
    IPBlock,
    IPNet,
    LabelRequirement,
    LabelSelector,
    NetworkPolicy,
    PolicyPeer,
    PolicyPort,
    TargetResult,
    Verdict,
)

__all__ = [  # noqa: RUF022 - grouped by module
    "DEFAULT_NAMESPACE", "DEFAULT_POD_LABELS", "DNS_NAMESPACE", "DNS_POD_LABELS",
    "NAMESPACE_NAME_LABEL", "evaluate_dns", "evaluate_egress",
    "MAX_INPUT_CHARS", "MAX_NODES", "load_policies",
    "PROTOCOLS", "EgressRule", "EgressVerdict", "IPAddr", "IPBlock", "IPNet", "LabelRequirement",
    "LabelSelector", "NetworkPolicy", "PolicyPeer", "PolicyPort", "TargetResult", "Verdict",
]
