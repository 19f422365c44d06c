"""``pull -o PATH`` writes through what PATH is, like cp and curl -o, and checks it first.

The file-level rules are tested on :func:`crossfetch.output.open_output`; the CLI tests point
at a registry that does not exist (127.0.0.1:1), so an ``-o`` error that appears (exit 2, not
the connection error's exit 1) was raised before any download was attempted.
"""

from __future__ import annotations

import fcntl
import json
import os
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from crossfetch.output import OutputError, open_output, sweep_output_leftovers
from tests.support.cli import invoke

DATA = b"---\napiVersion: meta.pkg.crossplane.io/v1\nkind: Function\n" * 100
NOWHERE = "127.0.0.1:1/fns/f:v1"


@pytest.fixture
def src(tmp_path: Path) -> Path:
    p = tmp_path / "cache-package.yaml"
    p.write_bytes(DATA)
    return p


def write(target: Path | str, src: Path) -> None:
    out = open_output(target)
    try:
        out.write(src)
    finally:
        out.abort()


def hidden(d: Path) -> list[str]:
    return sorted(p.name for p in d.iterdir() if p.name.startswith("."))


def test_regular_file_is_replaced_atomically_keeping_its_mode(tmp_path: Path, src: Path
                                                               ) -> None:
    out = tmp_path / "package.yaml"
    out.write_bytes(b"old")
    out.chmod(0o640)
    before = out.stat().st_ino
    write(out, src)
    assert out.read_bytes() == DATA
    assert out.stat().st_ino != before  # a new file renamed over the old one
    assert stat.S_IMODE(out.stat().st_mode) == 0o640
    assert hidden(tmp_path) == []


def test_new_file(tmp_path: Path, src: Path) -> None:
    write(tmp_path / "new.yaml", src)
    assert (tmp_path / "new.yaml").read_bytes() == DATA
    assert hidden(tmp_path) == []


@pytest.mark.skipif(os.geteuid() != 0, reason="writing /dev/null's inode needs root to matter")
def test_dev_null_stays_a_character_device(src: Path) -> None:
    write("/dev/null", src)
    st = os.stat("/dev/null")
    assert stat.S_ISCHR(st.st_mode) and os.major(st.st_rdev) == 1 and os.minor(st.st_rdev) == 3
    assert not [p for p in hidden(Path("/dev")) if p.startswith(".null.")]


def test_fifo_is_written_in_place(tmp_path: Path, src: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    got = bytearray()

    def reader() -> None:
        with open(fifo, "rb") as f:
            while chunk := f.read(65536):
                got.extend(chunk)

    t = threading.Thread(target=reader)
    t.start()
    write(fifo, src)
    t.join(10)
    assert bytes(got) == DATA
    assert stat.S_ISFIFO(fifo.lstat().st_mode)
    assert hidden(tmp_path) == []


def test_symlink_stays_a_symlink_and_its_target_is_replaced(tmp_path: Path, src: Path) -> None:
    (tmp_path / "real").mkdir()
    real = tmp_path / "real" / "package.yaml"
    real.write_bytes(b"old")
    link = tmp_path / "link.yaml"
    link.symlink_to(real)
    write(link, src)
    assert link.is_symlink() and os.readlink(link) == str(real)
    assert real.read_bytes() == DATA
    assert hidden(tmp_path) == [] and hidden(tmp_path / "real") == []


def test_dangling_symlink_creates_its_target(tmp_path: Path, src: Path) -> None:
    link = tmp_path / "link.yaml"
    link.symlink_to("target.yaml")
    write(link, src)
    assert link.is_symlink() and (tmp_path / "target.yaml").read_bytes() == DATA


def test_symlink_to_a_device_writes_the_device(tmp_path: Path, src: Path) -> None:
    link = tmp_path / "null.yaml"
    link.symlink_to("/dev/null")
    write(link, src)
    assert link.is_symlink() and stat.S_ISCHR(os.stat("/dev/null").st_mode)


def test_failed_pull_leaves_the_old_file_and_no_temp(tmp_path: Path) -> None:
    out = tmp_path / "package.yaml"
    out.write_bytes(b"old")
    o = open_output(out)
    assert len(hidden(tmp_path)) == 1  # prepared before the download
    o.abort()
    assert out.read_bytes() == b"old" and hidden(tmp_path) == []


@pytest.mark.parametrize("case", ["missing-dir", "directory", "parent-is-file", "socket"])
def test_errors_name_the_users_path(tmp_path: Path, case: str) -> None:
    import socket

    (tmp_path / "file").write_text("x")
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(tmp_path / "s"))
    given = {"missing-dir": tmp_path / "no" / "such" / "p.yaml", "directory": tmp_path,
             "parent-is-file": tmp_path / "file" / "p.yaml", "socket": tmp_path / "s"}[case]
    with pytest.raises(OutputError) as e:
        open_output(given)
    sock.close()
    assert str(given) in e.value.message and e.value.fix
    assert e.value.exit_code == 2


@pytest.mark.parametrize("case", ["missing-dir", "directory", "unwritable"])
def test_cli_checks_o_before_any_download(tmp_path: Path, case: str) -> None:
    given = {"missing-dir": str(tmp_path / "no" / "p.yaml"), "directory": str(tmp_path),
             "unwritable": "/proc/crossfetch-test.yaml"}[case]
    r = invoke(["pull", NOWHERE, "-o", given, "--retries", "0", "--no-node-config",
                "--cache-dir", str(tmp_path / "c")])
    assert r.exception is None
    assert r.exit_code == 2, r.output
    lines = r.stderr.splitlines()
    assert lines[0].startswith("error: ") and given in lines[0]
    assert any(line.strip().startswith("fix: ") for line in lines)
    assert ".p.yaml." not in r.stderr and "127.0.0.1:1" not in r.stderr  # no temp, no fetch
    j = invoke(["pull", NOWHERE, "-o", given, "--retries", "0", "--no-node-config",
                "--cache-dir", str(tmp_path / "c"), "-O", "json"])
    assert j.exit_code == 2
    d = json.loads(j.stdout)
    assert d["ok"] is False and given in d["message"] and d["cause"] == "output"


def test_dead_writers_leftovers_are_swept_live_ones_kept(tmp_path: Path, src: Path) -> None:
    out = tmp_path / "package.yaml"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    dead_pid = int(dead.stdout)
    (tmp_path / f".package.yaml.{dead_pid}-0123abcd").write_bytes(b"partial")
    # A live writer (another process) holds its lock: its file is not ours to remove.
    live = tmp_path / ".package.yaml.1-89abcdef"
    live.write_bytes(b"in progress")
    holder = subprocess.Popen(
        [sys.executable, "-c", "import fcntl, sys, time\n"
         f"f = open({str(live)!r}, 'rb'); fcntl.flock(f, fcntl.LOCK_EX)\n"
         "print('locked', flush=True); sys.stdin.read()"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        write(out, src)
        assert hidden(tmp_path) == [live.name]
    finally:
        holder.communicate("")
    # Its writer is gone now, but pid 1 is alive: a young lock-free file waits for the grace.
    assert sweep_output_leftovers(out) == 0
    os.utime(live, (0, 0))
    assert sweep_output_leftovers(out) == 1 and hidden(tmp_path) == []


def test_unlocked_fresh_leftover_of_a_live_pid_is_kept(tmp_path: Path) -> None:
    out = tmp_path / "p.yaml"
    mine = tmp_path / f".p.yaml.{os.getpid()}-00000000"
    mine.write_bytes(b"")
    with open(mine, "rb") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        assert sweep_output_leftovers(out) == 0
    assert sweep_output_leftovers(out) == 0  # lock free, but our pid is alive and it is new
    assert mine.exists()
