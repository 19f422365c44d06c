"""Fuzz the reference parser: only InvalidReference escapes, and whatever parses is printable
ASCII that round-trips (so it can go into a request line without UnicodeEncodeError)."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from crossfetch.errors import InvalidReference
from crossfetch.reference import Reference

EXAMPLES = int(os.environ.get("CROSSFETCH_FUZZ_EXAMPLES", "0")) or 1000  # per test, per run
ALPHABET = st.sampled_from([*"abcxyzAZ019._-/:@[]", "\n", " ", "\u00fc", "\uff11", "\u00b2",
                            "\x00", "sha256:", "::1"])
TEXTS = st.one_of(
    st.text(max_size=80),
    st.lists(ALPHABET, max_size=40).map("".join),
    st.builds(lambda host, path, tag: f"{host}/{path}:{tag}",
              st.text(min_size=1, max_size=20), st.text(min_size=1, max_size=20),
              st.text(max_size=20)),
)


def check(text: str, default: str | None) -> None:
    try:
        ref = Reference.parse(text, default_registry=default)
    except InvalidReference as e:
        assert (e.exit_code == 2 and e.fix is not None) or e.message
        return
    s = str(ref)
    s.encode("ascii")
    assert s.isprintable() and not any(c.isspace() for c in s)
    assert Reference.parse(s, default_registry=default) == ref
    assert ref.port is None or 0 < ref.port < 65536


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=TEXTS, default=st.one_of(st.none(), st.sampled_from(
    ["xpkg.crossplane.io", "localhost:5000", "reg.io\n", "r\u00e9g.io", "[::1]:5000"])))
@example(text="reg.io/a:\u00fcn\u00ef", default=None)
@example(text="reg.io:6\u00b200/a", default=None)
@example(text="reg.io/a:v1\n", default=None)
def test_reference_parser_only_raises_invalid_reference(text: str, default: str | None) -> None:
    check(text, default)
