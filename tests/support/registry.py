"""Run the real CNCF distribution registry (Debian ``docker-registry`` 2.8) for integration tests.

The registry is started as a child process with a generated config, on a port it picks itself
(``addr: 127.0.0.1:0``; the chosen port is read back from its ``listening on`` log line, so there
is no race with other test suites grabbing ports). Its access log is parsed so tests can assert
what actually reached the server.
"""

from __future__ import annotations

import http.client
import json
import re
import shutil
import ssl
import subprocess
import tempfile
import time
import weakref
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

from tests.support.certs import CertPair
from tests.support.process import kill_group

if TYPE_CHECKING:
    from crossfetch.registry import RegistryClient

REGISTRY_BINARY = "/usr/bin/docker-registry"
START_TIMEOUT = 30.0

# gorilla's combined log format, one line per request that reached the HTTP server
# (including 401 challenges and unknown routes), written before the response completes.
_ACCESS_LINE = re.compile(
    r"^(?P<remote>\S+) \S+ (?P<user>\S+) \[(?P<time>[^\]]+)\] "
    r'"(?P<method>[A-Z]+) (?P<uri>\S+) (?P<proto>[^"]+)" (?P<status>\d{3}) (?P<size>\d+|-)'
    r'(?: "(?P<referer>(?:[^"\\]|\\.)*)" "(?P<agent>(?:[^"\\]|\\.)*)")?'
)
_LISTENING = re.compile(r"listening on (\S+?)(?:,|\"|$)")


@dataclass(frozen=True)
class TokenAuth:
    """The registry side of token authentication (``auth.token`` in its config)."""

    realm: str
    service: str
    issuer: str
    rootcertbundle: Path


@dataclass(frozen=True)
class AccessEntry:
    """One request as the registry logged it."""

    method: str
    path: str  # without the query string
    status: int
    query: str = ""
    user_agent: str = ""
    size: int = 0

    @property
    def uri(self) -> str:
        return f"{self.path}?{self.query}" if self.query else self.path


def parse_access_log(text: str) -> list[AccessEntry]:
    """Parse the combined-format access lines out of a registry log (other lines are skipped)."""
    entries: list[AccessEntry] = []
    for line in text.splitlines():
        m = _ACCESS_LINE.match(line)
        if not m:
            continue
        uri = m["uri"]
        path, _, query = uri.partition("?")
        size = m["size"]
        entries.append(
            AccessEntry(
                method=m["method"],
                path=path,
                status=int(m["status"]),
                query=query,
                user_agent=m["agent"] or "",
                size=0 if size == "-" else int(size),
            )
        )
    return entries


class Registry:
    """A real ``docker-registry serve`` process with a generated configuration.

    ``port=0`` lets the registry pick a free port. ``storage`` points several instances at the
    same data (e.g. one plain and one TLS front for the same content).
    """

    def __init__(
        self,
        workdir: Path,
        *,
        tls: CertPair | None = None,
        htpasswd: dict[str, str] | None = None,
        token: TokenAuth | None = None,
        client_ca: Path | None = None,
        port: int = 0,
        host: str = "127.0.0.1",
        storage: Path | None = None,
    ) -> None:
        if htpasswd and token:
            raise ValueError("a registry takes either htpasswd or token auth, not both")
        if client_ca and not tls:
            raise ValueError("client_ca (mTLS) needs tls")
        workdir.mkdir(parents=True, exist_ok=True)
        # A private directory per instance, so several registries can share one workdir.
        self.dir = Path(tempfile.mkdtemp(prefix="registry-", dir=workdir))
        self.tls = tls
        self.htpasswd = htpasswd
        self.token = token
        self.client_ca = client_ca
        self.bind_host = host
        self.storage = storage or self.dir / "data"
        self.log_path = self.dir / "registry.log"
        self.config_path = self.dir / "config.yml"
        self._requested_port = port
        self._port: int | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._start_mark = 0
        self._finalizer: weakref.finalize[[subprocess.Popen[bytes]], Registry] | None = None

    # -- addresses -----------------------------------------------------------------------
    @property
    def scheme(self) -> str:
        return "https" if self.tls else "http"

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("registry not started")
        return self._port

    @property
    def host(self) -> str:
        """``HOST:PORT`` as it appears in image references."""
        h = f"[{self.bind_host}]" if ":" in self.bind_host else self.bind_host
        return f"{h}:{self.port}"

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.host}"

    # -- lifecycle -----------------------------------------------------------------------
    def _config(self) -> dict[str, object]:
        h = f"[{self.bind_host}]" if ":" in self.bind_host else self.bind_host
        http_cfg: dict[str, object] = {
            "addr": f"{h}:{self._requested_port}",
            # Fixed secret: instances sharing storage must accept each other's upload state.
            "secret": "crossfetch-testbed-secret",
        }
        if self.tls:
            tls_cfg: dict[str, object] = {
                "certificate": str(self.tls.cert),
                "key": str(self.tls.key),
            }
            if self.client_ca:
                tls_cfg["clientcas"] = [str(self.client_ca)]
            http_cfg["tls"] = tls_cfg
        cfg: dict[str, object] = {
            "version": 0.1,
            "log": {"level": "info", "formatter": "json"},
            "storage": {
                "filesystem": {"rootdirectory": str(self.storage)},
                "delete": {"enabled": True},
                "maintenance": {"uploadpurging": {"enabled": False}},
            },
            "http": http_cfg,
        }
        if self.htpasswd:
            path = self.dir / "htpasswd"
            path.write_text("")
            for user, password in self.htpasswd.items():
                # bcrypt is the only scheme registry 2.8 accepts; low cost keeps requests fast.
                subprocess.run(
                    ["htpasswd", "-bB", "-C", "4", str(path), user, password],
                    check=True,
                    capture_output=True,
                )
            cfg["auth"] = {"htpasswd": {"realm": "test", "path": str(path)}}
        elif self.token:
            cfg["auth"] = {
                "token": {
                    "realm": self.token.realm,
                    "service": self.token.service,
                    "issuer": self.token.issuer,
                    "rootcertbundle": str(self.token.rootcertbundle),
                }
            }
        return cfg

    def start(self) -> Registry:
        """Start the registry and wait until ``/v2/`` answers; raise with its log if it dies."""
        if self._proc is not None:
            return self
        if not Path(REGISTRY_BINARY).exists():
            raise RuntimeError(
                f"{REGISTRY_BINARY} is missing: the integration tests need the real registry. "
                "Install it with `apt-get install -y docker-registry`."
            )
        if self.htpasswd and shutil.which("htpasswd") is None:
            raise RuntimeError("htpasswd is missing: `apt-get install -y apache2-utils`")
        # JSON is a subset of YAML, so no YAML writer is needed.
        self.config_path.write_text(json.dumps(self._config(), indent=1))
        with open(self.log_path, "ab") as log:
            self._proc = subprocess.Popen(
                [REGISTRY_BINARY, "serve", str(self.config_path)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,
            )
        self._finalizer = weakref.finalize(self, kill_group, self._proc)
        try:
            self._port = self._wait_listening()
            self._wait_ready()
            self._start_mark = self.mark()  # hide our own readiness probe from requests()
        except BaseException:
            self.stop()
            raise
        return self

    def _fail(self, what: str) -> RuntimeError:
        return RuntimeError(f"registry {what}; log {self.log_path}:\n{self.log_text()}")

    def _wait_listening(self) -> int:
        assert self._proc is not None
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            m = _LISTENING.search(self.log_text())
            if m:
                return int(m[1].rpartition(":")[2])
            if self._proc.poll() is not None:
                raise self._fail(f"exited with status {self._proc.returncode} at start")
            time.sleep(0.02)
        raise self._fail(f"did not start listening within {START_TIMEOUT}s")

    def _wait_ready(self) -> None:
        assert self._proc is not None
        deadline = time.monotonic() + START_TIMEOUT
        last: Exception | None = None
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise self._fail(f"exited with status {self._proc.returncode}")
            try:
                self._probe()
                return
            except ssl.SSLError:
                if self.client_ca:  # mTLS refuses our certless probe: the server is up
                    return
                raise
            except OSError as e:
                last = e
                time.sleep(0.05)
        raise self._fail(f"did not answer /v2/ within {START_TIMEOUT}s ({last})")

    def _probe(self) -> int:
        conn: http.client.HTTPConnection
        if self.tls:
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE  # readiness only; tests check trust themselves
            conn = http.client.HTTPSConnection(self.bind_host, self.port, context=ctx, timeout=5)
        else:
            conn = http.client.HTTPConnection(self.bind_host, self.port, timeout=5)
        try:
            conn.request("GET", "/v2/", headers={"User-Agent": "testbed-readiness-probe"})
            return conn.getresponse().status
        finally:
            conn.close()

    def stop(self) -> None:
        """Stop the process (SIGTERM, then SIGKILL); safe to call twice."""
        if self._finalizer is not None:
            self._finalizer()  # runs kill_group once
            self._finalizer = None
        self._proc = None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def __enter__(self) -> Registry:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- observation ---------------------------------------------------------------------
    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def mark(self) -> int:
        """A position in the access log; pass it as ``requests(since=...)``."""
        try:
            return self.log_path.stat().st_size
        except FileNotFoundError:
            return 0

    def requests(self, since: int | None = None) -> list[AccessEntry]:
        """Requests the registry logged since ``since`` (from :meth:`mark`; default: since it
        became ready, so the readiness probe is not included), in order."""
        try:
            with open(self.log_path, "rb") as f:
                f.seek(self._start_mark if since is None else since)
                data = f.read()
        except FileNotFoundError:
            return []
        # A line still being written has no newline yet; leave it for the next call.
        complete = data[: data.rfind(b"\n") + 1]
        return parse_access_log(complete.decode(errors="replace"))

    def ref(self, repo_and_tag: str) -> str:
        """``HOST:PORT/repo:tag`` for this registry."""
        return f"{self.host}/{repo_and_tag}"

    def __repr__(self) -> str:
        where = self.url if self._port is not None else "(not started)"
        return f"Registry({where}, dir={self.dir})"


def direct_client(host: str) -> RegistryClient:
    """A :class:`RegistryClient` for ``host/a/b:v1`` over plain HTTP, no retries: for unit
    tests against a stdlib fake."""
    from crossfetch.policy.model import Decision, Endpoint, TLSConfig, TLSMode
    from crossfetch.reference import Reference
    from crossfetch.registry import RegistryClient
    from crossfetch.transport.session import Transport

    ref = Reference.parse(f"{host}/a/b:v1")
    ep = Endpoint(url=f"http://{host}", tls=TLSConfig(mode=TLSMode.DISABLED))
    return RegistryClient(Decision(ref, ref, (ep,)), Transport(retries=0))
