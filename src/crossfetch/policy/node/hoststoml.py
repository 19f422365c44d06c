"""containerd registry host directories (``/etc/containerd/certs.d/<host>/hosts.toml``).

Per registry ``host[:port]`` the directory is looked up as ``<host>_<port>_``, then
``<host>:<port>``, then ``_default`` (containerd's order). In ``hosts.toml``:

- ``[host."URL"]`` tables are tried in file order, then ``server`` (the upstream; without
  ``server`` the registry itself). A table whose URL is the ``server`` configures the upstream.
- ``capabilities``, ``ca`` (paths relative to the file), ``client`` (a combined PEM file, or
  ``[cert, key]`` pairs), ``skip_verify``, ``header``, ``override_path``; top-level keys
  apply to ``server``.
- An ``http://`` URL with TLS settings (``ca``, ``client`` or ``skip_verify``) tries HTTPS
  first and falls back to HTTP only when the server answers in plain HTTP; without TLS
  settings it is plain HTTP.

A directory without ``hosts.toml`` is read like Docker's ``certs.d``: ``*.crt`` are CAs and
``*.cert`` / ``*.key`` are client pairs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ...errors import ConfigError
from ..model import (
    ALL_CAPABILITIES,
    PUSH,
    ClientCert,
    Endpoint,
    Source,
    TLSConfig,
    TLSMode,
)
from ._files import TomlLines, check_ca_file, check_client_pair, host_table_pattern, load_toml
from .certsd import read_certs_dir

KIND = "hosts.toml"
DEFAULT_DIR = "_default"
TLS_KEYS = ("ca", "client", "skip_verify")
FIX_CA = "give a path that exists: absolute, or relative to the hosts.toml directory"


def host_dir_names(registry: str) -> list[str]:
    """Directory names containerd tries for ``registry``, in order (``_default`` excluded)."""
    host, sep, port = registry.rpartition(":")
    # An IPv6 literal without port ("[::1]") has no port after its closing bracket.
    if sep and port.isdigit() and not registry.endswith("]"):
        return [f"{host}_{port}_", registry]
    return [registry]


def find_host_dir(roots: list[Path], registry: str) -> Path | None:
    """The first directory configuring ``registry`` under ``roots``: specific names in every
    root first, so a ``_default`` in one root never hides a specific directory in another."""
    for name in host_dir_names(registry):
        for root in roots:
            d = root / name
            if d.is_dir() and _configures(d):
                return d
    for root in roots:
        d = root / DEFAULT_DIR
        if d.is_dir() and _configures(d):
            return d
    return None


def _configures(d: Path) -> bool:
    return (d / "hosts.toml").is_file() or any(
        p.suffix in (".crt", ".cert", ".key") for p in d.iterdir())


def read_host_dir(d: Path, api_registry: str) -> list[Endpoint]:
    """Endpoints (mirrors in order, then the upstream) that directory ``d`` gives a registry
    whose API host is ``api_registry``."""
    hosts_file = d / "hosts.toml"
    if hosts_file.is_file():
        return parse_hosts_toml(hosts_file, api_registry)
    entry = read_certs_dir(d, KIND)
    assert entry is not None
    tls = TLSConfig(ca_files=entry.ca_files, client=entry.client, source=entry.source)
    return [Endpoint(url=f"https://{api_registry}", tls=tls, source=entry.source)]


def parse_hosts_toml(path: Path, api_registry: str) -> list[Endpoint]:
    """Parse one ``hosts.toml``; the upstream defaults to ``https://<api_registry>``."""
    text, data = load_toml(path, "containerd hosts.toml")
    lines = TomlLines(text)
    server_raw = data.get("server")
    if server_raw is not None and not isinstance(server_raw, str):
        raise ConfigError("server must be a string URL", file=str(path),
                          line=lines.key("server"), fix='write server = "https://host:port"')
    server = _normalise(server_raw, data, path, lines.key("server")) if server_raw \
        else f"https://{api_registry}"
    top = {k: v for k, v in data.items() if k != "host" and k != "server"}
    upstream_table: dict[str, Any] = top
    upstream_line = lines.key("server")
    upstream_header: int | None = None
    hosts = data.get("host") or {}
    if not isinstance(hosts, dict):
        raise ConfigError("host must be a table of [host.\"URL\"] tables", file=str(path),
                          fix='write [host."https://mirror:5000"]')
    endpoints: list[Endpoint] = []
    for url, table in hosts.items():
        header = lines.header(host_table_pattern(url))
        if not isinstance(table, dict):
            raise ConfigError(f'host."{url}" must be a table', file=str(path), line=header,
                              fix=f'write [host."{url}"] followed by its keys')
        if _normalise(url, table, path, header) == server:
            # The common "server + same [host]" layout: the table configures the upstream.
            upstream_table = {**top, **table}
            upstream_line, upstream_header = header, header
            continue
        endpoints.append(_endpoint(url, table, "mirror", path, lines, header))
    endpoints.append(_endpoint(server_raw or server, upstream_table, "upstream", path, lines,
                               upstream_header, line=upstream_line))
    return endpoints


def _normalise(url: str, table: dict[str, Any], path: Path, line: int | None) -> str:
    """``scheme://host[:port][/path]``: https by default, a trailing ``/v2`` dropped unless
    ``override_path`` (containerd adds it back)."""
    full = url if "://" in url else f"https://{url}"
    parts = urlsplit(full)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(f"{url!r} is not an http(s) URL", file=str(path), line=line,
                          fix='write hosts as "https://host:port" or "http://host:port"')
    p = parts.path.rstrip("/")
    if not table.get("override_path") and p.endswith("/v2"):
        p = p[:-3]
    return f"{parts.scheme}://{parts.netloc}{p}"


def _endpoint(url: str, table: dict[str, Any], role: str, path: Path, lines: TomlLines,
              header: int | None, line: int | None = None) -> Endpoint:
    def where(key: str) -> int | None:
        return lines.key(key, header) or header or line

    def src(key: str) -> Source:
        return Source(KIND, str(path), where(key))

    normal = _normalise(url, table, path, header or line)
    scheme, rest = normal.split("://", 1)
    caps = _capabilities(table.get("capabilities"), path, where("capabilities"))
    if role == "mirror":
        caps = caps - {PUSH}  # mirrors are for pulls only
    ca_files = tuple(check_ca_file(p, src("ca"), FIX_CA)
                     for p in _paths(table.get("ca"), "ca", path, where("ca")))
    client = _client(table.get("client"), path, src("client"))
    skip = table.get("skip_verify", False)
    if not isinstance(skip, bool):
        raise ConfigError("skip_verify must be true or false", file=str(path),
                          line=where("skip_verify"), fix="write skip_verify = true")
    has_tls = any(k in table for k in TLS_KEYS)
    mode = TLSMode.INSECURE if skip else TLSMode.STRICT
    fallback = False
    if scheme == "http":
        if has_tls:
            # containerd's rule: TLS first, plain HTTP only if the server speaks it.
            scheme, fallback = "https", True
        else:
            mode = TLSMode.DISABLED
    decided = Source(KIND, str(path), header or line)
    tls = TLSConfig(mode=mode, ca_files=ca_files, client=client, allow_http_fallback=fallback,
                    source=decided)
    override = table.get("override_path", False)
    if not isinstance(override, bool):
        raise ConfigError("override_path must be true or false", file=str(path),
                          line=where("override_path"))
    return Endpoint(url=f"{scheme}://{rest}", role=role, capabilities=caps, tls=tls,
                    headers=_headers(table.get("header"), path, where("header")),
                    override_path=override, source=decided)


def _capabilities(value: Any, path: Path, line: int | None) -> frozenset[str]:
    if value is None:
        return ALL_CAPABILITIES
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError("capabilities must be a list of strings", file=str(path), line=line,
                          fix='write capabilities = ["pull", "resolve"]')
    unknown = sorted(set(value) - ALL_CAPABILITIES)
    if unknown:
        raise ConfigError(f"unknown capabilities {unknown}", file=str(path), line=line,
                          fix="use pull, resolve and push")
    return frozenset(value)


def _paths(value: Any, key: str, path: Path, line: int | None) -> list[Path]:
    if value is None:
        return []
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(v, str) for v in items):
        raise ConfigError(f"{key} must be a path or a list of paths", file=str(path), line=line,
                          fix=f'write {key} = "/etc/containerd/certs.d/host/ca.crt"')
    return [_rel(v, path) for v in items]


def _rel(p: str, path: Path) -> Path:
    q = Path(p)
    return q if q.is_absolute() else path.parent / q


def _client(value: Any, path: Path, source: Source) -> ClientCert | None:
    """``client = "combined.pem"`` | ``["a.pem", ...]`` | ``[["cert", "key"], ...]``; the first
    pair is used (one client identity per endpoint)."""
    if value is None:
        return None
    first = value[0] if isinstance(value, list) and value else value
    if isinstance(first, str):
        return check_client_pair(_rel(first, path), None, source)
    if isinstance(first, list) and all(isinstance(v, str) for v in first):
        if len(first) == 1:
            return check_client_pair(_rel(first[0], path), None, source)
        if len(first) == 2:
            return check_client_pair(_rel(first[0], path), _rel(first[1], path), source)
    raise ConfigError("client must be a PEM path or a list of [cert, key] pairs",
                      file=str(path), line=source.line,
                      fix='write client = [["/path/client.cert", "/path/client.key"]]')


def _headers(value: Any, path: Path, line: int | None) -> tuple[tuple[str, str], ...]:
    if value is None:
        return ()
    if not isinstance(value, dict):
        raise ConfigError("header must be a table", file=str(path), line=line,
                          fix='write [host."URL".header] with x-name = "value"')
    out: list[tuple[str, str]] = []
    for k, v in value.items():
        if isinstance(v, str):
            out.append((str(k), v))
        elif isinstance(v, list) and all(isinstance(x, str) for x in v):
            out.append((str(k), ", ".join(v)))
        else:
            raise ConfigError(f"header {k} must be a string or a list of strings",
                              file=str(path), line=line)
    return tuple(out)
