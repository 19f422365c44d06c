"""Fuzz the WWW-Authenticate parser (transport/challenge.py): only MalformedChallenge escapes.

(tests/unit/test_challenge_parse.py holds the parser's own fuzz test; this one mixes in the
characters that break hand-written scanners: quotes, escapes, commas, '=' and non-ASCII.)"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crossfetch.transport.challenge import Challenge, MalformedChallenge, parse_challenges, pick

EXAMPLES = int(os.environ.get("CROSSFETCH_FUZZ_EXAMPLES", "0")) or 1000  # per test, per run
PIECES = st.sampled_from(['Bearer', 'Basic', ' ', ',', '=', '"', '\\', 'realm', '"https://a/t"',
                          'service="r"', 'scope="repository:a:pull,push"', '\t', 'abc==',
                          '\u00fc', '\x00', '\r\n', 'error="insufficient_scope"', ';'])


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(header=st.one_of(st.text(max_size=120), st.lists(PIECES, max_size=30).map("".join)))
def test_only_malformed_challenge_escapes(header: str) -> None:
    try:
        challenges = parse_challenges(header)
    except MalformedChallenge as e:
        assert e.cause == "malformed-challenge"
        return
    assert all(isinstance(c, Challenge) and c.scheme == c.scheme.lower() for c in challenges)
    chosen = pick(challenges)
    assert chosen is None or chosen in challenges
