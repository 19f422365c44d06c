"""The request deadline, the blob floor rate and the ambient budget (transport.deadline), on a
fake clock: no timing assertions. The wire-level tests drive a local server that drips."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest

from crossfetch.transport import deadline as dl
from crossfetch.transport.connection import Pool, Request, WireError
from crossfetch.transport.deadline import Deadline, Floor, Pace, Stalled, budget


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    c = Clock()
    monkeypatch.setattr(dl.time, "monotonic", c)
    return c


def test_deadline_bounds_each_wait_and_then_stops(clock: Clock) -> None:
    pace = Pace(60.0, Deadline(10.0, "GET /m"))
    assert pace.wait() == 10.0  # shorter than the read timeout
    clock.now += 9.5
    assert pace.wait() == pytest.approx(0.5)
    clock.now += 0.5
    with pytest.raises(Stalled, match=r"GET /m did not finish within 10 s \(0 bytes received\)"):
        pace.wait()


def test_read_timeout_when_the_deadline_is_far(clock: Clock) -> None:
    assert Pace(5.0, Deadline(100.0)).wait() == 5.0
    assert Pace(5.0, None).wait() == 5.0


def test_floor_replaces_the_deadline_for_the_body(clock: Clock) -> None:
    pace = Pace(60.0, Deadline(10.0), Floor(rate=100.0, window=4.0))
    pace.body()
    clock.now += 50  # long past the request deadline: the body is judged by its rate
    pace.got(1000)
    assert pace.wait() == 4.0  # enough bytes in the window: a new one starts


def test_floor_rate_over_the_window(clock: Clock) -> None:
    pace = Pace(60.0, None, Floor(rate=100.0, window=4.0))
    pace.body()
    pace.got(500)  # 500 B in the first window: above 400 (100 B/s x 4 s)
    clock.now += 4.0
    assert pace.wait() == 4.0  # a new window starts
    pace.got(10)
    clock.now += 4.0
    with pytest.raises(Stalled, match=r"below the floor of 100 B/s \(510 bytes received\)"):
        pace.wait()


def test_floor_zero_is_no_floor(clock: Clock) -> None:
    pace = Pace(60.0, Deadline(10.0), Floor(rate=0.0))
    pace.body()
    clock.now += 5
    assert pace.wait() == pytest.approx(5.0)  # the deadline still holds


def test_budget_is_ambient_and_the_earliest_wins(clock: Clock) -> None:
    with budget(20.0, "the package stage"):
        pace = Pace(60.0, Deadline(30.0))
        assert pace.wait() == 20.0
        with budget(50.0, "an inner step"):
            assert Pace(60.0, None).wait() == 20.0  # the outer budget is earlier
        clock.now += 20.0
        with pytest.raises(Stalled, match="the package stage did not finish within 20 s"):
            pace.wait()
    assert Pace(60.0, None).wait() == 60.0  # outside the budget


# --- on the wire ----------------------------------------------------------------------------


@pytest.fixture
def dripper() -> Iterator[tuple[str, threading.Event]]:
    """A server that sends a status line and headers one byte every 50 ms, forever."""
    stop = threading.Event()
    srv = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        srv.settimeout(0.1)
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
            except TimeoutError:
                continue
            with conn:
                conn.recv(65536)
                data = b"HTTP/1.1 200 OK\r\nX-Pad: " + b"a" * 100000
                for i in range(len(data)):
                    if stop.wait(0.05):
                        break
                    try:
                        conn.sendall(data[i:i + 1])
                    except OSError:
                        break

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{srv.getsockname()[1]}/", stop
    stop.set()
    t.join(5)
    srv.close()


def test_dripped_headers_end_at_the_deadline(dripper: tuple[str, threading.Event]) -> None:
    url, _ = dripper
    pool = Pool(ssl_context=None, connect_timeout=5, read_timeout=5)
    with pytest.raises(WireError) as e:
        pool.send(Request("GET", url), deadline=0.5)
    assert e.value.phase == "stalled" and "did not finish within 0.5 s" in str(e.value)
    pool.close()


def test_dripped_headers_end_at_the_ambient_budget(dripper: tuple[str, threading.Event]) -> None:
    url, _ = dripper
    pool = Pool(ssl_context=None, connect_timeout=5, read_timeout=5)
    with budget(0.5, "the stage"), pytest.raises(WireError, match="the stage did not finish"):
        pool.send(Request("GET", url))
    pool.close()
