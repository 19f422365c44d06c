"""``serve``: the TLS pull-through bridge (needs the ``crossfetch[serve]`` extra)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .common import (
    add_policy_options,
    bounded_int,
    echo,
    emit_json,
    handle_errors,
    new_parser,
)

if TYPE_CHECKING:
    from ..serve.config import ServeConfig

DEFAULT_HOSTNAMES = ["localhost", "127.0.0.1", "::1"]


def _xdg(var: str, fallback: str, leaf: str) -> Path:
    base = os.environ.get(var) or str(Path.home() / fallback)
    return Path(base) / "crossfetch" / leaf


def _config(ns: argparse.Namespace) -> ServeConfig:
    from ..errors import UsageError
    from ..serve.config import Route, ServeConfig, parse_duration, parse_listen, parse_size

    routes_text = list(ns.routes)
    if ns.routes_file:
        try:
            lines = Path(ns.routes_file).read_text().splitlines()
        except (OSError, UnicodeDecodeError) as e:
            raise UsageError(f"cannot read --routes-file {ns.routes_file}: {e}") from None
        routes_text += [x.strip() for x in lines if x.strip() and not x.strip().startswith("#")]
    if not routes_text:
        raise UsageError("no --route given: the bridge serves only configured prefixes",
                         fix="add --route PREFIX=UPSTREAM_PREFIX, e.g. "
                         "--route gitea/=gitea.cnoe.localtest.me:8443/giteaadmin/")
    routes = [Route.parse(r) for r in routes_text]
    prefixes = [r.prefix for r in routes]
    if len(set(prefixes)) != len(prefixes):
        raise UsageError("two routes have the same prefix", fix="give each route its own PREFIX")
    if bool(ns.tls_cert) != bool(ns.tls_key):
        raise UsageError("--tls-cert and --tls-key go together")
    host, port = parse_listen(ns.listen)
    return ServeConfig(
        routes=routes, listen_host=host, listen_port=port,
        hostnames=ns.hostnames or list(DEFAULT_HOSTNAMES),
        state_dir=Path(ns.state_dir) if ns.state_dir else _xdg("XDG_STATE_HOME",
                                                               ".local/state", "bridge"),
        cache_dir=Path(ns.cache_dir) if ns.cache_dir else _xdg("XDG_CACHE_HOME", ".cache",
                                                               "bridge"),
        tls_cert=Path(ns.tls_cert) if ns.tls_cert else None,
        tls_key=Path(ns.tls_key) if ns.tls_key else None,
        htpasswd=Path(ns.htpasswd) if ns.htpasswd else None,
        cache_max_size=parse_size(ns.cache_max_size) if ns.cache_max_size else None,
        tag_ttl=parse_duration(ns.tag_ttl),
        upstream_threads=ns.upstream_threads,
        workers=ns.workers,
        allow_redirect_hosts=tuple(ns.allow_redirect_hosts),
        shutdown_timeout=parse_duration(ns.shutdown_timeout),
    )


def _advertised(ns: argparse.Namespace, cfg: ServeConfig) -> str:
    if ns.advertise:
        return str(ns.advertise)
    host = cfg.hostnames[0]
    host = f"[{host}]" if ":" in host else host
    return host if cfg.listen_port == 443 else f"{host}:{cfg.listen_port}"


def _emit(ns: argparse.Namespace, cfg: ServeConfig) -> None:
    from ..errors import ConfigError
    from ..fixes.hoststoml import host_dir
    from ..fixes.names import CERTS_D
    from ..serve import emit
    from ..serve.certs import ensure_state

    if cfg.tls_cert:
        ca_file = Path(ns.tls_ca) if ns.tls_ca else cfg.tls_cert
    else:
        ca_file = ensure_state(cfg.state_dir, cfg.hostnames)[0]
    try:
        ca_pem = ca_file.read_text()
    except OSError as e:
        raise ConfigError(f"cannot read the CA to emit from {ca_file}: {e.strerror}",
                          fix="pass --tls-ca with the CA that signed --tls-cert") from None
    bridge = _advertised(ns, cfg)
    if ns.emit == "crossplane":
        text = emit.crossplane(ca_pem, cfg.routes, bridge, htpasswd=bool(cfg.htpasswd))
        if ns.output_format == "json":
            emit_json({"ok": True, "bridge": bridge, "yaml": text,
                       "helmValues": {"registryCaBundleConfig": {
                           "name": emit.CA_CONFIGMAP, "key": "ca.crt"}}})
        else:
            echo(text, nl=False)
        return
    root = Path(ns.emit_dir) if ns.emit_dir else Path(CERTS_D)
    files = emit.hosts_toml(cfg.routes, bridge, "")
    written: dict[str, str] = {}
    for registry in files:
        # Written: the directory must stay under -o even through symlinks there.
        d = host_dir(root, registry) if ns.emit_dir else root / emit.host_dir_name(registry)
        text = emit.hosts_toml(cfg.routes, bridge, str(d / emit.HOSTS_CA))[registry]
        written[str(d / "hosts.toml")] = text
        if ns.emit_dir:
            d.mkdir(parents=True, exist_ok=True)
            (d / emit.HOSTS_CA).write_text(ca_pem)
            (d / "hosts.toml").write_text(text)
    if ns.output_format == "json":
        emit_json({"ok": True, "bridge": bridge, "files": written, "ca": ca_pem,
                   "wrote": bool(ns.emit_dir)})
        return
    for path, text in written.items():
        ca_path = str(Path(path).parent / emit.HOSTS_CA)
        echo(f"# {path}" + ("" if ns.emit_dir else f"  (and the bridge CA as {ca_path})"))
        echo(text)
    if not ns.emit_dir:
        echo("# The bridge CA:")
        echo(ca_pem, nl=False)


@handle_errors
def run_serve(ns: argparse.Namespace) -> None:
    from ..errors import UsageError

    cfg = _config(ns)
    if ns.emit:
        _emit(ns, cfg)
        return
    if cfg.workers > 1:
        # prometheus-client reads this when it is imported: the workers' metrics are summed.
        import shutil

        metrics_dir = cfg.cache_dir / "metrics"
        shutil.rmtree(metrics_dir, ignore_errors=True)
        metrics_dir.mkdir(parents=True, mode=0o700)
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
    try:
        from ..serve.server import serve
    except ImportError as e:
        raise UsageError(f"crossfetch serve needs the serve extra ({e.name} is missing)",
                         fix="pip install 'crossfetch[serve]'") from None
    params: dict[str, Any] = vars(ns)
    serve(cfg, params)


def serve_parser(prog: str) -> argparse.ArgumentParser:
    p = new_parser(prog, """\
Serve the OCI distribution read API over TLS as a pull-through bridge: BRIDGE/PREFIX<rest> is
fetched from UPSTREAM_PREFIX<rest> under crossfetch's policy (any TLS mode, CA, mTLS, mirrors,
credentials), verified, cached by digest and streamed to every client at once. Crossplane (and
the kubelet) then only need to trust the bridge's CA. Only configured prefixes are served;
writes answer 405.

Examples:
  crossfetch serve --listen 0.0.0.0:5443 --hostname bridge.crossplane-system.svc \\
      --route gitea/=gitea.cnoe.localtest.me:8443/giteaadmin/ --config gitea-policy.yaml
  crossfetch serve --route local/=10.0.0.5:5000/ --cache-max-size 20GiB --tag-ttl 1m
  crossfetch serve --state-dir DIR --route ... --hostname ... --emit crossplane | kubectl apply -f -
  crossfetch serve --state-dir DIR --route ... --hostname ... --emit hosts-toml \
      --emit-dir /etc/containerd/certs.d

Endpoints besides /v2/: /healthz, /readyz, /metrics (Prometheus). One JSON line per request
goes to stderr. See docs/serve.md for the security model and deployment.
""", args="--route PREFIX=UPSTREAM_PREFIX...")
    p.add_argument("--listen", default="0.0.0.0:5443", metavar="ADDR:PORT",
                   help="Where to listen (port 0 picks a free port; the chosen address is "
                   "logged).")
    p.add_argument("--route", dest="routes", action="append", default=[],
                   metavar="PREFIX=UPSTREAM_PREFIX",
                   help="Serve BRIDGE/PREFIX<rest> from UPSTREAM_PREFIX<rest> (host[:port]/path/"
                   "). Repeatable; the longest matching prefix wins.")
    p.add_argument("--routes-file", metavar="FILE",
                   help="More routes, one PREFIX=UPSTREAM_PREFIX per line (# comments), e.g. "
                   "from a ConfigMap.")
    p.add_argument("--state-dir", metavar="DIR",
                   help="Where the bridge keeps its CA and server certificate (ca.crt, "
                   "server.crt, server.key). Default $XDG_STATE_HOME/crossfetch/bridge.")
    p.add_argument("--cache-dir", metavar="DIR",
                   help="Content-addressed blob and manifest cache. Default "
                   "$XDG_CACHE_HOME/crossfetch/bridge.")
    p.add_argument("--hostname", dest="hostnames", action="append", default=[], metavar="NAME",
                   help="A DNS name or IP clients use for the bridge; the generated server "
                   "certificate covers each. Repeatable (default: localhost, 127.0.0.1, ::1).")
    p.add_argument("--tls-cert", metavar="FILE", help="Serve this certificate (chain, PEM) "
                   "instead of generating one.")
    p.add_argument("--tls-key", metavar="FILE", help="The key of --tls-cert (PEM).")
    p.add_argument("--tls-ca", metavar="FILE", help="With --tls-cert and --emit: the CA "
                   "clients must trust (default: the --tls-cert file).")
    p.add_argument("--htpasswd", metavar="FILE",
                   help="Require Basic auth checked against this bcrypt htpasswd file "
                   "(htpasswd -B). Without it the bridge serves anonymously.")
    p.add_argument("--cache-max-size", metavar="SIZE",
                   help="Evict least-recently used blobs beyond this size (e.g. 20GiB); a blob "
                   "being served is never evicted. Default: unbounded.")
    p.add_argument("--tag-ttl", default="5m", metavar="DURATION",
                   help="Re-resolve a tag with the upstream after this long (0: every time). "
                   "While the upstream is down the last known digest is served.")
    p.add_argument("--workers", type=bounded_int(1, 64), default=1, metavar="N",
                   help="Processes (1..64) serving one socket and one cache (TLS is encrypted "
                   "by each process's event loop: use about one per core for throughput).")
    p.add_argument("--upstream-threads", type=bounded_int(1, 256), default=16, metavar="N",
                   help="Threads (1..256) for upstream calls (each for metadata and for blob "
                   "fetches).")
    p.add_argument("--allow-redirect-host", dest="allow_redirect_hosts", action="append",
                   default=[], metavar="HOST",
                   help="Follow upstream blob redirects to this host (object storage, CDN). "
                   "Redirects anywhere else are refused. Repeatable.")
    p.add_argument("--shutdown-timeout", default="30s", metavar="DURATION",
                   help="On SIGTERM, how long in-flight responses may take to finish.")
    e = p.add_argument_group("emitting client configuration (prints and exits)")
    e.add_argument("--emit", choices=["crossplane", "hosts-toml"],
                   help="crossplane: the CA ConfigMap, Helm values and one ImageConfig "
                   "rewriteImage per route. hosts-toml: containerd hosts.toml per upstream "
                   "registry.")
    e.add_argument("--emit-dir", metavar="DIR",
                   help="With --emit hosts-toml: write DIR/<registry>/hosts.toml and the CA "
                   "instead of printing.")
    e.add_argument("--advertise", metavar="HOST[:PORT]",
                   help="The address clients use for the bridge (default: the first "
                   "--hostname and the --listen port).")
    e.add_argument("--output", "-O", dest="output_format", choices=["text", "json"],
                   default="text", help="Human text, or one JSON object for scripts.")
    add_policy_options(p)
    p.set_defaults(func=run_serve)
    return p


PARSERS = {"serve": serve_parser}
