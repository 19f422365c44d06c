"""Typed NetworkPolicy objects, label selectors and verdicts: the parts that decide egress."""

from __future__ import annotations

import enum
import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

IPNet = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddr = ipaddress.IPv4Address | ipaddress.IPv6Address
_Tri = bool | None  # three-valued: True, False, or None for "cannot tell"

PROTOCOLS = ("TCP", "UDP", "SCTP")


class Verdict(enum.StrEnum):
    """Outcome of an egress question."""

    ALLOWED = "allowed"
    DENIED = "denied"
    UNDECIDABLE = "undecidable"


@dataclass(frozen=True)
class LabelRequirement:
    """One ``matchExpressions`` entry."""

    key: str
    operator: str
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        present = self.key in labels
        if self.operator == "In":
            return present and labels[self.key] in self.values
        if self.operator == "NotIn":  # a missing key satisfies NotIn
            return not present or labels[self.key] not in self.values
        return present if self.operator == "Exists" else not present


@dataclass(frozen=True)
class LabelSelector:
    """``matchLabels`` AND ``matchExpressions``; the empty selector matches everything."""

    match_labels: tuple[tuple[str, str], ...] = ()
    match_expressions: tuple[LabelRequirement, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(labels.get(k) == v for k, v in self.match_labels) and all(
            r.matches(labels) for r in self.match_expressions)

    def __str__(self) -> str:
        parts = [f"{k}={v}" for k, v in self.match_labels]
        parts += [f"{r.key} {r.operator} ({', '.join(r.values)})" if r.values
                  else f"{r.key} {r.operator}" for r in self.match_expressions]
        return "{" + ", ".join(parts) + "}"


@dataclass(frozen=True)
class IPBlock:
    """``ipBlock``: a CIDR minus ``except`` CIDRs."""

    cidr: IPNet
    except_: tuple[IPNet, ...] = ()

    def contains(self, addr: IPAddr) -> bool:
        return (addr.version == self.cidr.version and addr in self.cidr
                and not any(addr in e for e in self.except_))


@dataclass(frozen=True)
class PolicyPeer:
    """One ``to`` entry: an ipBlock, or pods chosen by namespace and/or pod selectors."""

    ip_block: IPBlock | None = None
    namespace_selector: LabelSelector | None = None
    pod_selector: LabelSelector | None = None

    def __str__(self) -> str:
        if self.ip_block is not None:
            return f"ipBlock {self.ip_block.cidr}"
        sel = [f"{n} {s}" for n, s in (("namespaceSelector", self.namespace_selector),
                                       ("podSelector", self.pod_selector)) if s is not None]
        return " + ".join(sel)


@dataclass(frozen=True)
class PolicyPort:
    """One ``ports`` entry; ``port`` None matches every port of the protocol."""

    protocol: str = "TCP"
    port: int | str | None = None
    end_port: int | None = None

    def matches(self, protocol: str, port: int) -> tuple[_Tri, str]:
        if protocol != self.protocol:
            return False, ""
        if self.port is None:
            return True, ""
        if isinstance(self.port, str):
            return None, (f"named port {self.port!r} depends on the destination pod's container "
                          "ports, which the policies do not show")
        return self.port <= port <= (self.end_port or self.port), ""


@dataclass(frozen=True)
class EgressRule:
    """``to`` and ``ports`` must both match; an empty or missing list matches everything."""

    to: tuple[PolicyPeer, ...] = ()
    ports: tuple[PolicyPort, ...] = ()


@dataclass(frozen=True)
class NetworkPolicy:
    """The parts of a ``networking.k8s.io/v1`` NetworkPolicy that decide egress."""

    namespace: str
    name: str
    pod_selector: LabelSelector = field(default_factory=LabelSelector)
    policy_types: tuple[str, ...] = ()
    """As written; empty when omitted (see :attr:`effective_policy_types`)."""
    egress: tuple[EgressRule, ...] | None = None
    """None when the policy has no ``egress`` section."""
    source: str | None = None
    """``file:line`` the object came from."""

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    @property
    def effective_policy_types(self) -> tuple[str, ...]:
        # API defaulting: no policyTypes means Ingress, plus Egress only if there is at least
        # one egress rule (an empty `egress: []` does not count).
        if self.policy_types:
            return self.policy_types
        return ("Ingress", "Egress") if self.egress else ("Ingress",)

    @property
    def restricts_egress(self) -> bool:
        return "Egress" in self.effective_policy_types

    def selects(self, namespace: str, pod_labels: Mapping[str, str]) -> bool:
        return namespace == self.namespace and self.pod_selector.matches(pod_labels)


@dataclass(frozen=True)
class TargetResult:
    """The verdict for one (address, protocol, port)."""

    address: str | None
    protocol: str
    port: int
    verdict: Verdict
    allowed_by: str | None = None
    undecided: tuple[str, ...] = ()
    """``ns/name egress[i]: why`` for each rule that might match but cannot be decided."""
    destination: str = ""
    """How the destination is shown: the address, or who it is when the address is unknown."""

    def __str__(self) -> str:
        return f"{self.destination or self.address} {self.protocol}/{self.port}"

    def to_dict(self) -> dict[str, Any]:
        return {"address": self.address, "destination": self.destination or self.address,
                "protocol": self.protocol, "port": self.port,
                "verdict": self.verdict.value, "allowedBy": self.allowed_by,
                "undecided": list(self.undecided)}


@dataclass(frozen=True)
class EgressVerdict:
    """Answer to one egress question, with the evidence and a fix when not allowed."""

    verdict: Verdict
    reason: str
    selecting: list[str] = field(default_factory=list)
    """``ns/name`` of every policy selecting the pod (any policyTypes)."""
    isolating: list[str] = field(default_factory=list)
    """The selecting policies with Egress in their policyTypes."""
    allowed_by: str | None = None
    """``ns/name egress[i]`` of the rule(s) that allowed it."""
    fix: str | None = None
    """A ready-to-apply NetworkPolicy manifest, when not allowed."""
    targets: list[TargetResult] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"verdict": self.verdict.value, "reason": self.reason,
                "selecting": list(self.selecting), "isolating": list(self.isolating),
                "allowedBy": self.allowed_by, "fix": self.fix,
                "targets": [t.to_dict() for t in self.targets]}
