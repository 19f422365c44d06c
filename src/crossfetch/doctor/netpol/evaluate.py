"""Egress and DNS verdicts for a pod under a set of NetworkPolicies, and fix manifests."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import yaml

from ...errors import UsageError
from .model import (
    PROTOCOLS,
    EgressRule,
    EgressVerdict,
    IPAddr,
    NetworkPolicy,
    PolicyPeer,
    TargetResult,
    Verdict,
    _Tri,
)

DEFAULT_NAMESPACE = "crossplane-system"
DEFAULT_POD_LABELS: Mapping[str, str] = {"app": "crossplane"}
NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"
DNS_NAMESPACE = "kube-system"
DNS_POD_LABELS: Mapping[str, str] = {"k8s-app": "kube-dns"}


@dataclass(frozen=True)
class _Dest:
    address: IPAddr | None
    pod: tuple[str, Mapping[str, str], Mapping[str, str]] | None  # ns, ns labels, pod labels

    def __str__(self) -> str:
        who = f"{_labels_str(self.pod[2])} pods in {self.pod[0]}" if self.pod else ""
        if self.address is None:
            return who or "unknown address"
        return f"{self.address} ({who})" if who else str(self.address)


def _any(results: Sequence[tuple[_Tri, str]]) -> tuple[_Tri, str]:
    if any(ok for ok, _ in results):
        return True, ""
    unknown = [why for ok, why in results if ok is None]
    return (None, "; ".join(dict.fromkeys(unknown))) if unknown else (False, "")


def _peer_matches(peer: PolicyPeer, policy_ns: str, dest: _Dest) -> tuple[_Tri, str]:
    if peer.ip_block is not None:
        if dest.address is None:
            return None, f"{peer} needs the server address, which was not given"
        return peer.ip_block.contains(dest.address), ""
    if dest.pod is None:
        return None, (f"peer {peer} selects pods, not addresses; whether {dest.address} is such "
                      "a pod is not known")
    ns, ns_labels, pod_labels = dest.pod
    ok = (peer.namespace_selector.matches(ns_labels) if peer.namespace_selector is not None
          else ns == policy_ns)  # a podSelector alone means the policy's own namespace
    return ok and (peer.pod_selector is None or peer.pod_selector.matches(pod_labels)), ""


def _rule_matches(rule: EgressRule, policy_ns: str, dest: _Dest, protocol: str,
                  port: int) -> tuple[_Tri, str]:
    port_ok, port_why = _any([p.matches(protocol, port) for p in rule.ports]) if rule.ports \
        else (True, "")
    if port_ok is False:
        return False, ""
    peer_ok, peer_why = _any([_peer_matches(p, policy_ns, dest) for p in rule.to]) if rule.to \
        else (True, "")
    if peer_ok is False:
        return False, ""
    if port_ok and peer_ok:
        return True, ""
    return None, "; ".join(w for w in (port_why, peer_why) if w)


def _evaluate_target(isolating: Sequence[NetworkPolicy], dest: _Dest, protocol: str,
                     port: int) -> TargetResult:
    addr = None if dest.address is None else str(dest.address)
    undecided: list[str] = []
    for pol in isolating:
        for i, rule in enumerate(pol.egress or ()):
            ok, why = _rule_matches(rule, pol.namespace, dest, protocol, port)
            if ok:
                return TargetResult(addr, protocol, port, Verdict.ALLOWED, f"{pol.key} egress[{i}]",
                                    destination=str(dest))
            if ok is None:
                undecided.append(f"{pol.key} egress[{i}]: {why}")
    verdict = Verdict.UNDECIDABLE if undecided else Verdict.DENIED
    return TargetResult(addr, protocol, port, verdict, None, tuple(undecided), str(dest))


def _labels_str(labels: Mapping[str, str]) -> str:
    return "{" + ", ".join(f"{k}={v}" for k, v in labels.items()) + "}"


def _evaluate(policies: Sequence[NetworkPolicy], namespace: str, pod_labels: Mapping[str, str],
              checks: Sequence[tuple[_Dest, str, int]], what: str,
              fix: Callable[[list[TargetResult]], str]) -> EgressVerdict:
    selecting = [p for p in policies if p.selects(namespace, pod_labels)]
    isolating = [p for p in selecting if p.restricts_egress]
    sel_keys, iso_keys = [p.key for p in selecting], [p.key for p in isolating]
    pod = f"pod {_labels_str(pod_labels)} in namespace {namespace}"
    if not isolating:
        also = f" ({', '.join(sel_keys)} select it for Ingress only)" if selecting else ""
        return EgressVerdict(Verdict.ALLOWED, f"{what} from {pod} is allowed: no NetworkPolicy "
                             f"selecting the pod has Egress in its policyTypes, so its egress is "
                             f"not restricted{also}.", sel_keys, iso_keys)
    results = [_evaluate_target(isolating, d, proto, port) for d, proto, port in checks]
    denied = [r for r in results if r.verdict is Verdict.DENIED]
    open_ = [r for r in results if r.verdict is Verdict.UNDECIDABLE]
    by = ", ".join(dict.fromkeys(r.allowed_by for r in results if r.allowed_by)) or None
    if not denied and not open_:
        return EgressVerdict(Verdict.ALLOWED, f"{what} from {pod} to "
                             f"{', '.join(map(str, results))} is allowed by {by}.",
                             sel_keys, iso_keys, by, None, results)
    not_allowed = denied + open_
    if denied:
        reason = (f"{what} from {pod} to {', '.join(map(str, denied))} is denied: the pod is "
                  f"isolated for egress by {', '.join(iso_keys)} and no egress rule of those "
                  "policies matches it.")
        verdict = Verdict.DENIED
    else:
        why = "; ".join(dict.fromkeys(u for r in open_ for u in r.undecided))
        reason = (f"{what} from {pod} to {', '.join(map(str, open_))} cannot be decided from the "
                  f"policies alone (isolated for egress by {', '.join(iso_keys)}): {why}.")
        verdict = Verdict.UNDECIDABLE
    return EgressVerdict(verdict, reason, sel_keys, iso_keys, None, fix(not_allowed), results)


def _address(text: str, what: str) -> IPAddr:
    try:
        return ipaddress.ip_address(text.strip())
    except ValueError:
        raise UsageError(f"{what} {text!r} is not an IP address", cause="invalid-address",
                         fix="pass the resolved IPv4 or IPv6 address, e.g. 203.0.113.10") from None


def _manifest(name: str, namespace: str, pod_labels: Mapping[str, str], rule: dict[str, Any],
              comment: str) -> str:
    selector: dict[str, Any] = {"matchLabels": dict(pod_labels)} if pod_labels else {}
    obj = {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
           "metadata": {"name": name, "namespace": namespace},
           "spec": {"podSelector": selector, "policyTypes": ["Egress"], "egress": [rule]}}
    # Policies are additive, so a separate policy adds this allowance without editing others.
    return f"# {comment}\n" + yaml.safe_dump(obj, sort_keys=False, default_flow_style=False)


def _host_cidr(addr: str) -> str:
    return f"{addr}/{32 if ipaddress.ip_address(addr).version == 4 else 128}"


def evaluate_egress(policies: Sequence[NetworkPolicy], *, namespace: str = DEFAULT_NAMESPACE,
                    pod_labels: Mapping[str, str] = DEFAULT_POD_LABELS,
                    namespace_labels: Mapping[str, str] | None = None,
                    addresses: Sequence[str], port: int, protocol: str = "TCP") -> EgressVerdict:
    """May the pod send ``protocol`` traffic to every one of ``addresses`` on ``port``?

    An empty ``addresses`` means "address unknown": only rules that match any destination can
    decide. ``namespace_labels`` is accepted for symmetry with :func:`evaluate_dns`; which
    policies apply to the source pod depends only on its namespace and labels.
    """
    del namespace_labels  # the source namespace's labels never select policies
    protocol = _protocol(protocol)
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise UsageError(f"port {port!r} is not a port number", cause="invalid-port",
                         fix="pass a port between 1 and 65535")
    dests = [_Dest(_address(a, "destination address"), None) for a in addresses] \
        or [_Dest(None, None)]

    def fix(bad: list[TargetResult]) -> str:
        rule: dict[str, Any] = {}
        cidrs = list(dict.fromkeys(_host_cidr(r.address) for r in bad if r.address))
        if cidrs:
            rule["to"] = [{"ipBlock": {"cidr": c}} for c in cidrs]
        rule["ports"] = [{"protocol": protocol, "port": port}]
        to = ", ".join(cidrs) or "any address (narrow `to` once the address is known)"
        return _manifest(f"crossfetch-allow-registry-{protocol.lower()}-{port}", namespace,
                         pod_labels, rule, f"Allow egress to {to} on {protocol}/{port}.")

    return _evaluate(policies, namespace, pod_labels, [(d, protocol, port) for d in dests],
                     "Egress", fix)


def evaluate_dns(policies: Sequence[NetworkPolicy], *, namespace: str = DEFAULT_NAMESPACE,
                 pod_labels: Mapping[str, str] = DEFAULT_POD_LABELS,
                 namespace_labels: Mapping[str, str] | None = None,
                 dns_addresses: Sequence[str] | None = None,
                 dns_namespace: str = DNS_NAMESPACE,
                 dns_pod_labels: Mapping[str, str] = DNS_POD_LABELS,
                 dns_namespace_labels: Mapping[str, str] | None = None) -> EgressVerdict:
    """May the pod reach cluster DNS on both UDP/53 and TCP/53?

    The DNS server is taken to be pods labelled ``dns_pod_labels`` in ``dns_namespace`` (the
    kube-dns/CoreDNS convention), so namespace/pod selector peers can be decided; ipBlock peers
    need ``dns_addresses`` and are undecidable without them.
    """
    if dns_namespace_labels is None:
        dns_namespace_labels = (namespace_labels if dns_namespace == namespace and namespace_labels
                                else {NAMESPACE_NAME_LABEL: dns_namespace})
    pod = (dns_namespace, dns_namespace_labels, dns_pod_labels)
    dests = [_Dest(_address(a, "DNS server address"), pod) for a in dns_addresses or ()] \
        or [_Dest(None, pod)]
    checks = [(d, proto, 53) for d in dests for proto in ("UDP", "TCP")]

    def fix(bad: list[TargetResult]) -> str:
        peer: dict[str, Any] = {"namespaceSelector": {"matchLabels": {
            NAMESPACE_NAME_LABEL: dns_namespace}}}
        if dns_pod_labels:
            peer["podSelector"] = {"matchLabels": dict(dns_pod_labels)}
        to = [peer] + [{"ipBlock": {"cidr": _host_cidr(str(d.address))}}
                       for d in dests if d.address is not None]
        rule = {"to": to, "ports": [{"protocol": "UDP", "port": 53},
                                    {"protocol": "TCP", "port": 53}]}
        return _manifest("crossfetch-allow-dns", namespace, pod_labels, rule,
                         f"Allow DNS (UDP and TCP 53) to {_labels_str(dns_pod_labels)} pods in "
                         f"{dns_namespace}.")

    return _evaluate(policies, namespace, pod_labels, checks, "DNS", fix)


def _protocol(value: str) -> str:
    if value.upper() not in PROTOCOLS:
        raise UsageError(f"protocol {value!r} is not one of {', '.join(PROTOCOLS)}",
                         cause="invalid-protocol", fix="use TCP, UDP or SCTP")
    return value.upper()
