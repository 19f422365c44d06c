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

import enum
import ipaddress
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import yaml

from ..errors import ConfigError, UsageError

IPNet = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddr = ipaddress.IPv4Address | ipaddress.IPv6Address
_YPath = tuple[str | int, ...]
_Tri = bool | None  # three-valued: True, False, or None for "cannot tell"

DEFAULT_NAMESPACE = "crossplane-system"
DEFAULT_POD_LABELS: Mapping[str, str] = {"app": "crossplane"}
NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"
DNS_NAMESPACE = "kube-system"
DNS_POD_LABELS: Mapping[str, str] = {"k8s-app": "kube-dns"}
PROTOCOLS = ("TCP", "UDP", "SCTP")
MAX_INPUT_CHARS = 64 * 1024 * 1024
MAX_NODES = 2_000_000
_API_VERSIONS = ("networking.k8s.io/v1", "extensions/v1beta1")
_OPERATORS = ("In", "NotIn", "Exists", "DoesNotExist")


class Verdict(enum.StrEnum):
    """Outcome of an egress question."""

    ALLOWED = "allowed"
    DENIED = "denied"
    UNDECIDABLE = "undecidable"


# --- model --------------------------------------------------------------------------------


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
                "verdict": self.verdict.value, "allowed_by": self.allowed_by,
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
                "allowed_by": self.allowed_by, "fix": self.fix,
                "targets": [t.to_dict() for t in self.targets]}


# --- evaluation ---------------------------------------------------------------------------


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


# --- loading ------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Ctx:
    file: str
    lines: dict[_YPath, int]

    def line(self, path: _YPath) -> int | None:
        while path and path not in self.lines:
            path = path[:-1]
        return self.lines.get(path)

    def fail(self, path: _YPath, message: str, fix: str | None = None) -> NoReturn:
        where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path).lstrip(".")
        raise ConfigError(f"{where or 'document'}: {message}", file=self.file,
                          line=self.line(path),
                          fix=fix or "fix the NetworkPolicy input (as printed by "
                                     "`kubectl get networkpolicy -A -o yaml`)")


def _index(node: yaml.Node, path: _YPath, lines: dict[_YPath, int], sizes: dict[int, int],
           file: str) -> int:
    """Record the line of each path; return the node count with aliases expanded."""
    known = sizes.get(id(node))  # the composer hands back the anchored node for an alias
    if known == -1:
        raise ConfigError("recursive YAML alias", file=file, line=node.start_mark.line + 1,
                          fix="export the policies again with kubectl (it writes no aliases)")
    if known is not None:
        return known
    sizes[id(node)] = -1
    lines.setdefault(path, node.start_mark.line + 1)
    size = 1
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            if isinstance(key, yaml.ScalarNode):
                lines.setdefault((*path, key.value), key.start_mark.line + 1)
                size += _index(value, (*path, key.value), lines, sizes, file)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            size += _index(item, (*path, i), lines, sizes, file)
    sizes[id(node)] = size
    return size


def load_policies(path_or_text: str | Path, *, source: str | None = None,
                  default_namespace: str = "default") -> list[NetworkPolicy]:
    """Parse ``kubectl get networkpolicy -A -o yaml|json`` output into :class:`NetworkPolicy`.

    Accepts a ``List``/``NetworkPolicyList`` with ``items``, one object, or several YAML
    documents. A :class:`~pathlib.Path`, or a one-line string not starting with ``{``/``[``, is
    read as a file; anything else is the text itself (named ``source`` in errors). Objects
    without ``metadata.namespace`` get ``default_namespace``. Raises :class:`ConfigError`.
    """
    if isinstance(path_or_text, Path) or (
            path_or_text.strip() and "\n" not in path_or_text
            and not path_or_text.lstrip().startswith(("{", "["))):
        name = str(path_or_text)
        try:
            text = Path(path_or_text).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"cannot read NetworkPolicy file: {exc}", file=name,
                              fix="pass the file written by `kubectl get networkpolicy -A -o "
                                  "yaml > netpol.yaml`") from None
    else:
        name, text = source or "<input>", path_or_text
    if len(text) > MAX_INPUT_CHARS:
        raise ConfigError(f"input is larger than {MAX_INPUT_CHARS} characters", file=name,
                          cause="limit-exceeded", fix="export only the relevant namespace (-n)")
    loader = yaml.CSafeLoader(text)
    out: list[NetworkPolicy] = []
    try:
        while loader.check_node():
            node = loader.get_node()
            if node is None:
                break
            lines: dict[_YPath, int] = {}
            # Aliases are shared, not copied, but walking the policies visits every use: bound
            # the expanded size so an alias bomb cannot stall the doctor.
            if _index(node, (), lines, {}, name) > MAX_NODES:
                raise ConfigError(f"document expands to more than {MAX_NODES} YAML nodes",
                                  file=name, line=node.start_mark.line + 1,
                                  cause="limit-exceeded",
                                  fix="export only the relevant namespace (-n), without aliases")
            ctx = _Ctx(name, lines)
            out += _document(loader.construct_document(node), ctx, default_namespace)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        raise ConfigError(f"not valid YAML: {exc.problem or exc.context}", file=name,
                          line=mark.line + 1 if mark else None,
                          fix="re-export with `kubectl get networkpolicy -A -o yaml`") from None
    except (yaml.YAMLError, RecursionError) as exc:
        raise ConfigError(f"not valid YAML: {type(exc).__name__}: {exc}", file=name,
                          fix="re-export with `kubectl get networkpolicy -A -o yaml`") from None
    finally:
        loader.dispose()
    return out


def _document(data: Any, ctx: _Ctx, default_ns: str) -> list[NetworkPolicy]:
    if data is None:
        return []
    if not isinstance(data, dict):
        ctx.fail((), f"expected a NetworkPolicy or a List of them, got a {type(data).__name__}")
    if data.get("kind") in ("List", "NetworkPolicyList"):
        items = data.get("items") or []
        if not isinstance(items, list):
            ctx.fail(("items",), "items must be a list")
        # NetworkPolicyList items straight from the API carry no kind; a generic List's do.
        typed = data["kind"] == "NetworkPolicyList"
        return [_policy(it, ctx, ("items", i), default_ns, typed) for i, it in enumerate(items)]
    return [_policy(data, ctx, (), default_ns, False)]


def _get(obj: Mapping[str, Any], key: str, kind: type, ctx: _Ctx, path: _YPath,
         required: bool = False) -> Any:
    value = obj.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, kind) or isinstance(value, bool) != (kind is bool):
        want = {dict: "a mapping", list: "a list", str: "a string", int: "an integer"}[kind]
        ctx.fail((*path, key), f"must be {want}, got {value!r}" if value is not None
                 else "is required")
    return value


def _policy(obj: Any, ctx: _Ctx, path: _YPath, default_ns: str, kind_optional: bool
            ) -> NetworkPolicy:
    if not isinstance(obj, dict):
        ctx.fail(path, f"expected a NetworkPolicy mapping, got {obj!r}")
    kind = obj.get("kind")
    if kind != "NetworkPolicy" and not (kind is None and kind_optional):
        ctx.fail((*path, "kind"), f"kind {kind!r} is not NetworkPolicy; only networking.k8s.io/v1 "
                 "NetworkPolicy objects are evaluated",
                 "export only NetworkPolicies: `kubectl get networkpolicy -A -o yaml`")
    api = obj.get("apiVersion")
    if api is not None and api not in _API_VERSIONS:
        ctx.fail((*path, "apiVersion"), f"apiVersion {api!r} is not {_API_VERSIONS[0]}")
    meta = _get(obj, "metadata", dict, ctx, path, required=True)
    name = _get(meta, "name", str, ctx, (*path, "metadata"), required=True)
    namespace = _get(meta, "namespace", str, ctx, (*path, "metadata")) or default_ns
    spec_path = (*path, "spec")
    spec = _get(obj, "spec", dict, ctx, path) or {}
    types = tuple(_get(spec, "policyTypes", list, ctx, spec_path) or ())
    for i, t in enumerate(types):
        if t not in ("Ingress", "Egress"):
            ctx.fail((*spec_path, "policyTypes", i), f"policyType {t!r} is not Ingress or Egress")
    raw_egress = _get(spec, "egress", list, ctx, spec_path)
    egress = None if raw_egress is None else tuple(
        _rule(r, ctx, (*spec_path, "egress", i)) for i, r in enumerate(raw_egress))
    return NetworkPolicy(namespace, name,
                         _selector(spec.get("podSelector"), ctx, (*spec_path, "podSelector")),
                         types, egress, f"{ctx.file}:{ctx.line(path)}")


def _selector(raw: Any, ctx: _Ctx, path: _YPath) -> LabelSelector:
    if raw is None:
        return LabelSelector()
    if not isinstance(raw, dict):
        ctx.fail(path, f"a label selector must be a mapping, got {raw!r}")
    labels = _get(raw, "matchLabels", dict, ctx, path) or {}
    for k, v in labels.items():
        if not isinstance(k, str) or not isinstance(v, str):
            ctx.fail((*path, "matchLabels", str(k)), f"label {k!r}: {v!r} must be strings",
                     "quote label values in YAML, e.g. version: \"1\"")
    reqs = []
    for i, e in enumerate(_get(raw, "matchExpressions", list, ctx, path) or ()):
        epath = (*path, "matchExpressions", i)
        if not isinstance(e, dict):
            ctx.fail(epath, "a matchExpressions entry must be a mapping")
        key = _get(e, "key", str, ctx, epath, required=True)
        op = _get(e, "operator", str, ctx, epath, required=True)
        values = _get(e, "values", list, ctx, epath) or []
        if op not in _OPERATORS:
            ctx.fail((*epath, "operator"), f"operator {op!r} is not one of {', '.join(_OPERATORS)}")
        if (op in ("In", "NotIn")) != bool(values) or not all(isinstance(v, str) for v in values):
            ctx.fail((*epath, "values"), f"operator {op} needs "
                     + ("a non-empty list of strings" if op in ("In", "NotIn") else "no values"))
        reqs.append(LabelRequirement(key, op, tuple(values)))
    return LabelSelector(tuple(labels.items()), tuple(reqs))


def _rule(raw: Any, ctx: _Ctx, path: _YPath) -> EgressRule:
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        ctx.fail(path, f"an egress rule must be a mapping, got {raw!r}")
    to = _get(raw, "to", list, ctx, path) or ()
    ports = _get(raw, "ports", list, ctx, path) or ()
    return EgressRule(tuple(_peer(p, ctx, (*path, "to", i)) for i, p in enumerate(to)),
                      tuple(_port(p, ctx, (*path, "ports", i)) for i, p in enumerate(ports)))


def _peer(raw: Any, ctx: _Ctx, path: _YPath) -> PolicyPeer:
    if not isinstance(raw, dict):
        ctx.fail(path, f"a `to` entry must be a mapping, got {raw!r}")
    block = _get(raw, "ipBlock", dict, ctx, path)
    ns_sel, pod_sel = raw.get("namespaceSelector"), raw.get("podSelector")
    if block is None:
        if ns_sel is None and pod_sel is None:
            ctx.fail(path, "a peer needs ipBlock, namespaceSelector or podSelector")
        return PolicyPeer(None,
                          None if ns_sel is None else _selector(ns_sel, ctx,
                                                                (*path, "namespaceSelector")),
                          None if pod_sel is None else _selector(pod_sel, ctx,
                                                                 (*path, "podSelector")))
    if ns_sel is not None or pod_sel is not None:
        ctx.fail(path, "ipBlock cannot be combined with namespaceSelector or podSelector",
                 "split them into separate `to` entries")
    bpath = (*path, "ipBlock")
    cidr = _cidr(_get(block, "cidr", str, ctx, bpath, required=True), ctx, (*bpath, "cidr"))
    excepts = []
    for i, e in enumerate(_get(block, "except", list, ctx, bpath) or ()):
        net = _cidr(e, ctx, (*bpath, "except", i))
        if net.version != cidr.version or not net.subnet_of(cidr):  # type: ignore[arg-type]
            ctx.fail((*bpath, "except", i), f"except {net} is outside cidr {cidr}")
        excepts.append(net)
    return PolicyPeer(IPBlock(cidr, tuple(excepts)))


def _cidr(raw: Any, ctx: _Ctx, path: _YPath) -> IPNet:
    try:
        if not isinstance(raw, str) or "/" not in raw:
            raise ValueError
        return ipaddress.ip_network(raw.strip(), strict=False)
    except ValueError:
        ctx.fail(path, f"{raw!r} is not a CIDR", "write an address with a prefix length, e.g. "
                 "203.0.113.10/32 or 2001:db8::/64")


def _port(raw: Any, ctx: _Ctx, path: _YPath) -> PolicyPort:
    if not isinstance(raw, dict):
        ctx.fail(path, f"a ports entry must be a mapping, got {raw!r}")
    protocol = raw.get("protocol") or "TCP"  # the API defaults a missing protocol to TCP
    if protocol not in PROTOCOLS:
        ctx.fail((*path, "protocol"), f"protocol {protocol!r} is not one of {', '.join(PROTOCOLS)}")
    port, end = raw.get("port"), _get(raw, "endPort", int, ctx, path)
    if isinstance(port, bool) or not isinstance(port, int | str | None):
        ctx.fail((*path, "port"), f"port {port!r} must be a number or a port name")
    if isinstance(port, int) and not 1 <= port <= 65535:
        ctx.fail((*path, "port"), f"port {port} is outside 1-65535")
    if isinstance(port, str) and not any(c.isalpha() for c in port):
        ctx.fail((*path, "port"), f"port name {port!r} has no letter", "write a number unquoted")
    if end is not None and not (isinstance(port, int) and port <= end <= 65535):
        ctx.fail((*path, "endPort"), f"endPort {end} needs a numeric port <= endPort <= 65535")
    return PolicyPort(protocol, port, end)
