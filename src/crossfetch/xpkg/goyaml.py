"""YAML as Crossplane's package builder writes it: Kubernetes' JSON-then-YAML serializer.

``crossplane xpkg build`` decodes every object of the package into its Go type and encodes it
with ``k8s.io/apimachinery/pkg/runtime/serializer/json`` in YAML mode (crossplane-runtime
``pkg/xpkg/build.go``, ``encode``). That is ``json.Marshal`` followed by
``sigs.k8s.io/yaml.JSONToYAML``, which re-reads the JSON with go-yaml v2 and marshals it again.
The visible consequences, reproduced here so the layer (its diffID) comes out byte-identical:

- map keys sorted in go-yaml v2's order (``sorter.go``: digit runs compare as numbers, a
  non-letter sorts before a letter);
- block style, sequences not indented under their key, lines folded at 80 columns;
- a string that contains a newline is a literal block (``|``); a string that go-yaml would
  read back as another type (``"true"``, ``"1"``, ``""``, ``"y"``) is double-quoted;
- numbers as JSON gave them: ``1.0`` is ``1``.

The emitter itself is PyYAML's, a port of the same libyaml go-yaml v2 carries.
"""

from __future__ import annotations

import functools
import math
import re
from typing import Any

import yaml

# Strings go-yaml v2 (resolve.go) reads as something other than a string: they are quoted.
_GO_SPECIAL = frozenset((
    "y", "Y", "yes", "Yes", "YES", "on", "On", "ON", "true", "True", "TRUE",
    "n", "N", "no", "No", "NO", "off", "Off", "OFF", "false", "False", "FALSE",
    "null", "Null", "NULL", "~", "<<", ".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF",
    "-.inf", "-.Inf", "-.INF", ".nan", ".NaN", ".NAN"))
_GO_INT = re.compile(r"^[-+]?(0b[01_]+|0x[0-9a-fA-F_]+|0o?[0-7_]+|[0-9][0-9_]*)$")
_GO_FLOAT = re.compile(r"^[-+]?(\.[0-9]+|[0-9][0-9_]*(\.[0-9_]*)?)([eE][-+]?[0-9]+)?$")
_GO_TIMESTAMP = re.compile(r"^[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}"
                           r"(?:[Tt ][0-9]{1,2}:[0-9]{1,2}:[0-9]{1,2}"
                           r"(?:\.[0-9]*)?(?:Z|[-+][0-9]{1,2}(?::[0-9]{2})?)?)?$")
_BASE60 = re.compile(r"^[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?$")


def _go_reads_as_other(s: str) -> bool:
    """True when go-yaml v2 would resolve the plain scalar ``s`` to a non-string."""
    if s == "" or s in _GO_SPECIAL:
        return True
    plain = s.replace("_", "")
    return bool(_GO_INT.match(s) or _GO_FLOAT.match(plain) or _BASE60.match(s)
                or _GO_TIMESTAMP.match(s))


def _go_key_less(a: str, b: str) -> bool:
    """go-yaml v2's ``keyList.Less`` for two string keys."""
    ar, br = a, b
    for i in range(min(len(ar), len(br))):
        if ar[i] == br[i]:
            continue
        al, bl = ar[i].isalpha(), br[i].isalpha()
        if al and bl:
            return ar[i] < br[i]
        if al or bl:
            return bl
        an = bn = 0
        if ar[i] == "0" or br[i] == "0":
            j = i - 1
            while j >= 0 and ar[j].isdigit():
                if ar[j] != "0":
                    an = bn = 1
                    break
                j -= 1
        ai = i
        while ai < len(ar) and ar[ai].isdigit():
            an = an * 10 + int(ar[ai])
            ai += 1
        bi = i
        while bi < len(br) and br[bi].isdigit():
            bn = bn * 10 + int(br[bi])
            bi += 1
        if an != bn:
            return an < bn
        if ai != bi:
            return ai < bi
        return ar[i] < br[i]
    return len(ar) < len(br)


def _cmp(a: str, b: str) -> int:
    return -1 if _go_key_less(a, b) else (1 if _go_key_less(b, a) else 0)


_KEY = functools.cmp_to_key(_cmp)


_ESCAPES = {"\0": "0", "\a": "a", "\b": "b", "\t": "t", "\n": "n", "\v": "v", "\f": "f",
            "\r": "r", "\x1b": "e", '"': '"', "\\": "\\", "\x85": "N", "\xa0": "_",
            "\u2028": "L", "\u2029": "P"}


def _printable(ch: str) -> bool:
    o = ord(ch)
    return (o == 0x0A or 0x20 <= o <= 0x7E or o == 0x85 or 0xA0 <= o <= 0xD7FF
            or (0xE000 <= o <= 0xFFFD and o != 0xFEFF) or 0x10000 <= o <= 0x10FFFF)


class _Dumper(yaml.SafeDumper):
    """SafeDumper with go-yaml v2's scalar styles, key order and double-quoted folding."""

    def ignore_aliases(self, data: Any) -> bool:
        """No anchors: Go writes a shared value out in full each time."""
        return True

    def _put(self, data: str) -> None:
        self.column += len(data)
        self.stream.write(data.encode(self.encoding) if self.encoding else data)

    def write_double_quoted(self, text: str, split: bool = True) -> None:
        """libyaml's ``yaml_emitter_write_double_quoted`` (go-yaml v2 ``emitterc.go``): a long
        line folds *at* a space, which the fold stands for; PyYAML folds differently."""
        self.write_indicator('"', True)
        spaces = False
        n = len(text)
        for i, ch in enumerate(text):
            if (not _printable(ch) or ch == "\ufeff" or ch in "\n\r\x85\u2028\u2029\"\\"):
                o = ord(ch)
                if ch in _ESCAPES:
                    self._put("\\" + _ESCAPES[ch])
                elif o <= 0xFF:
                    self._put(f"\\x{o:02X}")
                elif o <= 0xFFFF:
                    self._put(f"\\u{o:04X}")
                else:
                    self._put(f"\\U{o:08X}")
                spaces = False
            elif ch == " ":
                if split and not spaces and self.column > self.best_width and 0 < i < n - 1:
                    self.write_indent()
                    self.whitespace = self.indention = True
                    if text[i + 1] == " ":
                        self._put("\\")
                else:
                    self._put(" ")
                spaces = True
            else:
                self._put(ch)
                spaces = False
        self.write_indicator('"', False)


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    if "\n" in value:
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|")
    if _go_reads_as_other(value):
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style='"')
    node = yaml.ScalarNode("tag:yaml.org,2002:str", value, style=None)
    return node


def _map(dumper: yaml.SafeDumper, value: dict[Any, Any]) -> yaml.MappingNode:
    items = sorted(((str(k), v) for k, v in value.items()), key=lambda kv: _KEY(kv[0]))
    return dumper.represent_mapping("tag:yaml.org,2002:map", items)


def _float(dumper: yaml.SafeDumper, value: float) -> yaml.ScalarNode:
    # encoding/json writes an integral float without a fraction; go-yaml then reads an int.
    if math.isfinite(value) and value.is_integer() and abs(value) < 1e21:
        return dumper.represent_int(int(value))
    text = repr(value).replace("e+0", "e+").replace("e-0", "e-")
    return dumper.represent_scalar("tag:yaml.org,2002:float", text)


_Dumper.add_representer(str, _str)
_Dumper.add_representer(dict, _map)
_Dumper.add_representer(float, _float)


class _Resolver(yaml.resolver.Resolver):
    """PyYAML's YAML 1.1 resolver, less the implicit resolvers go-yaml never applies to plain
    scalars of a plain mapping (timestamps stay strings, as they do through JSON)."""


_Resolver.yaml_implicit_resolvers = {
    k: [(tag, rx) for tag, rx in v if tag != "tag:yaml.org,2002:timestamp"]
    for k, v in yaml.resolver.Resolver.yaml_implicit_resolvers.items()}
_Dumper.yaml_implicit_resolvers = _Resolver.yaml_implicit_resolvers


class _Loader(yaml.SafeLoader):
    """Safe loader that keeps timestamps as strings (as go-yaml into ``interface{}`` does)."""


_Loader.yaml_implicit_resolvers = _Resolver.yaml_implicit_resolvers


def dump(obj: Any) -> str:
    """One object as the Kubernetes YAML serializer writes it (no ``---``, ends in a newline)."""
    return yaml.dump(obj, Dumper=_Dumper, default_flow_style=False, allow_unicode=True,
                     width=80, indent=2, sort_keys=False)


def loader() -> type[yaml.SafeLoader]:
    """The safe loader matching :func:`dump`'s view of scalars."""
    return _Loader
