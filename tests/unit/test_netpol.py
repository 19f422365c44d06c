"""NetworkPolicy egress evaluation (crossfetch.doctor.netpol).

Doc sources quoted below (Kubernetes API reference, networking.k8s.io/v1, and the concept page
https://kubernetes.io/docs/concepts/services-networking/network-policies/):
  [spec.egress]  "Outgoing traffic is allowed if there are no NetworkPolicies selecting the pod
                 (...) OR if the traffic matches at least one egress rule across all of the
                 NetworkPolicy objects whose podSelector matches the pod. If this field is empty
                 then this NetworkPolicy limits all outgoing traffic"
  [policyTypes]  "If this field is not specified, it will default based on the existence of
                 ingress or egress rules; policies that contain an egress section are assumed to
                 affect egress, and all policies (...) are assumed to affect ingress." and "if you
                 want to write a policy that specifies that no egress is allowed, you must specify
                 a policyTypes value that include "Egress" (since such a policy would not include
                 an egress section and would otherwise default to just [ "Ingress" ])."
                 (API server defaulting adds Egress only when len(spec.egress) != 0.)
  [rule.to]      "If this field is empty or missing, this rule matches all destinations"
  [rule.ports]   "If this field is empty or missing, this rule matches all ports"
  [port]         "This can either be a numerical or named port on a pod."
  [protocol]     "If not specified, this field defaults to TCP."
  [endPort]      "the range of ports from port to endPort if set, inclusive, should be allowed"
  [except]       "except is a slice of CIDRs that should not be included within an IPBlock"
  [podSelector]  "An empty podSelector selects all pods in this namespace."
  [selector]     LabelSelector: "The result of matchLabels and matchExpressions are ANDed. An
                 empty label selector matches all objects."; Labels concept page: `notin` also
                 selects objects that have no label with that key.
  [peer]         namespaceSelector/podSelector "selects Pods" (in selected namespaces, or "in
                 the policy's own Namespace") - they name pods, never arbitrary addresses.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from crossfetch.doctor.netpol import (
    NetworkPolicy,
    Verdict,
    evaluate_dns,
    evaluate_egress,
    load_policies,
)
from crossfetch.errors import ConfigError, UsageError

NS = "crossplane-system"
REG = "203.0.113.10"
CP = {"matchLabels": {"app": "crossplane"}}


def pol(name: str, spec: dict[str, Any], ns: str = NS) -> dict[str, Any]:
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": name, "namespace": ns}, "spec": spec}


def to_ip(cidr: str, *excepts: str) -> dict[str, Any]:
    block: dict[str, Any] = {"cidr": cidr}
    if excepts:
        block["except"] = list(excepts)
    return {"ipBlock": block}


DENY_ALL = pol("default-deny-egress", {"podSelector": {}, "policyTypes": ["Egress"]})


def allow(name: str, rule: dict[str, Any], selector: dict[str, Any] | None = None,
          types: list[str] | None = None, ns: str = NS) -> dict[str, Any]:
    spec: dict[str, Any] = {"podSelector": CP if selector is None else selector,
                            "egress": [rule]}
    if types is not None:
        spec["policyTypes"] = types
    return pol(name, spec, ns)


def render(objs: list[dict[str, Any]], form: str) -> str:
    if form == "List":
        return yaml.safe_dump({"apiVersion": "v1", "kind": "List", "items": objs,
                               "metadata": {"resourceVersion": ""}}, sort_keys=False)
    return yaml.safe_dump_all(objs, sort_keys=False) if objs else ""


@dataclass
class Case:
    id: str
    policies: list[dict[str, Any]]
    expect: Verdict
    addresses: list[str] = field(default_factory=lambda: [REG])
    port: int = 443
    protocol: str = "TCP"
    allowed_by: str | None = None
    reason_has: str | None = None


TCP443 = {"protocol": "TCP", "port": 443}
CASES = [
    # [spec.egress] no policy selects the pod -> not isolated.
    Case("no-policies", [], Verdict.ALLOWED),
    Case("default-deny-egress", [DENY_ALL], Verdict.DENIED,
         reason_has=f"{NS}/default-deny-egress"),
    Case("exact-ip-and-port", [DENY_ALL, allow("allow-reg", {"to": [to_ip(f"{REG}/32")],
                                                             "ports": [TCP443]})],
         Verdict.ALLOWED, allowed_by=f"{NS}/allow-reg egress[0]"),
    Case("other-port-only", [allow("p80", {"to": [to_ip("0.0.0.0/0")],
                                           "ports": [{"protocol": "TCP", "port": 80}]})],
         Verdict.DENIED),
    # [except] the address sits in the carved-out /28.
    Case("except-carves-out", [allow("net", {"to": [to_ip("203.0.113.0/24", "203.0.113.0/28")]})],
         Verdict.DENIED),
    Case("except-elsewhere", [allow("net", {"to": [to_ip("203.0.113.0/24", "203.0.113.0/28")]})],
         Verdict.ALLOWED, addresses=["203.0.113.100"]),
    # [endPort] inclusive range.
    Case("endport-inside", [allow("r", {"ports": [{"port": 8000, "endPort": 9000}]})],
         Verdict.ALLOWED, port=8443),
    Case("endport-upper-edge", [allow("r", {"ports": [{"port": 8000, "endPort": 9000}]})],
         Verdict.ALLOWED, port=9000),
    Case("endport-outside", [allow("r", {"ports": [{"port": 8000, "endPort": 9000}]})],
         Verdict.DENIED, port=9001),
    Case("udp-rule-tcp-traffic", [allow("u", {"ports": [{"protocol": "UDP", "port": 443}]})],
         Verdict.DENIED),
    Case("udp-rule-udp-traffic", [allow("u", {"ports": [{"protocol": "UDP", "port": 443}]})],
         Verdict.ALLOWED, protocol="UDP"),
    # [protocol] omitted protocol means TCP.
    Case("protocol-defaults-tcp", [allow("d", {"ports": [{"port": 443}]})], Verdict.ALLOWED),
    # [spec.egress] union across policies: the second policy's rule allows it.
    Case("union-of-policies", [allow("a-internal", {"to": [to_ip("10.0.0.0/8")]}),
                               allow("b-registry", {"to": [to_ip(f"{REG}/32")]})],
         Verdict.ALLOWED, allowed_by=f"{NS}/b-registry egress[0]"),
    # [policyTypes] explicit Ingress only: the egress section is not enforced.
    Case("ingress-only-explicit", [allow("i", {"to": [to_ip("10.0.0.0/8")]}, types=["Ingress"])],
         Verdict.ALLOWED, reason_has="Ingress only"),
    # [policyTypes] omitted + no egress section -> just Ingress.
    Case("ingress-only-implied", [pol("i", {"podSelector": {}, "ingress": []})],
         Verdict.ALLOWED),
    # [policyTypes] omitted + an egress rule -> Egress implied, so the pod is isolated.
    Case("egress-implied-by-rules", [allow("e", {"to": [to_ip("10.0.0.0/8")]})],
         Verdict.DENIED),
    # [policyTypes] `egress: []` without policyTypes defaults to Ingress only.
    Case("empty-egress-without-types", [pol("e", {"podSelector": {}, "egress": []})],
         Verdict.ALLOWED),
    # [spec.egress] "If this field is empty then this NetworkPolicy limits all outgoing traffic".
    Case("empty-egress-with-types", [pol("e", {"podSelector": {}, "policyTypes": ["Egress"],
                                               "egress": []})], Verdict.DENIED),
    # [rule.to]+[rule.ports] `egress: [{}]` matches everything, and unions over the deny-all.
    Case("egress-empty-rule-allows-all", [DENY_ALL, pol("all", {"podSelector": {},
                                                                "policyTypes": ["Egress"],
                                                                "egress": [{}]})],
         Verdict.ALLOWED, port=5000, allowed_by=f"{NS}/all egress[0]"),
    # [podSelector] empty selector isolates every pod in the namespace (DENY_ALL relies on it);
    # a selector for other pods leaves ours alone.
    Case("podselector-other-pods", [pol("o", {"podSelector": {"matchLabels": {"app": "other"}},
                                              "policyTypes": ["Egress"]})], Verdict.ALLOWED),
    Case("other-namespace-ignored", [pol("d", {"podSelector": {}, "policyTypes": ["Egress"]},
                                         ns="default")], Verdict.ALLOWED),
    Case("expr-in-selects", [pol("d", {"podSelector": {"matchExpressions": [
        {"key": "app", "operator": "In", "values": ["crossplane", "rbac"]}]},
        "policyTypes": ["Egress"]})], Verdict.DENIED),
    # [selector] NotIn is satisfied by a pod without the key.
    Case("expr-notin-missing-key", [pol("d", {"podSelector": {"matchExpressions": [
        {"key": "tier", "operator": "NotIn", "values": ["web"]}]},
        "policyTypes": ["Egress"]})], Verdict.DENIED),
    Case("expr-exists-missing-key", [pol("d", {"podSelector": {"matchExpressions": [
        {"key": "tier", "operator": "Exists"}]}, "policyTypes": ["Egress"]})], Verdict.ALLOWED),
    Case("expr-doesnotexist", [pol("d", {"podSelector": {"matchExpressions": [
        {"key": "tier", "operator": "DoesNotExist"}]}, "policyTypes": ["Egress"]})],
         Verdict.DENIED),
    # [selector] matchLabels AND matchExpressions: contradictory -> selects nothing.
    Case("labels-and-expressions-anded", [pol("d", {"podSelector": {
        "matchLabels": {"app": "crossplane"},
        "matchExpressions": [{"key": "app", "operator": "NotIn", "values": ["crossplane"]}]},
        "policyTypes": ["Egress"]})], Verdict.ALLOWED),
    # [rule.ports] a `to` without ports allows every port to that destination.
    Case("to-without-ports", [allow("t", {"to": [to_ip("203.0.113.0/24")]})], Verdict.ALLOWED,
         port=5000),
    # [rule.to] ports without `to` allow that port to every destination.
    Case("ports-without-to", [allow("p", {"ports": [TCP443]})], Verdict.ALLOWED,
         addresses=["198.51.100.7"]),
    Case("ipv6-cidr", [allow("v6", {"to": [to_ip("2001:db8::/64")], "ports": [TCP443]})],
         Verdict.ALLOWED, addresses=["2001:db8::10"]),
    Case("ipv4-cidr-does-not-cover-ipv6", [allow("v4", {"to": [to_ip("0.0.0.0/0")]})],
         Verdict.DENIED, addresses=["2001:db8::10"]),
    # [port] a named port is resolved against the destination pod's container ports.
    Case("named-port", [allow("n", {"ports": [{"port": "https"}]})], Verdict.UNDECIDABLE,
         reason_has="named port 'https'"),
    Case("named-port-but-decisive-allow-elsewhere",
         [allow("n", {"ports": [{"port": "https"}]}), allow("num", {"ports": [TCP443]})],
         Verdict.ALLOWED, allowed_by=f"{NS}/num egress[0]"),
    # [peer] selector peers name pods; whether 203.0.113.10 is a pod is unknown.
    Case("namespaceselector-peer", [allow("ns", {"to": [{"namespaceSelector": {}}]})],
         Verdict.UNDECIDABLE, reason_has="selects pods, not addresses"),
    Case("podselector-peer", [allow("pods", {"to": [{"podSelector": {"matchLabels": {
        "app": "registry"}}}]})], Verdict.UNDECIDABLE),
    Case("selector-peer-plus-ipblock-in-same-rule",
         [allow("mix", {"to": [{"namespaceSelector": {}}, to_ip(f"{REG}/32")]})],
         Verdict.ALLOWED),
    Case("selector-peer-wrong-port", [allow("ns", {"to": [{"namespaceSelector": {}}],
                                                   "ports": [{"port": 80}]})], Verdict.DENIED),
    Case("several-addresses-all-allowed", [allow("net", {"to": [to_ip("203.0.113.0/24")]})],
         Verdict.ALLOWED, addresses=[REG, "203.0.113.11"]),
    Case("several-addresses-one-denied", [allow("one", {"to": [to_ip(f"{REG}/32")]})],
         Verdict.DENIED, addresses=[REG, "198.51.100.7"], reason_has="198.51.100.7 TCP/443"),
    # A definite denial outranks an undecidable address.
    Case("denied-outranks-undecidable", [allow("n", {"to": [to_ip(f"{REG}/32")],
                                                     "ports": [{"port": "https"}]})],
         Verdict.DENIED, addresses=[REG, "198.51.100.7"], reason_has="198.51.100.7"),
]


@pytest.mark.parametrize("form", ["List", "multi-doc"])
@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_egress_verdict(case: Case, form: str) -> None:
    policies = load_policies(render(case.policies, form), source="netpol.yaml")
    v = evaluate_egress(policies, namespace=NS, pod_labels={"app": "crossplane"},
                        addresses=case.addresses, port=case.port, protocol=case.protocol)
    assert v.verdict is case.expect, v.reason
    if case.allowed_by:
        assert v.allowed_by == case.allowed_by
    if case.reason_has:
        assert case.reason_has in v.reason
    if case.expect is Verdict.ALLOWED:
        assert v.fix is None
    else:
        # The fix is a real policy: applied next to the others, it makes the traffic allowed.
        fixed = evaluate_egress(policies + load_policies(v.fix or ""), namespace=NS,
                                pod_labels={"app": "crossplane"}, addresses=case.addresses,
                                port=case.port, protocol=case.protocol)
        assert fixed.verdict is Verdict.ALLOWED, fixed.reason
        assert fixed.allowed_by and "crossfetch-allow-registry" in fixed.allowed_by
    assert len(CASES) >= 25


def test_denial_names_isolating_policies_and_selecting_list() -> None:
    policies = load_policies(render([DENY_ALL, pol("ingress", {"podSelector": CP,
                                                               "policyTypes": ["Ingress"]}),
                                     pol("elsewhere", {"podSelector": {}}, ns="default")],
                                    "List"))
    v = evaluate_egress(policies, addresses=[REG], port=443)
    assert v.verdict is Verdict.DENIED
    assert v.selecting == [f"{NS}/default-deny-egress", f"{NS}/ingress"]
    assert v.isolating == [f"{NS}/default-deny-egress"]
    assert v.allowed_by is None
    assert f"{REG} TCP/443 is denied" in v.reason
    fix = yaml.safe_load(v.fix or "")
    assert fix["metadata"] == {"name": "crossfetch-allow-registry-tcp-443", "namespace": NS}
    assert fix["spec"] == {"podSelector": CP, "policyTypes": ["Egress"], "egress": [
        {"to": [{"ipBlock": {"cidr": f"{REG}/32"}}], "ports": [TCP443]}]}
    json.dumps(v.to_dict())  # JSON-ready for --output json
    assert v.to_dict()["targets"][0] == {
        "address": REG, "destination": REG, "protocol": "TCP", "port": 443,
        "verdict": "denied", "allowedBy": None, "undecided": []}


def test_ipv6_fix_uses_128_prefix() -> None:
    v = evaluate_egress(load_policies(render([DENY_ALL], "List")), addresses=["2001:db8::10"],
                        port=5000)
    assert "cidr: 2001:db8::10/128" in (v.fix or "")


def test_unknown_address_only_decided_by_rules_matching_any_destination() -> None:
    policies = load_policies(render([allow("p", {"to": [to_ip("10.0.0.0/8")]})], "List"))
    v = evaluate_egress(policies, addresses=[], port=443)
    assert v.verdict is Verdict.UNDECIDABLE and "address" in v.reason
    policies += load_policies(render([allow("any", {"ports": [TCP443]})], "List"))
    assert evaluate_egress(policies, addresses=[], port=443).verdict is Verdict.ALLOWED


def test_bad_arguments_are_usage_errors() -> None:
    with pytest.raises(UsageError, match="not an IP address") as exc:
        evaluate_egress([], addresses=["registry.example"], port=443)
    assert exc.value.exit_code == 2 and exc.value.fix
    with pytest.raises(UsageError, match="protocol"):
        evaluate_egress([], addresses=[REG], port=443, protocol="ICMP")
    with pytest.raises(UsageError, match="port"):
        evaluate_egress([], addresses=[REG], port=0)


def test_allowed_by_is_only_set_when_everything_is_allowed() -> None:
    policies = load_policies(render([allow("one", {"to": [to_ip(f"{REG}/32")]})], "List"))
    v = evaluate_egress(policies, addresses=[REG, "198.51.100.7"], port=443)
    assert v.verdict is Verdict.DENIED and v.allowed_by is None
    assert [(t.address, t.verdict, t.allowed_by) for t in v.targets] == [
        (REG, Verdict.ALLOWED, f"{NS}/one egress[0]"), ("198.51.100.7", Verdict.DENIED, None)]


# --- DNS ----------------------------------------------------------------------------------

KUBE_DNS_PEER = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name":
                                                       "kube-system"}},
                 "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}
DNS_PORTS = [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]

DNS_CASES = [
    ("no-policies", [], None, Verdict.ALLOWED, None),
    ("deny-all", [DENY_ALL], None, Verdict.DENIED, "UDP/53"),
    ("kube-dns-rule", [DENY_ALL, allow("dns", {"to": [KUBE_DNS_PEER], "ports": DNS_PORTS})],
     None, Verdict.ALLOWED, None),
    # Only UDP allowed: TCP/53 (used for truncated answers) is still denied.
    ("udp-only", [allow("dns", {"to": [KUBE_DNS_PEER], "ports": DNS_PORTS[:1]})], None,
     Verdict.DENIED, "TCP/53"),
    ("wrong-namespace", [allow("dns", {"to": [{"namespaceSelector": {"matchLabels": {
        "kubernetes.io/metadata.name": "dns"}}}], "ports": DNS_PORTS})], None,
     Verdict.DENIED, None),
    # [peer] a podSelector alone means the policy's own namespace, not kube-system.
    ("podselector-alone-is-own-namespace", [allow("dns", {"to": [{"podSelector": {
        "matchLabels": {"k8s-app": "kube-dns"}}}]})], None, Verdict.DENIED, None),
    ("ipblock-without-server-address", [allow("dns", {"to": [to_ip("10.96.0.10/32")],
                                                      "ports": DNS_PORTS})], None,
     Verdict.UNDECIDABLE, "address"),
    ("ipblock-with-server-address", [allow("dns", {"to": [to_ip("10.96.0.0/12")],
                                                   "ports": DNS_PORTS})], ["10.96.0.10"],
     Verdict.ALLOWED, None),
]


@pytest.mark.parametrize(("policies", "dns_addresses", "expect", "reason_has"),
                         [c[1:] for c in DNS_CASES], ids=[c[0] for c in DNS_CASES])
def test_dns_verdict(policies: list[dict[str, Any]], dns_addresses: list[str] | None,
                     expect: Verdict, reason_has: str | None) -> None:
    loaded = load_policies(render(policies, "multi-doc"))
    v = evaluate_dns(loaded, dns_addresses=dns_addresses)
    assert v.verdict is expect, v.reason
    if reason_has:
        assert reason_has in v.reason
    if expect is not Verdict.ALLOWED:
        fixed = evaluate_dns(loaded + load_policies(v.fix or ""), dns_addresses=dns_addresses)
        assert fixed.verdict is Verdict.ALLOWED, fixed.reason


def test_dns_fix_is_the_kube_dns_rule() -> None:
    v = evaluate_dns(load_policies(render([DENY_ALL], "List")))
    fix = yaml.safe_load(v.fix or "")
    assert fix["metadata"] == {"name": "crossfetch-allow-dns", "namespace": NS}
    assert fix["spec"]["podSelector"] == CP
    assert fix["spec"]["egress"] == [{"to": [KUBE_DNS_PEER], "ports": DNS_PORTS}]


def test_registry_and_dns_are_separate_verdicts() -> None:
    policies = load_policies(render([allow("reg", {"to": [to_ip(f"{REG}/32")],
                                                   "ports": [TCP443]})], "List"))
    assert evaluate_egress(policies, addresses=[REG], port=443).verdict is Verdict.ALLOWED
    dns = evaluate_dns(policies)
    assert dns.verdict is Verdict.DENIED and f"{NS}/reg" in dns.reason


# --- loading ------------------------------------------------------------------------------

TWO = [DENY_ALL, allow("reg", {"to": [to_ip(f"{REG}/32")], "ports": [TCP443]})]


def _summary(ps: list[NetworkPolicy]) -> list[tuple[str, tuple[str, ...], int]]:
    return [(p.key, p.effective_policy_types, len(p.egress or ())) for p in ps]


def test_list_multidoc_typed_list_single_object_and_json_agree(tmp_path: Path) -> None:
    expected = [(f"{NS}/default-deny-egress", ("Egress",), 0),
                (f"{NS}/reg", ("Ingress", "Egress"), 1)]
    assert _summary(load_policies(render(TWO, "List"))) == expected
    assert _summary(load_policies(render(TWO, "multi-doc"))) == expected
    # A NetworkPolicyList straight from the API: items carry no kind/apiVersion.
    bare = [{k: v for k, v in o.items() if k not in ("kind", "apiVersion")} for o in TWO]
    typed = {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicyList", "items": bare}
    assert _summary(load_policies(yaml.safe_dump(typed))) == expected
    assert _summary(load_policies(json.dumps(typed, indent=4))) == expected  # -o json
    assert _summary(load_policies(json.dumps(TWO[1]))) == expected[1:]  # one-line JSON object
    path = tmp_path / "netpol.yaml"
    path.write_text(render(TWO, "List"))
    assert _summary(load_policies(path)) == expected
    assert _summary(load_policies(str(path))) == expected


def test_empty_inputs_and_default_namespace() -> None:
    assert load_policies("") == []
    assert load_policies("apiVersion: v1\nkind: List\nitems: []\n") == []
    assert load_policies("---\n---\n") == []
    obj = {k: v for k, v in DENY_ALL.items()}
    obj["metadata"] = {"name": "x"}
    (p,) = load_policies(yaml.safe_dump(obj), default_namespace="team-a")
    assert p.namespace == "team-a" and p.source == "<input>:1"


MALFORMED = [
    ("yaml-syntax", "apiVersion: v1\nkind: List\nitems:\n- metadata: {name: a\n  spec: {}\n", 5,
     "not valid YAML"),
    ("bad-cidr", render([allow("a", {"to": [to_ip("203.0.113.10")]})], "List"), None,
     "is not a CIDR"),
    ("except-outside-cidr", render([allow("a", {"to": [to_ip("10.0.0.0/8", "11.0.0.0/8")]})],
                                   "List"), None, "outside cidr"),
    ("endport-without-port", render([allow("a", {"ports": [{"endPort": 90}]})], "List"), None,
     "endPort"),
    ("named-endport", render([allow("a", {"ports": [{"port": "http", "endPort": 90}]})], "List"),
     None, "endPort"),
    ("bad-policytype", render([pol("a", {"podSelector": {}, "policyTypes": ["Egres"]})], "List"),
     None, "'Egres'"),
    ("bad-operator", render([pol("a", {"podSelector": {"matchExpressions": [
        {"key": "a", "operator": "Equals", "values": ["b"]}]}})], "List"), None, "'Equals'"),
    ("in-without-values", render([pol("a", {"podSelector": {"matchExpressions": [
        {"key": "a", "operator": "In"}]}})], "List"), None, "non-empty"),
    ("non-string-label", "kind: NetworkPolicy\nmetadata: {name: a}\nspec:\n  podSelector:\n"
     "    matchLabels: {version: 1}\n", 5, "must be strings"),
    ("wrong-kind", "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {name: a}\n",
     2, "not NetworkPolicy"),
    ("missing-name", "kind: NetworkPolicy\nmetadata: {namespace: a}\n", 2, "is required"),
    ("lowercase-protocol", render([allow("a", {"ports": [{"protocol": "tcp", "port": 1}]})],
                                  "List"), None, "'tcp'"),
    ("ipblock-with-selector", render([allow("a", {"to": [{**to_ip("10.0.0.0/8"),
                                                          "podSelector": {}}]})], "List"),
     None, "cannot be combined"),
    ("scalar-document", "just a string\n", 1, "got a str"),
    ("impossible-date", "kind: NetworkPolicy\nmetadata: {name: a, creationTimestamp: 2024-13-01}\n",
     1, "not valid YAML"),
    ("recursive-alias", "kind: List\nitems: &i\n- *i\n", 2, "recursive YAML alias"),
    ("alias-bomb", "".join(f"l{n}: &l{n} [{', '.join([f'*l{n - 1}' if n else 'x'] * 10)}]\n"
                           for n in range(8)), 1, "more than"),
]


@pytest.mark.parametrize(("text", "line", "message"), [m[1:] for m in MALFORMED],
                         ids=[m[0] for m in MALFORMED])
def test_malformed_input_is_config_error_with_location(text: str, line: int | None,
                                                       message: str) -> None:
    with pytest.raises(ConfigError) as exc:
        load_policies(text, source="netpol.yaml")
    err = exc.value
    assert err.exit_code == 2 and err.file == "netpol.yaml" and err.fix
    assert message in str(err)
    assert err.line is not None
    if line is not None:
        assert err.line == line
    assert str(err).startswith(f"netpol.yaml:{err.line}: ")


def test_semantic_error_line_points_at_the_field() -> None:
    text = render([DENY_ALL, allow("a", {"to": [to_ip("10.0.0.0/8")],
                                         "ports": [{"port": 70000}]})], "List")
    with pytest.raises(ConfigError, match=r"items\[1\]\.spec\.egress\[0\]\.ports\[0\]\.port") as e:
        load_policies(text, source="np.yaml")
    assert text.splitlines()[(e.value.line or 0) - 1].strip() == "- port: 70000"


def test_aliases_are_expanded() -> None:
    # PyYAML writes shared objects as anchors/aliases; they mean the same as copies.
    text = "kind: List\nitems:\n- &p {kind: NetworkPolicy, metadata: {name: a},\n" \
           "  spec: {policyTypes: [Egress]}}\n- *p\n"
    assert [p.key for p in load_policies(text)] == ["default/a", "default/a"]


def test_missing_file_is_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read") as exc:
        load_policies(tmp_path / "nope.yaml")
    assert exc.value.file == str(tmp_path / "nope.yaml")
