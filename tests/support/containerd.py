"""Run the real containerd (Debian ``containerd`` 1.6) for integration tests of the node path.

Each instance has its own root, state, config and gRPC socket, so it never touches a system
containerd. The socket lives in a short directory under /tmp because unix socket paths are
limited to 107 bytes and pytest's tmp paths can be longer. The CRI plugin's registry
configuration is a ``config_path`` directory of ``hosts.toml`` files (see
:func:`write_hosts_toml`), exactly as on a node.

Needs root (containerd mounts snapshots while unpacking). The overlayfs snapshotter is used when
an overlay mount works here, else the ``native`` one (plain copies, no mount privileges).
"""

from __future__ import annotations

import functools
import os
import shutil
import socket
import subprocess
import tempfile
import time
import weakref
from pathlib import Path
from types import TracebackType

from tests.support.process import kill_group

CONTAINERD_BINARY = "/usr/bin/containerd"
CTR_BINARY = "/usr/bin/ctr"
START_TIMEOUT = 30.0


def containerd_skip_reason() -> str | None:
    """Why containerd cannot run here (for ``pytest.skip``), or None.

    With ``CROSSFETCH_REQUIRE_ALL`` set (CI sets it) nothing is skipped: a missing containerd
    then fails the tests loudly instead of hiding behind a skip.
    """
    if os.environ.get("CROSSFETCH_REQUIRE_ALL"):
        return None
    if not os.path.exists(CONTAINERD_BINARY):
        return f"{CONTAINERD_BINARY} missing: apt-get install -y containerd"
    if os.geteuid() != 0:
        return "containerd needs root"
    return None


@functools.cache
def overlayfs_works() -> bool:
    """Whether an overlay mount succeeds here (it needs CAP_SYS_ADMIN and kernel support)."""
    if os.geteuid() != 0:
        return False
    with open("/proc/filesystems") as f:
        if "overlay" not in f.read():
            return False
    d = Path(tempfile.mkdtemp(prefix="ovl-probe-"))
    try:
        for sub in ("lower", "upper", "work", "merged"):
            (d / sub).mkdir()
        opts = f"lowerdir={d}/lower,upperdir={d}/upper,workdir={d}/work"
        r = subprocess.run(
            ["mount", "-t", "overlay", "overlay", "-o", opts, str(d / "merged")],
            capture_output=True,
            check=False,
        )
        if r.returncode != 0:
            return False
        subprocess.run(["umount", str(d / "merged")], capture_output=True, check=False)
        return True
    finally:
        shutil.rmtree(d, ignore_errors=True)


def write_hosts_toml(
    hosts_dir: Path,
    host: str,
    server: str,
    *,
    ca: Path | None = None,
    skip_verify: bool = False,
    plain_http: bool = False,
) -> Path:
    """Write ``hosts_dir/<host>/hosts.toml`` sending pulls of ``host`` to ``server``.

    ``server`` is a URL or ``host:port``; without a scheme it is https, or http when
    ``plain_http``. ``ca`` is copied next to the file and referenced from it.
    """
    if "://" not in server:
        server = f"{'http' if plain_http else 'https'}://{server}"
    from crossfetch.fixes.hoststoml import Host, hosts_toml

    d = hosts_dir / host
    d.mkdir(parents=True, exist_ok=True)
    if ca is not None:
        shutil.copyfile(ca, d / "ca.crt")
    # crossfetch's one hosts.toml writer, so every CRI test applies its output in containerd.
    path = d / "hosts.toml"
    path.write_text(hosts_toml(Host(server), [Host(server, capabilities=("pull", "resolve"),
                                                   ca=(str(d / "ca.crt"),) if ca else (),
                                                   skip_verify=True if skip_verify else None)]))
    return path


class Containerd:
    """A private ``containerd`` process. Use as a context manager, or ``start()``/``stop()``.

    ``hosts_dir`` becomes the CRI ``registry.config_path``; ``disable_cri`` turns the CRI
    plugin off the way Docker's packaging does (``disabled_plugins``).
    """

    def __init__(
        self,
        workdir: Path,
        *,
        hosts_dir: Path | None = None,
        disable_cri: bool = False,
        snapshotter: str | None = None,
    ) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.dir = Path(tempfile.mkdtemp(prefix="containerd-", dir=workdir))
        self.hosts_dir = hosts_dir if hosts_dir is not None else self.dir / "certs.d"
        self.hosts_dir.mkdir(parents=True, exist_ok=True)
        self.disable_cri = disable_cri
        self.snapshotter = snapshotter or ("overlayfs" if overlayfs_works() else "native")
        # Short, private directory for the sockets (sun_path is 108 bytes with the NUL).
        self._sock_dir = Path(tempfile.mkdtemp(prefix="ctd-", dir="/tmp"))
        self.socket = self._sock_dir / "c.sock"
        self.config_path = self.dir / "config.toml"
        self.log_path = self.dir / "containerd.log"
        self._proc: subprocess.Popen[bytes] | None = None
        self._finalizer: (
            weakref.finalize[[subprocess.Popen[bytes], float], Containerd] | None
        ) = None

    @property
    def endpoint(self) -> str:
        return f"unix://{self.socket}"

    def _config(self) -> str:
        cri = '"io.containerd.grpc.v1.cri"'
        lines = [
            "version = 2",
            f'root = "{self.dir / "root"}"',
            f'state = "{self.dir / "state"}"',
            f"disabled_plugins = [{cri if self.disable_cri else ''}]",
            "",
            "[grpc]",
            f'  address = "{self.socket}"',
            "[ttrpc]",
            f'  address = "{self.socket}.ttrpc"',
            "[debug]",
            '  address = ""',
            '  level = "info"',
            "[metrics]",
            '  address = ""',
            # The opt plugin would otherwise create /opt/containerd on the host.
            '[plugins."io.containerd.internal.v1.opt"]',
            f'  path = "{self.dir / "opt"}"',
            f"[plugins.{cri}]",
            "  disable_apparmor = true",
            "  disable_tcp_service = true",
            f"[plugins.{cri}.containerd]",
            f'  snapshotter = "{self.snapshotter}"',
            f"[plugins.{cri}.registry]",
            f'  config_path = "{self.hosts_dir}"',
        ]
        return "\n".join(lines) + "\n"

    def start(self) -> Containerd:
        if self._proc is not None:
            raise RuntimeError("containerd already started")
        self.config_path.write_text(self._config())
        log = open(self.log_path, "wb")  # noqa: SIM115 - handed to the child
        try:
            self._proc = subprocess.Popen(
                [CONTAINERD_BINARY, "--config", str(self.config_path)],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                env={**os.environ, "TMPDIR": str(self.dir)},
            )
        finally:
            log.close()
        self._finalizer = weakref.finalize(self, kill_group, self._proc, 10.0)
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            assert self._proc is not None
            if self._proc.poll() is not None:
                raise RuntimeError(
                    f"containerd exited with {self._proc.returncode}:\n{self.log_text()[-4000:]}"
                )
            if "successfully booted" in self.log_text() and self._connectable():
                return
            time.sleep(0.05)
        raise RuntimeError(
            f"containerd not ready after {START_TIMEOUT}s:\n{self.log_text()[-4000:]}"
        )

    def _connectable(self) -> bool:
        try:
            with socket.socket(socket.AF_UNIX) as s:
                s.connect(str(self.socket))
            return True
        except OSError:
            return False

    def stop(self) -> None:
        if self._finalizer is not None:
            self._finalizer()  # kills the process once, whatever path got us here
        self._proc = None
        # Snapshots are plain directories (unpack mounts are temporary): safe to remove.
        shutil.rmtree(self._sock_dir, ignore_errors=True)

    def ctr(self, *args: str, namespace: str = "k8s.io") -> str:
        """Run ``ctr`` against this instance (for test setup such as deleting a blob)."""
        r = subprocess.run(
            [CTR_BINARY, "--address", str(self.socket), "--namespace", namespace, *args],
            capture_output=True,
            text=True,
            check=False,
        )
        if r.returncode != 0:
            raise RuntimeError(f"ctr {' '.join(args)} failed: {r.stderr.strip()}")
        return r.stdout

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def __enter__(self) -> Containerd:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"Containerd({self.endpoint}, snapshotter={self.snapshotter}, dir={self.dir})"
