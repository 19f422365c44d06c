"""Kubernetes objects from ``--config`` files: ImageConfig, ConfigMap, Secret.

Files are multi-document YAML as a user would ``kubectl apply`` them (``List`` objects are
unpacked). Every object remembers its file and line so errors and ``explain`` can point at it.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any, NamedTuple

import yaml

from ..errors import ConfigError
from .model import Source, TLSMode

IMAGECONFIG_API = "pkg.crossplane.io/v1beta1"
"""The only version ImageConfig is served in (crossplane
``cluster/crds/pkg.crossplane.io_imageconfigs.yaml``: one version, v1beta1, from v1.18.0 to
0cbbdef on main)."""
MAX_CONFIG_BYTES = 16 * 1024 * 1024

# --- the schema the API server checks ------------------------------------------------------
# A dict is an object with these fields (others are unknown: a warning, as kubectl gives), a
# one-item list an array of that schema, a tuple an enum (case-sensitive), ANY anything.
ANY: Any = object()
_META = {k: ANY for k in (
    "name", "generateName", "namespace", "selfLink", "uid", "resourceVersion", "generation",
    "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "labels",
    "annotations", "ownerReferences", "finalizers", "managedFields")}
TLS_MODES = tuple(m.value for m in TLSMode)
SCHEMAS: dict[str, dict[str, Any]] = {
    # crossplane cluster/crds/pkg.crossplane.io_imageconfigs.yaml (0cbbdef), plus crossfetch's
    # registry.tls block (the design one-pager's field names) and
    # registry.authentication.allowCredentialsOverPlainHTTP.
    "ImageConfig": {"apiVersion": ANY, "kind": ANY, "metadata": _META, "spec": {
        "matchImages": [{"prefix": ANY, "type": ("Prefix",)}],
        "registry": {
            "authentication": {"pullSecretRef": {"name": ANY},
                               "allowCredentialsOverPlainHTTP": ANY},
            "tls": {"mode": TLS_MODES, "caBundleConfigMapRef": {"name": ANY, "key": ANY},
                    "clientCertSecretRef": {"name": ANY}},
        },
        "rewriteImage": {"prefix": ANY},
        "runtime": {"configRef": {"apiVersion": ANY, "kind": ANY, "name": ANY}},
        "verification": {"provider": ("Cosign",), "cosign": ANY},
    }},
    # Kubernetes core/v1 ConfigMap and Secret.
    "ConfigMap": {"apiVersion": ANY, "kind": ANY, "metadata": _META, "data": ANY,
                  "binaryData": ANY, "immutable": ANY},
    "Secret": {"apiVersion": ANY, "kind": ANY, "metadata": _META, "data": ANY,
               "stringData": ANY, "type": ANY, "immutable": ANY},
}
API_VERSIONS = {"ImageConfig": IMAGECONFIG_API, "ConfigMap": "v1", "Secret": "v1"}
_SKIP_VERIFY_NAMES = frozenset({"insecureSkipVerify", "insecure", "skipVerify", "skip_verify",
                                "insecure_skip_verify"})


class _LineDict(dict[str, Any]):
    line: int | None = None


class _LineLoader(yaml.CSafeLoader):
    """Safe C loader whose mappings remember their 1-based line."""

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        mapping = _LineDict(super().construct_mapping(node, deep=True))  # type: ignore[arg-type]
        mapping.line = node.start_mark.line + 1
        return mapping


_LineLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _LineLoader.construct_mapping
)


def line_of(obj: Any) -> int | None:
    return getattr(obj, "line", None)


class MatchImage(NamedTuple):
    prefix: str
    type: str = "Prefix"


class ImageConfig(NamedTuple):
    """``pkg.crossplane.io/v1beta1 ImageConfig`` plus crossfetch's ``tls`` block."""

    name: str
    match_images: tuple[MatchImage, ...]
    source: Source
    pull_secret: str | None = None
    tls_mode: TLSMode | None = None
    ca_ref: tuple[str, str] | None = None
    """(ConfigMap name, key) of ``caBundleConfigMapRef``."""
    client_cert_secret: str | None = None
    """crossfetch's addition: a ``kubernetes.io/tls`` Secret for mutual TLS."""
    allow_plain_http_credentials: bool | None = None
    """crossfetch's addition (``registry.authentication.allowCredentialsOverPlainHTTP``)."""
    rewrite_prefix: str | None = None
    raw: Mapping[str, Any] = MappingProxyType({})
    """The object as loaded."""

    def best_prefix(self, ref: str) -> str | None:
        """The longest of this object's prefixes that ``ref`` (as written) starts with."""
        hits = [m.prefix for m in self.match_images if ref.startswith(m.prefix)]
        return max(hits, key=len) if hits else None


class ConfigMap(NamedTuple):
    name: str
    namespace: str | None
    data: dict[str, str]
    source: Source


class Secret(NamedTuple):
    name: str
    namespace: str | None
    type: str
    data: dict[str, bytes]
    source: Source = Source("secret")

    def __repr__(self) -> str:
        return f"Secret(name={self.name!r}, type={self.type!r}, keys={sorted(self.data)})"


class ObjectSet:
    """Everything loaded from ``--config`` files. ``warnings`` are what kubectl would warn
    about (unknown fields), one line each, without ``Warning:``."""

    def __init__(self, image_configs: list[ImageConfig] | None = None,
                 config_maps: dict[str, ConfigMap] | None = None,
                 secrets: dict[str, Secret] | None = None,
                 warnings: list[str] | None = None) -> None:
        self.image_configs: list[ImageConfig] = [] if image_configs is None else image_configs
        self.config_maps: dict[str, ConfigMap] = {} if config_maps is None else config_maps
        self.secrets: dict[str, Secret] = {} if secrets is None else secrets
        self.warnings: list[str] = [] if warnings is None else warnings

    def __repr__(self) -> str:
        return (f"ObjectSet(image_configs={self.image_configs!r}, "
                f"config_maps={sorted(self.config_maps)}, secrets={sorted(self.secrets)})")

    def add_file(self, path: str | Path) -> None:
        """Load one multi-document YAML file."""
        p = Path(path)
        try:
            if p.stat().st_size > MAX_CONFIG_BYTES:
                raise ConfigError("file is larger than 16 MiB", file=str(p))
            text = p.read_text(encoding="utf-8")
        except OSError as e:
            raise ConfigError(f"cannot read config file: {e.strerror}", file=str(p),
                              fix="check the --config path") from None
        except UnicodeDecodeError as e:
            raise ConfigError(f"not a UTF-8 text file (byte {e.start} is "
                              f"{e.object[e.start:e.start + 1]!r})", file=str(p),
                              fix="--config takes YAML text (ImageConfig, ConfigMap and Secret "
                              "objects); save the file as UTF-8, or check the path") from None
        self.add_text(text, str(p))

    def add_text(self, text: str, filename: str = "<config>") -> None:
        try:
            docs = list(yaml.load_all(text, Loader=_LineLoader))
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None)
            raise ConfigError(f"invalid YAML: {getattr(e, 'problem', e)}", file=filename,
                              line=mark.line + 1 if mark else None,
                              fix="fix the YAML syntax at that line") from None
        for doc in docs:
            if doc is None:
                continue
            if not isinstance(doc, dict):
                raise ConfigError("each YAML document must be a Kubernetes object",
                                  file=filename, line=line_of(doc))
            if doc.get("kind") == "List" or str(doc.get("kind", "")).endswith("List"):
                for item in doc.get("items") or []:
                    self._add_object(item, filename)
            else:
                self._add_object(doc, filename)

    def _add_object(self, obj: Any, filename: str) -> None:
        if not isinstance(obj, dict):
            raise ConfigError("list item is not an object", file=filename)
        kind = obj.get("kind")
        api = str(obj.get("apiVersion") or "")
        line = line_of(obj)
        meta = obj.get("metadata") or {}
        name = meta.get("name") if isinstance(meta, dict) else None
        if kind not in ("ImageConfig", "ConfigMap", "Secret"):
            raise ConfigError(
                f"unsupported object kind {kind!r} ({api or 'no apiVersion'})", file=filename,
                line=line, fix="--config files hold ImageConfig, ConfigMap and Secret objects")
        if not name:
            raise ConfigError(f"{kind} has no metadata.name", file=filename, line=line)
        if api != API_VERSIONS[kind]:
            # kubectl: 'no matches for kind "ImageConfig" in version "pkg.crossplane.io/v1"'
            raise ConfigError(
                f'{kind} {name}: no matches for kind "{kind}" in version "{api}": {kind} is '
                f"served only as {API_VERSIONS[kind]}", file=filename, line=line,
                fix=f"write apiVersion: {API_VERSIONS[kind]}")
        self._check_schema(obj, kind, str(name), filename, line)
        source = Source(kind.lower(), f"{name} ({filename}:{line})" if line else name, None)
        ns = meta.get("namespace") if isinstance(meta, dict) else None
        if kind == "ImageConfig":
            if any(ic.name == name for ic in self.image_configs):
                raise ConfigError(f"ImageConfig {name!r} is defined twice", file=filename,
                                  line=line, fix="ImageConfig names are cluster-unique")
            self.image_configs.append(_parse_image_config(obj, name, filename, line, source))
        elif kind == "ConfigMap":
            data = obj.get("data") or {}
            if not isinstance(data, dict):
                raise ConfigError(f"ConfigMap {name} data is not a map", file=filename, line=line)
            self.config_maps[name] = ConfigMap(name, ns, {str(k): str(v) for k, v in data.items()},
                                               source)
        else:
            self.secrets[name] = _parse_secret(obj, name, ns, filename, line, source)


    def _check_schema(self, obj: dict[str, Any], kind: str, name: str, filename: str,
                      line: int | None) -> None:
        """Enum values as the API server checks them (an error), unknown fields as kubectl
        warns about them (:attr:`warnings`)."""
        for path, value, parent in _walk(obj, SCHEMAS[kind], ""):
            at = line_of(parent) or line
            where = f"{kind} {name}, {filename}" + (f":{at}" if at else "")
            if isinstance(value, _Unknown):
                leaf = path.rsplit(".", 1)[-1]
                hint = ""
                if kind == "ImageConfig" and path.startswith("spec.registry.tls.") and \
                        leaf in _SKIP_VERIFY_NAMES:
                    hint = (": crossfetch ignores it; for TLS without certificate verification "
                            "write spec.registry.tls.mode: Insecure")
                self.warnings.append(f'unknown field "{path}" ({where}){hint}')
                continue
            allowed = value.allowed
            shown = ", ".join(f'"{a}"' for a in allowed)
            right = next((a for a in allowed if a.lower() == str(value.value).lower()), None)
            fix = (f"write {path.rsplit('.', 1)[-1]}: {right} (enum values are case-sensitive)"
                   if right else f"use one of {shown}")
            raise ConfigError(f"{kind} {name}: {path}: Unsupported value: "
                              f"{_quote(value.value)}: supported values: {shown}",
                              file=filename, line=line_of(parent) or line, fix=fix)


class _Unknown(NamedTuple):
    value: Any


class _BadEnum(NamedTuple):
    value: Any
    allowed: tuple[str, ...]


def _quote(v: Any) -> str:
    import json

    return json.dumps(v, default=str)


def _walk(value: Any, schema: Any, path: str,
          parent: Any = None) -> list[tuple[str, Any, Any]]:
    """(path, _Unknown or _BadEnum, the map holding it) for every finding under ``value``.
    Type mismatches are left to the parsers, which name them with a fix."""
    if schema is ANY:
        return []
    if isinstance(schema, tuple):
        return [] if value in schema else [(path, _BadEnum(value, schema), parent)]
    if isinstance(schema, list):
        if not isinstance(value, list):
            return []
        return [f for i, item in enumerate(value)
                for f in _walk(item, schema[0], f"{path}[{i}]", parent)]
    if not isinstance(value, dict):
        return []
    out: list[tuple[str, Any, Any]] = []
    for k, v in value.items():
        sub = f"{path}.{k}" if path else str(k)
        if str(k) not in schema:
            out.append((sub, _Unknown(v), value))
        else:
            out += _walk(v, schema[str(k)], sub, value)
    return out


def _map(value: Any, what: str, filename: str, line: int | None) -> dict[str, Any]:
    """``value`` if it is a YAML map (absent counts as empty), else a :class:`ConfigError`:
    a scalar or list where a map belongs must not surface as a Python error."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(f"{what} must be a map, not {type(value).__name__}", file=filename,
                          line=line_of(value) or line, fix=f"write {what} as key: value pairs")
    return value


def _parse_secret(obj: dict[str, Any], name: str, ns: str | None, filename: str,
                  line: int | None, source: Source) -> Secret:
    data: dict[str, bytes] = {}
    for k, v in _map(obj.get("data"), f"Secret {name} data", filename, line).items():
        try:
            data[str(k)] = base64.b64decode(str(v), validate=True)
        except ValueError:
            raise ConfigError(f"Secret {name} key {k!r} is not valid base64", file=filename,
                              line=line, fix="values under data: are base64; use stringData: "
                              "for plain text") from None
    for k, v in _map(obj.get("stringData"), f"Secret {name} stringData", filename,
                     line).items():
        data[str(k)] = str(v).encode()
    return Secret(name, ns, str(obj.get("type", "Opaque")), data, source)


def _parse_image_config(obj: dict[str, Any], name: str, filename: str, line: int | None,
                        source: Source) -> ImageConfig:
    spec = obj.get("spec") or {}
    if not isinstance(spec, dict):
        raise ConfigError(f"ImageConfig {name}: spec is not a map", file=filename, line=line)
    where = f"ImageConfig {name} spec"
    matches: list[MatchImage] = []
    for m in spec.get("matchImages") or []:
        if not isinstance(m, dict) or not m.get("prefix"):
            raise ConfigError(f"ImageConfig {name}: each matchImages entry needs a prefix",
                              file=filename, line=line_of(m) or line)
        mtype = str(m.get("type", "Prefix"))
        if mtype != "Prefix":
            raise ConfigError(f"ImageConfig {name}: unknown matchImages type {mtype!r}",
                              file=filename, line=line_of(m) or line, fix="use type: Prefix")
        matches.append(MatchImage(str(m["prefix"]), mtype))
    if not matches:
        raise ConfigError(f"ImageConfig {name} has no matchImages", file=filename, line=line,
                          fix="add spec.matchImages: [{type: Prefix, prefix: registry.example/}]")
    registry = _map(spec.get("registry"), f"{where}.registry", filename, line)
    authn = _map(registry.get("authentication"), f"{where}.registry.authentication", filename,
                 line)
    tls = _map(registry.get("tls"), f"{where}.registry.tls", filename, line)
    mode = TLSMode(tls["mode"]) if "mode" in tls else None  # checked by _check_schema
    ca_ref = None
    if tls.get("caBundleConfigMapRef"):
        ref = tls["caBundleConfigMapRef"]
        if not isinstance(ref, dict) or not ref.get("name") or not ref.get("key"):
            raise ConfigError(f"ImageConfig {name}: caBundleConfigMapRef needs name and key",
                              file=filename, line=line_of(ref) or line)
        ca_ref = (str(ref["name"]), str(ref["key"]))
    client_secret = None
    if tls.get("clientCertSecretRef"):
        cref = tls["clientCertSecretRef"]
        if not isinstance(cref, dict) or not cref.get("name"):
            raise ConfigError(f"ImageConfig {name}: clientCertSecretRef needs a name",
                              file=filename, line=line_of(cref) or line)
        client_secret = str(cref["name"])
    pull_secret = None
    if authn.get("pullSecretRef"):
        secret_ref = _map(authn["pullSecretRef"],
                          f"{where}.registry.authentication.pullSecretRef", filename, line)
        pull_secret = str(secret_ref.get("name") or "") or None
    allow_http = authn.get("allowCredentialsOverPlainHTTP")
    rewrite_map = _map(spec.get("rewriteImage"), f"{where}.rewriteImage", filename, line)
    rewrite = rewrite_map.get("prefix")
    if "rewriteImage" in spec and not rewrite:
        raise ConfigError(f"ImageConfig {name}: spec.rewriteImage.prefix: Required value",
                          file=filename, line=line_of(rewrite_map) or line,
                          fix="give rewriteImage a prefix, e.g. rewriteImage: {prefix: "
                          "mirror.example/team/}, or drop rewriteImage")
    return ImageConfig(
        name=name,
        match_images=tuple(matches),
        source=source,
        pull_secret=pull_secret,
        tls_mode=mode,
        ca_ref=ca_ref,
        client_cert_secret=client_secret,
        allow_plain_http_credentials=bool(allow_http) if allow_http is not None else None,
        rewrite_prefix=str(rewrite) if rewrite else None,
        raw=dict(obj),
    )


def best_match(configs: list[ImageConfig], ref: str, has: str) -> tuple[ImageConfig, str] | None:
    """Among ``configs`` carrying setting ``has`` (an attribute name), the longest-prefix match
    for ``ref``. Ties go to the first name in sort order, so the choice is deterministic."""
    best: tuple[int, str, ImageConfig, str] | None = None
    for ic in configs:
        if getattr(ic, has) is None:
            continue
        prefix = ic.best_prefix(ref)
        if prefix is None:
            continue
        key = (-len(prefix), ic.name)
        if best is None or key < (best[0], best[1]):
            best = (key[0], key[1], ic, prefix)
    return (best[2], best[3]) if best else None
