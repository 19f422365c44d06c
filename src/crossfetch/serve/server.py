"""Start, run and stop the bridge: TLS, policy, cache, signals, graceful shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import socket
import sys
import time
from typing import Any

from aiohttp import web

from ..cli.common import build_policy
from ..client import Client
from ..transport.session import Timeouts
from .app import Bridge
from .certs import ensure_state, server_context
from .config import ServeConfig
from .htpasswd import Htpasswd
from .metrics import Metrics
from .store import Store
from .upstream import BridgeTransport, Upstreams


def build(cfg: ServeConfig, params: dict[str, Any], *, sweep: bool = True
          ) -> tuple[Bridge, Client]:
    """The bridge for ``cfg``, upstreams under the policy the CLI options describe."""
    policy = build_policy(params)
    timeout = params.get("timeout")
    transport = BridgeTransport(
        allow_redirect_hosts=cfg.allow_redirect_hosts,
        timeouts=Timeouts() if timeout is None else Timeouts(connect=timeout, read=timeout),
        retries=params.get("retries", 3))
    client = Client(policy, transport=transport)
    metrics = Metrics()
    store = Store(cfg.cache_dir, cfg.cache_max_size, sweep=sweep)
    htpasswd = Htpasswd(cfg.htpasswd) if cfg.htpasswd else None
    return Bridge(cfg, Upstreams(client, metrics), store, metrics, htpasswd), client


def serve(cfg: ServeConfig, params: dict[str, Any]) -> None:
    """Run until SIGTERM or SIGINT, then finish in-flight responses and exit."""
    if cfg.tls_cert and cfg.tls_key:
        cert, key, ca = cfg.tls_cert, cfg.tls_key, None
    else:
        ca, cert, key = ensure_state(cfg.state_dir, cfg.hostnames)
    ssl_ctx = server_context(cert, key)
    _json_logging()
    if cfg.workers <= 1:
        bridge, client = build(cfg, params)
        try:
            asyncio.run(_main(cfg, bridge, ssl_ctx, str(ca) if ca else None))
        finally:
            bridge.close()
            client.close()
        return
    _serve_workers(cfg, params, ssl_ctx, str(ca) if ca else None)


def _serve_workers(cfg: ServeConfig, params: dict[str, Any], ssl_ctx: Any,
                   ca: str | None) -> None:
    """``--workers N``: one listening socket, N forked processes each running the bridge on
    it, one shared cache (fetches stay single across them by a lock file per digest)."""
    family = socket.AF_INET6 if ":" in cfg.listen_host else socket.AF_INET
    sock = socket.create_server((cfg.listen_host, cfg.listen_port), family=family,
                                backlog=1024)
    Store(cfg.cache_dir, cfg.cache_max_size)  # sweeps leftovers before any worker runs
    children: list[int] = []
    for i in range(cfg.workers):
        pid = os.fork()
        if pid == 0:  # the worker
            code = 0
            try:
                bridge, client = build(cfg, params, sweep=False)
                try:
                    asyncio.run(_main(cfg, bridge, ssl_ctx, ca, sock=sock, worker=i))
                finally:
                    bridge.close()
                    client.close()
            except BaseException as e:  # a worker never returns into the parent's code
                _log({"level": "error", "msg": f"worker {i} failed: {e}"})
                code = 1
            finally:
                os._exit(code)
        children.append(pid)
    port = sock.getsockname()[1]
    sock.close()
    host = cfg.listen_host
    _log({"level": "info", "msg": "listening",
          "url": f"https://{'[' + host + ']' if ':' in host else host}:{port}", "port": port,
          "ca": ca, "workers": cfg.workers, "routes": [str(r) for r in cfg.routes],
          "cacheDir": str(cfg.cache_dir), "auth": "htpasswd" if cfg.htpasswd else "anonymous"})

    def forward(signum: int, _frame: object) -> None:
        for child in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    worst = 0
    for child in children:
        _, status = os.waitpid(child, 0)
        worst = max(worst, os.waitstatus_to_exitcode(status))
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            from prometheus_client import multiprocess

            multiprocess.mark_process_dead(child)  # type: ignore[no-untyped-call]
    if worst:
        raise SystemExit(worst)


async def _main(cfg: ServeConfig, bridge: Bridge, ssl_ctx: Any, ca: str | None, *,
                sock: socket.socket | None = None, worker: int | None = None) -> None:
    runner = web.AppRunner(bridge.app(), access_log=None,
                           shutdown_timeout=cfg.shutdown_timeout, handle_signals=False)
    await runner.setup()
    site: web.BaseSite
    if sock is not None:
        site = web.SockSite(runner, sock, ssl_context=ssl_ctx,
                            shutdown_timeout=cfg.shutdown_timeout)
    else:
        site = web.TCPSite(runner, cfg.listen_host, cfg.listen_port, ssl_context=ssl_ctx,
                           backlog=1024, shutdown_timeout=cfg.shutdown_timeout)
    await site.start()
    addrs = runner.addresses
    port = int(addrs[0][1]) if addrs else cfg.listen_port
    host = cfg.listen_host
    url = f"https://{'[' + host + ']' if ':' in host else host}:{port}"
    bridge.ready = True
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if worker is None:
        _log({"level": "info", "msg": "listening", "url": url, "port": port, "ca": ca,
              "routes": [str(r) for r in cfg.routes], "cacheDir": str(cfg.cache_dir),
              "auth": "htpasswd" if cfg.htpasswd else "anonymous"})
    await stop.wait()
    bridge.ready = False
    _log({"level": "info", "msg": "shutting down: finishing in-flight responses",
          "timeout": cfg.shutdown_timeout, "worker": worker})
    # Closed TLS connections still flush their last bytes on the loop: keep it running until
    # each socket is really closed (bounded by the shutdown timeout). The sockets are taken
    # first: aiohttp's Server.shutdown forgets its connections as soon as it has closed them.
    server = runner.server
    socks = [h.transport.get_extra_info("socket") for h in server.connections
             if h.transport is not None] if server else []
    await runner.cleanup()
    deadline = time.monotonic() + cfg.shutdown_timeout
    while any(s is not None and s.fileno() != -1 for s in socks) \
            and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    _log({"level": "info", "msg": "stopped", "worker": worker})


class _JSONLogHandler(logging.Handler):
    """Library log records (aiohttp, asyncio) as one JSON line each, like the request log."""

    def emit(self, record: logging.LogRecord) -> None:
        line: dict[str, Any] = {"level": record.levelname.lower(), "msg": record.getMessage(),
                                "logger": record.name}
        if record.exc_info and record.exc_info[1] is not None:
            exc = record.exc_info[1]
            line["error"] = f"{type(exc).__name__}: {exc}"
        _log(line)


def _json_logging() -> None:
    root = logging.getLogger()
    root.handlers[:] = [_JSONLogHandler()]
    root.setLevel(logging.WARNING)


def _log(obj: dict[str, Any]) -> None:
    sys.stderr.write(json.dumps({"time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                                 **obj}) + "\n")
    sys.stderr.flush()
