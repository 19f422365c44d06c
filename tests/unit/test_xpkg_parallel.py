"""The helper process that parses a share of a big package stream (crossfetch.xpkg.parallel).

Which documents the child parses is steered here (every test decides it, so nothing depends
on timing); the verdict must be the serial scanner's, to the message, cause and fix: on valid
streams, with a failure in the child's share or the parent's, when the child is killed,
stopped, cannot start, or answers garbage. The child is always reaped.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import itertools
import os
import signal
import subprocess
import sys
import tarfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crossfetch.errors import LimitExceeded, PackageError
from crossfetch.oci import Descriptor
from crossfetch.xpkg import parallel, read_flattened, read_package_yaml
from crossfetch.xpkg import stream as xstream
from crossfetch.xpkg.meta import PackageScanner
from tests.support.testdata import TESTDATA
from tests.unit.test_fuzz_package_stream import EXAMPLES, mutated

pytestmark = pytest.mark.skipif(parallel.cpus() < 2 or not hasattr(os, "posix_spawn"),
                                reason="the helper runs only with two CPUs (and posix_spawn)")

META = (TESTDATA / "provider-kubernetes/crossplane.yaml").read_text()
CRDS = [p.read_text() for p in sorted((TESTDATA / "provider-kubernetes/crds").iterdir())]
BAD_YAML = "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nspec: [1, 2\n"
NO_KIND = "apiVersion: apiextensions.k8s.io/v1\nmetadata: {name: x}\n"
SECRET = "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\n"
ALIASES = ("apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\n"
           "a: &a [1]\nb: [" + ", ".join(["*a"] * 70) + "]\n")
OTHER_META = "apiVersion: meta.pkg.crossplane.io/v1\nkind: Provider\nmetadata: {name: p2}\n"


def stream(docs: list[str]) -> bytes:
    return "".join("---\n" + (d if d.endswith("\n") else d + "\n") for d in docs).encode()


def outcome(scanner: PackageScanner, data: bytes, piece: int = 4096,
            during: Callable[[int], None] | None = None) -> object:
    """What the scanner says of ``data`` fed in pieces: the package, or the error in full."""
    try:
        for n, i in enumerate(range(0, len(data), piece)):
            if during is not None:
                during(n)
            scanner.feed(data[i:i + piece])
        return scanner.finish().to_dict()
    except (PackageError, LimitExceeded) as e:
        return type(e).__name__, str(e), e.cause, e.fix
    finally:
        scanner.close()


def serial(data: bytes) -> object:
    return outcome(PackageScanner(), data)


@pytest.fixture
def everything(monkeypatch: pytest.MonkeyPatch) -> None:
    """The child takes any document it is offered, whatever its size or backlog."""
    monkeypatch.setattr(parallel, "WINDOW", 1 << 40)
    monkeypatch.setattr(parallel, "MAX_DOCS", 1 << 30)
    monkeypatch.setattr(parallel, "MIN_DOC", 0)


def steered(take: Callable[[int], bool], args: list[str] | None = None
            ) -> tuple[PackageScanner, parallel.Helper]:
    """A scanner whose helper is offered exactly the documents ``take(index)`` picks."""
    helper = parallel.start(args)
    assert helper is not None
    real = helper.offer
    count = itertools.count()

    def offer(doc: bytes, plain: bool) -> bool:
        return take(next(count)) and real(doc, plain)

    helper.offer = offer  # type: ignore[method-assign]
    scanner = PackageScanner()
    scanner.helper = helper
    return scanner, helper


def reaped(pid: int) -> bool:
    """The child is gone and collected (waitpid would reap a zombie: then it was not)."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return True
    return False


ODD = lambda i: i % 2 == 1  # noqa: E731
EVEN = lambda i: i % 2 == 0  # noqa: E731
ALL = lambda i: True  # noqa: E731
VALID = [stream([META, *CRDS]), stream([*CRDS[:3], META, *CRDS[3:]]),
         stream([CRDS[0], "# only a comment\n", META, "\n", CRDS[1]])]


@pytest.mark.usefixtures("everything")
@pytest.mark.parametrize("take", [ODD, EVEN, ALL], ids=["odd", "even", "all"])
@pytest.mark.parametrize("data", VALID, ids=["meta-first", "meta-inside", "blank-docs"])
def test_a_valid_stream_gives_the_serial_package(data: bytes, take: Callable[[int], bool]
                                                 ) -> None:
    scanner, helper = steered(take)
    assert outcome(scanner, data) == serial(data)
    assert helper.answered > 0
    assert reaped(helper.pid)


# (documents, index of the failing one); the child takes the odd or the even documents.
FAILING = {
    "bad-yaml": [META, CRDS[0], CRDS[1], BAD_YAML, CRDS[2]],
    "no-kind": [META, CRDS[0], NO_KIND, CRDS[1]],
    "disallowed": [META, CRDS[0], SECRET, CRDS[1]],
    "aliases": [META, CRDS[0], CRDS[1], ALIASES, CRDS[2]],
    "second-meta": [META, CRDS[0], CRDS[1], OTHER_META, CRDS[2]],
    "bad-then-no-kind": [META, CRDS[0], BAD_YAML, NO_KIND, CRDS[1]],
    "no-kind-then-bad": [META, NO_KIND, BAD_YAML, CRDS[1]],
    "bad-then-bad-separator": [META, CRDS[0], BAD_YAML, CRDS[1], "--- x\n" + CRDS[2]],
    "bad-separator-first": [META, CRDS[0], "--- x\n" + CRDS[1], BAD_YAML],
}


@pytest.mark.usefixtures("everything")
@pytest.mark.parametrize("take", [ODD, EVEN], ids=["child-odd", "child-even"])
@pytest.mark.parametrize("name", sorted(FAILING))
def test_the_first_failing_document_decides_wherever_it_was_parsed(
        name: str, take: Callable[[int], bool]) -> None:
    """The failing documents fall in the child's share for one steering and in the parent's
    for the other; with two failures, each side holds one, in both orders."""
    data = stream(FAILING[name])
    want = serial(data)
    assert isinstance(want, tuple)
    scanner, helper = steered(take)
    assert outcome(scanner, data) == want
    assert reaped(helper.pid)


@pytest.mark.usefixtures("everything")
@pytest.mark.parametrize("data", [VALID[1], stream(FAILING["bad-yaml"] + CRDS)],
                         ids=["valid", "invalid"])
def test_a_child_killed_mid_stream_changes_nothing(data: bytes) -> None:
    scanner, helper = steered(ODD)

    def kill(n: int) -> None:
        if n == 3:
            os.kill(helper.pid, signal.SIGKILL)

    assert outcome(scanner, data, during=kill) == serial(data)
    assert helper.dead
    assert reaped(helper.pid)


@pytest.mark.usefixtures("everything")
def test_a_stopped_child_is_killed_at_its_deadline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(parallel, "STALL", 0.3)
    data = VALID[0]
    scanner, helper = steered(ALL)

    def stop(n: int) -> None:
        if n == 1:
            os.kill(helper.pid, signal.SIGSTOP)

    assert outcome(scanner, data, during=stop) == serial(data)
    assert helper.dead
    assert reaped(helper.pid)


# A child that says HELLO, then answers the first document it reads with ``answer``.
ANSWER_FIRST = ("import os, struct, sys; os.write(1, b'crossfetch-yaml-helper 1\\n'); "
                "n, _ = struct.unpack('!IB', sys.stdin.buffer.read(5)); "
                "os.write(1, struct.pack('!cIII', {answer}); sys.stdin.buffer.read()")


@pytest.mark.usefixtures("everything")
@pytest.mark.parametrize("args", [
    ["-c", "import sys; sys.exit(3)"],
    ["-c", "import sys, time; sys.stdout.write('hello\\n'); sys.stdout.flush(); time.sleep(30)"],
    ["-c", "import os, sys; os.write(1, b'crossfetch-yaml-helper 1\\n+' + bytes(12)); "
     "sys.stdin.buffer.read()"],
    ["-c", ANSWER_FIRST.format(answer="b'+', n, 2, 0) + b'\\xff\\xfe'")],
    ["-c", ANSWER_FIRST.format(answer="b'+', n, 3 * n, 0) + b'x' * 3 * n")],
], ids=["exits", "not-a-helper", "wrong-answer", "not-utf8", "too-long"])
def test_a_child_that_is_not_a_helper_is_dropped(args: list[str]) -> None:
    data = stream(FAILING["disallowed"] + CRDS)
    scanner, helper = steered(ALL, args)
    assert outcome(scanner, data) == serial(data)
    assert helper.dead
    assert reaped(helper.pid)


def test_the_child_never_imports_from_the_working_directory(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, everything: None) -> None:
    """``python -m`` puts the working directory first on the path: a ``yaml.py`` in it (say,
    in a cloned repository the user pulls from) must not run in the helper."""
    marker = tmp_path / "ran"
    (tmp_path / "yaml.py").write_text(f"open({str(marker)!r}, 'w').close()\n"
                                      "raise SystemExit(7)\n")
    monkeypatch.chdir(tmp_path)
    data = stream([META, *CRDS])
    scanner, helper = steered(ALL)
    assert outcome(scanner, data) == serial(data)
    assert helper.answered > 0 and not marker.exists()


def test_no_helper_without_an_interpreter(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "executable", "/nonexistent/python")
    assert parallel.start() is None
    monkeypatch.setattr(sys, "executable", "")
    assert parallel.start() is None
    monkeypatch.undo()
    monkeypatch.setattr(parallel, "cpus", lambda: 1)
    assert parallel.start() is None


# --- through read_package_yaml --------------------------------------------------------------


def _layer(data: bytes) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        info = tarfile.TarInfo("package.yaml")
        info.size = len(data)
        t.addfile(info, io.BytesIO(data))
    return gzip.compress(buf.getvalue(), compresslevel=1)


def _chunks(blob: bytes) -> Iterator[bytes]:
    for i in range(0, len(blob), 65536):
        yield blob[i:i + 65536]


@pytest.fixture
def helpers(monkeypatch: pytest.MonkeyPatch) -> list[parallel.Helper]:
    started: list[parallel.Helper] = []
    real = parallel.start

    def start(args: list[str] | None = None) -> parallel.Helper | None:
        h = real(args)
        if h is not None:
            started.append(h)
        return h

    monkeypatch.setattr(parallel, "start", start)
    monkeypatch.setattr(xstream, "_PARALLEL_MIN", 1024 * 1024)
    monkeypatch.setattr(xstream, "_THREAD_MIN", 1024 * 1024)
    return started


BIG_DOCS = [META, *CRDS * 12]  # ~1.4 MB


@pytest.mark.parametrize("docs", [BIG_DOCS, [*BIG_DOCS[:200], BAD_YAML, *BIG_DOCS[200:]]],
                         ids=["valid", "invalid"])
def test_read_package_yaml_uses_a_helper_for_a_big_stream_and_reaps_it(
        helpers: list[parallel.Helper], docs: list[str]) -> None:
    data = stream(docs)
    assert len(data) > 1024 * 1024
    blob = _layer(data)
    sink = io.BytesIO()
    try:
        got: object = read_package_yaml(_chunks(blob), "sha256:" + hashlib.sha256(blob).hexdigest(),
                                        sink, expected_size=len(blob)).to_dict()
    except PackageError as e:
        got = type(e).__name__, str(e), e.cause, e.fix
    assert got == serial(data)
    if docs is BIG_DOCS:
        assert sink.getvalue() == data
    assert len(helpers) == 1
    assert helpers[0].answered > 0
    assert helpers[0].dead
    assert reaped(helpers[0].pid)


def test_read_flattened_uses_a_helper_for_a_big_stream_and_reaps_it(
        helpers: list[parallel.Helper], tmp_path: Path) -> None:
    data = stream(BIG_DOCS)
    blob = _layer(data)
    d = Descriptor("application/vnd.oci.image.layer.v1.tar+gzip",
                   "sha256:" + hashlib.sha256(blob).hexdigest(), len(blob))
    sink = io.BytesIO()
    got = read_flattened([(d, _chunks(blob))], sink, tmp_dir=tmp_path)
    assert got.package.to_dict() == serial(data)
    assert sink.getvalue() == data
    assert len(helpers) == 1
    assert helpers[0].answered > 0
    assert reaped(helpers[0].pid)


def _gone(pid: int) -> bool:
    """No such process, or only its zombie (it exited; its new parent reaps it)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except FileNotFoundError:
        return True


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="reads /proc")
def test_the_child_exits_when_its_parent_is_killed() -> None:
    code = ("import time; from crossfetch.xpkg import parallel; h = parallel.start(); "
            "print(h.pid, flush=True); time.sleep(60)")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)
    try:
        assert proc.stdout is not None
        pid = int(proc.stdout.readline())
    finally:
        proc.kill()
        proc.wait()
    deadline = time.monotonic() + 30
    while not _gone(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _gone(pid)


SILENT = ["-c", "import os, sys; os.write(1, b'crossfetch-yaml-helper 1\\n'); "
          "sys.stdin.buffer.read()"]


@pytest.mark.usefixtures("everything")
@pytest.mark.parametrize("name", ["valid", *sorted(FAILING)])
def test_the_parent_takes_back_what_a_silent_child_holds(
        monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    """A child that reads but never answers: at the end the parent takes back every document
    but the first unanswered one, which waits for the deadline; the verdict is the serial one."""
    monkeypatch.setattr(parallel, "STALL", 0.3)
    data = VALID[1] if name == "valid" else stream(FAILING[name])
    scanner, helper = steered(ALL, SILENT)
    assert outcome(scanner, data) == serial(data)
    assert helper.answered == 0
    assert helper.dead
    assert reaped(helper.pid)


def test_documents_outside_the_size_bounds_stay_with_the_parent() -> None:
    helper = parallel.start()
    assert helper is not None
    try:
        assert not helper.offer(b"x" * (parallel.MIN_DOC - 1), True)
        assert not helper.offer(b"x" * (parallel.MAX_DOC + 1), True)
        assert helper.pending == 0
        assert helper.offer(b"x" * parallel.MIN_DOC, True)
        assert helper.pending == 1
    finally:
        helper.close()
    assert reaped(helper.pid)


@pytest.mark.usefixtures("everything")
@pytest.mark.parametrize("take", [ODD, EVEN], ids=["child-odd", "child-even"])
def test_an_earlier_failing_document_comes_before_the_size_cap(
        take: Callable[[int], bool]) -> None:
    data = stream([META, CRDS[0], BAD_YAML, *CRDS])
    cap = len(data) - 1

    def run(scanner: PackageScanner) -> object:
        scanner.max_bytes = cap
        return outcome(scanner, data)

    want = run(PackageScanner())
    assert isinstance(want, tuple) and want[2] == "invalid-yaml"
    scanner, helper = steered(take)
    assert run(scanner) == want
    assert reaped(helper.pid)


@settings(max_examples=max(60, EXAMPLES // 5), deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(data=mutated(), odd=st.booleans(), cuts=st.lists(st.integers(0, 4000), max_size=6))
def test_mutated_streams_give_the_serial_verdict(data: bytes, odd: bool, cuts: list[int]) -> None:
    """The fuzz corpus's mutations, the child taking every other document, in pieces."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(parallel, "WINDOW", 1 << 40)
        mp.setattr(parallel, "MAX_DOCS", 1 << 30)
        mp.setattr(parallel, "MIN_DOC", 0)
        scanner, helper = steered(lambda i: i % 2 == odd)
        try:
            pos = 0
            for cut in sorted(c for c in cuts if c <= len(data)):
                scanner.feed(data[pos:cut])
                pos = cut
            scanner.feed(data[pos:])
            got: object = scanner.finish().to_dict()
        except (PackageError, LimitExceeded) as e:
            got = type(e).__name__, str(e), e.cause, e.fix
        finally:
            scanner.close()
    assert got == serial(data)
    assert reaped(helper.pid)
