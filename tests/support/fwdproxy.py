"""A real forward proxy (Debian's tinyproxy) for the proxy tests: plain HTTP forwarding and
CONNECT tunnels, optionally with Basic proxy authentication.

tinyproxy cannot pick its own port, so a free one is found first (bind to port 0, close) and
the start is retried if another process took it meanwhile. Its log (LogLevel Connect) records
one line per request or tunnel, which the tests read to prove traffic went through it.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType

from tests.support.process import kill_group


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ForwardProxy:
    """``ForwardProxy(dir, auth=("user", "pass"))``; ``url`` is what HTTP(S)_PROXY takes."""

    def __init__(self, workdir: Path, *, auth: tuple[str, str] | None = None) -> None:
        self.dir = workdir
        self.auth = auth
        self.port = 0
        self.log = workdir / "tinyproxy.log"
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url_with_credentials(self, user: str, password: str) -> str:
        return f"http://{user}:{password}@127.0.0.1:{self.port}"

    def start(self) -> ForwardProxy:
        binary = shutil.which("tinyproxy")
        if binary is None:
            raise RuntimeError("tinyproxy is not installed (apt-get install tinyproxy-bin)")
        self.dir.mkdir(parents=True, exist_ok=True)
        for _ in range(5):
            self.port = _free_port()
            conf = self.dir / "tinyproxy.conf"
            lines = [f"Port {self.port}", "Listen 127.0.0.1", "Timeout 30",
                     f'LogFile "{self.log}"', "LogLevel Connect", "MaxClients 50",
                     "Allow 127.0.0.1",
                     "DisableViaHeader Yes"]
            # No ConnectPort line: CONNECT is allowed to every port (the registries' ports vary).
            if self.auth:
                lines.append(f"BasicAuth {self.auth[0]} {self.auth[1]}")
            conf.write_text("\n".join(lines) + "\n")
            self.log.write_text("")
            self._proc = subprocess.Popen([binary, "-d", "-c", str(conf)],
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                          start_new_session=True)
            if self._wait_listening():
                return self
            kill_group(self._proc)
        raise RuntimeError(f"tinyproxy did not start; log:\n{self.log.read_text()}")

    def _wait_listening(self) -> bool:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            assert self._proc is not None
            if self._proc.poll() is not None:
                return False
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return True
            except OSError:
                time.sleep(0.05)
        return False

    def requests(self) -> list[str]:
        """The request lines the proxy received: ``GET http://…`` or ``CONNECT host:port``."""
        out = []
        for ln in self.log.read_text(errors="replace").splitlines():
            _, sep, rest = ln.partition("Request (file descriptor ")
            if sep:
                out.append(rest.partition("): ")[2])
        return out

    def stop(self) -> None:
        if self._proc is not None:
            kill_group(self._proc)
            self._proc = None

    def __enter__(self) -> ForwardProxy:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
