"""Fuzz the package stream (PackageScanner): arbitrary bytes, and real packages with lines
replaced, inserted or cut, fed in arbitrary pieces. Only PackageError and LimitExceeded may
escape, and the result never depends on how the stream was split."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crossfetch.errors import LimitExceeded, PackageError
from crossfetch.xpkg import PackageScanner
from tests.support.packages import package_stream
from tests.support.testdata import TESTDATA

EXAMPLES = int(os.environ.get("CROSSFETCH_FUZZ_EXAMPLES", "0")) or 500  # per test, per run
DOCUMENTED = (PackageError, LimitExceeded)
SEEDS = [
    package_stream((TESTDATA / "function-auto-ready/crossplane.yaml").read_text(), [
        (TESTDATA / "function-auto-ready/input/autoready.fn.crossplane.io_inputs.yaml")
        .read_text()]),
    package_stream((TESTDATA / "configuration-aws-network/crossplane.yaml").read_text(), [
        "apiVersion: apiextensions.crossplane.io/v1\nkind: Composition\nmetadata: {name: c}\n"]),
]
LINES = st.sampled_from([b"---", b"--- # c", b"--- x", b"...", b"kind: Composition",
                         b"apiVersion: meta.pkg.crossplane.io/v1", b"kind: Provider", b"a: &a [1]",
                         b"b: [*a, *a]", b"*a", b"\xff\xfe", b"\tx: 1", b"[" * 1200, b"- x",
                         b"  nested: {", b"kind: 5", b"%YAML 1.2", b"\xef\xbb\xbf", b"# c", b""])


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    lines = draw(st.sampled_from(SEEDS)).split(b"\n")
    for _ in range(draw(st.integers(1, 5))):
        i = draw(st.integers(0, len(lines)))
        op = draw(st.sampled_from(["insert", "replace", "delete"]))
        if op == "insert":
            lines.insert(i, draw(st.one_of(LINES, st.binary(max_size=20))))
        elif lines and i < len(lines):
            if op == "replace":
                lines[i] = draw(st.one_of(LINES, st.binary(max_size=20)))
            else:
                del lines[i]
    return b"\n".join(lines)


def scan(data: bytes, cuts: list[int]) -> object:
    s = PackageScanner()
    pos = 0
    try:
        for cut in sorted(cuts):
            s.feed(data[pos:cut])
            pos = max(pos, cut)
        s.feed(data[pos:])
        return s.finish().to_dict()
    except DOCUMENTED as e:
        return (type(e).__name__, e.cause)


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.one_of(st.binary(max_size=400), mutated()), cuts=st.lists(
    st.integers(0, 4000), max_size=8))
def test_only_documented_errors_and_split_independence(data: bytes, cuts: list[int]) -> None:
    assert scan(data, cuts) == scan(data, [])


def test_a_bom_is_dropped_however_the_stream_is_split() -> None:
    """Hypothesis found it: a stream starting with a UTF-8 BOM split inside the BOM."""
    for pre in (b"\xef\xbb\xbf", b"\xef\xbb", b"\xef"):
        data = pre + SEEDS[0]
        for cut in range(5):
            assert scan(data, [cut]) == scan(data, []), (pre, cut)
