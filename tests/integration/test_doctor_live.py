"""``doctor`` on a terminal: each stage is printed as it completes, and Ctrl-C keeps what has
finished. Runs the real CLI process on a pseudo-terminal against a port that accepts TCP and then
never answers the TLS handshake, so the run stays in the tls stage until interrupted."""

from __future__ import annotations

import os
import pty
import select
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A listening socket that never accepts: connects succeed (backlog), nothing answers."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(8)
        yield int(s.getsockname()[1])


def _read_until(fd: int, needle: bytes, deadline: float) -> bytes:
    out = b""
    while needle not in out and time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                break
            if not chunk:
                break
            out += chunk
    return out


def test_stages_print_live_and_ctrl_c_keeps_them(silent_port: int) -> None:
    main, child = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "crossfetch.cli.main", "doctor",
         f"127.0.0.1:{silent_port}/fns/f:v1", "--no-node-config", "--timeout", "60"],
        stdin=child, stdout=child, stderr=child, close_fds=True)
    os.close(child)
    try:
        # The tcp line shows while the tls stage is still waiting (60 s timeout): live.
        seen = _read_until(main, b"] tcp", time.monotonic() + 30)
        assert b"] tcp" in seen, seen.decode(errors="replace")
        assert proc.poll() is None
        proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=30)
        seen += _read_until(main, b"\x00never", time.monotonic() + 2)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(main)
    text = seen.decode(errors="replace")
    assert code == 130
    assert "[ok  ] tcp" in text
    assert "not run: interrupted (Ctrl-C)" in text
    assert "result: interrupted" in text
    assert "Traceback" not in text
