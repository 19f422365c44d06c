"""Run ``crossfetch serve`` (the pull-through bridge) as a child process for tests and benches.

It listens on a port the OS picks (``--listen 127.0.0.1:0``); the port is read back from its
``listening`` log line. Its stderr (one JSON object per line) is kept for assertions.
"""

from __future__ import annotations

import json
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.request
import weakref
from pathlib import Path
from types import TracebackType
from typing import Any

from tests.support.process import kill_group

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
