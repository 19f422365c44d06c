"""Run ``crossfetch serve`` (the pull-through bridge) as a child process for tests and benches.

It listens on a port the OS picks (``--listen 127.0.0.1:0``); the port is read back from its
``listening`` log line. Its stderr (one JSON object per line) is kept for assertions.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import time
import urllib.request
import weakref
from pathlib import Path
from types import TracebackType
from typing import Any

from tests.support.httpserver import RecordedRequest
from tests.support.process import kill_group
from tests.support.proxy import BLOB_PATH, HOP_BY_HOP, FaultProxy, _ProxyHandler
from tests.support.push import raw_push

CLI = [sys.executable, "-m", "crossfetch.cli.main"]
START_TIMEOUT = 30.0


class BridgeProcess:
    """``crossfetch serve`` with ``routes`` and extra CLI ``args`` (policy, auth, ...)."""

    def __init__(self, workdir: Path, routes: list[str], *args: str,
                 hostnames: tuple[str, ...] = ("127.0.0.1", "localhost")) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.dir = Path(tempfile.mkdtemp(prefix="bridge-", dir=workdir))
        self.state_dir = self.dir / "state"
        self.cache_dir = self.dir / "cache"
        self.log_path = self.dir / "bridge.log"
        self.routes = routes
        self.args = list(args)
        self.hostnames = hostnames
        self.port = 0
        self._proc: subprocess.Popen[bytes] | None = None
        self._finalizer: weakref.finalize[[subprocess.Popen[bytes]], BridgeProcess] | None = None

    @property
    def command(self) -> list[str]:
        cmd = [*CLI, "serve", "--listen", "127.0.0.1:0", "--state-dir", str(self.state_dir),
               "--cache-dir", str(self.cache_dir), "--no-node-config"]
        for h in self.hostnames:
            cmd += ["--hostname", h]
        for r in self.routes:
            cmd += ["--route", r]
        return cmd + self.args

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self._proc is not None, "not started"
        return self._proc.pid

    @property
    def url(self) -> str:
        return f"https://{self.host}"

    @property
    def ca(self) -> Path:
        return self.state_dir / "ca.crt"

    def ssl_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca))

    def start(self) -> BridgeProcess:
        with open(self.log_path, "ab") as log:
            self._proc = subprocess.Popen(self.command, stdin=subprocess.DEVNULL, stdout=log,
                                          stderr=log, start_new_session=True)
        self._finalizer = weakref.finalize(self, kill_group, self._proc)
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            for line in self.log_lines():
                if line.get("msg") == "listening":
                    self.port = int(line["port"])
                    return self
            if self._proc.poll() is not None:
                raise RuntimeError(f"bridge exited ({self._proc.returncode}):\n"
                                   f"{self.log_path.read_text()}")
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"bridge did not start:\n{self.log_path.read_text()}")

    def stop(self) -> None:
        if self._finalizer is not None:
            self._finalizer()
            self._finalizer = None

    def terminate(self) -> subprocess.Popen[bytes]:
        """SIGTERM only (for graceful-shutdown tests); the caller waits."""
        assert self._proc is not None
        self._proc.terminate()
        return self._proc

    def __enter__(self) -> BridgeProcess:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def log_lines(self) -> list[dict[str, Any]]:
        out = []
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return []
        for line in text.splitlines():
            try:
                obj = json.loads(line)
            except ValueError:
                continue
            if isinstance(obj, dict):
                out.append(obj)
        return out

    def requests(self) -> list[dict[str, Any]]:
        """The per-request log lines."""
        return [x for x in self.log_lines() if "status" in x and "method" in x]

    def get(self, path: str, *, method: str = "GET", headers: dict[str, str] | None = None
            ) -> tuple[int, dict[str, str], bytes]:
        req = urllib.request.Request(self.url + path, method=method, headers=headers or {})
        try:
            with urllib.request.urlopen(req, context=self.ssl_context(), timeout=60) as r:
                return r.status, dict(r.headers.items()), r.read()
        except urllib.error.HTTPError as e:
            return e.code, dict(e.headers.items()), e.read()


# -- content and faults for the bridge's tests ------------------------------------------------

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def push_image(registry_url: str, repo: str, tag: str, layers: list[bytes],
               verify: ssl.SSLContext | bool = True) -> tuple[str, list[str]]:
    """Push an OCI image with these (opaque) layers; return (manifest digest, layer digests)."""
    config = json.dumps({"architecture": "amd64", "os": "linux",
                         "rootfs": {"type": "layers", "diff_ids": []}}).encode()
    blobs = {sha256(config): config, **{sha256(x): x for x in layers}}
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": sha256(config), "size": len(config)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    "digest": sha256(x), "size": len(x)} for x in layers],
    }).encode()
    raw_push(registry_url, repo, tag, manifest, OCI_MANIFEST, blobs, verify=verify)
    return sha256(manifest), [sha256(x) for x in layers]


class _ResetHandler(_ProxyHandler):
    def _relay(self, resp: http.client.HTTPResponse, rec: RecordedRequest,
               corrupt: bool) -> None:
        proxy: ResettingProxy = self.server.owner
        is_blob = self.command == "GET" and bool(BLOB_PATH.match(rec.path))
        if proxy.reset_after is None or not is_blob or resp.status != 200:
            return super()._relay(resp, rec, corrupt)
        rec.status, rec.note = resp.status, "reset"
        self.send_response(resp.status)
        for k, v in resp.getheaders():
            if k.lower() not in HOP_BY_HOP:
                self.send_header(k, v)
        self.end_headers()
        self.wfile.write(resp.read(proxy.reset_after))
        self.wfile.flush()
        # RST instead of FIN: linger 0, then close.
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                   struct.pack("ii", 1, 0))
        self.close_connection = True
        self.connection.close()
        return None


class ResettingProxy(FaultProxy):
    """A FaultProxy that can also reset the connection after ``reset_after`` bytes of every
    blob body (a mid-stream failure a real registry cannot produce on demand)."""

    handler = _ResetHandler
    reset_after: int | None = None
