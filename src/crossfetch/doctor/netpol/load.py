"""Parsing ``kubectl get networkpolicy -A -o yaml|json`` output, with line-numbered errors."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import yaml

from ...errors import ConfigError
from .model import (
    PROTOCOLS,
    EgressRule,
    IPBlock,
    IPNet,
    LabelRequirement,
    LabelSelector,
    NetworkPolicy,
    PolicyPeer,
    PolicyPort,
)

_YPath = tuple[str | int, ...]

MAX_INPUT_CHARS = 64 * 1024 * 1024
MAX_NODES = 2_000_000
_API_VERSIONS = ("networking.k8s.io/v1", "extensions/v1beta1")
_OPERATORS = ("In", "NotIn", "Exists", "DoesNotExist")


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
            try:
                data = loader.construct_document(node)
            except (ValueError, TypeError, AttributeError) as exc:
                # Outside YAMLError: a value YAML cannot build, e.g. the date 2024-13-01.
                raise ConfigError(f"not valid YAML: a value cannot be read ({exc})", file=name,
                                  line=node.start_mark.line + 1,
                                  fix="re-export with `kubectl get networkpolicy -A -o yaml`"
                                  ) from None
            out += _document(data, _Ctx(name, lines), default_namespace)
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
