"""WWW-Authenticate parsing: examples from real registries, edge cases, and a fuzz test."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crossfetch.errors import CrossfetchError
from crossfetch.transport.challenge import (
    MAX_HEADER,
    Challenge,
    MalformedChallenge,
    parse_challenges,
    pick,
)


def test_distribution_bearer_challenge() -> None:
    [c] = parse_challenges('Bearer realm="https://auth.example/token",service="registry.example",'
                           'scope="repository:team/app:pull,push"')
    assert c.scheme == "bearer"
    assert c.params == {"realm": "https://auth.example/token", "service": "registry.example",
                        "scope": "repository:team/app:pull,push"}


def test_quoted_commas_and_equals_stay_in_the_value() -> None:
    [c] = parse_challenges('Bearer realm="https://a/t?x=1,y=2", scope="repository:a:pull,push"')
    assert c.get("realm") == "https://a/t?x=1,y=2"
    assert c.get("scope") == "repository:a:pull,push"


def test_several_challenges_in_one_header() -> None:
    cs = parse_challenges('Basic realm="reg, inc", Bearer realm="https://t", error='
                          '"insufficient_scope", Negotiate')
    assert [c.scheme for c in cs] == ["basic", "bearer", "negotiate"]
    assert cs[0].get("realm") == "reg, inc"
    assert cs[1].get("error") == "insufficient_scope"


def test_token68_and_unknown_schemes() -> None:
    cs = parse_challenges("NTLM TlRMTVNTUAACAAAA==, Basic realm=plain")
    assert cs[0] == Challenge("ntlm", {}, "TlRMTVNTUAACAAAA==")
    assert cs[1].get("realm") == "plain"
    assert pick(cs) == cs[1]


def test_pick_prefers_bearer_and_ignores_unknown() -> None:
    cs = parse_challenges('Basic realm="a", Bearer realm="b"')
    picked = pick(cs)
    assert picked is not None and picked.scheme == "bearer"
    assert pick(parse_challenges("Negotiate, Digest realm=x")) is None


def test_case_insensitive_names_and_escapes() -> None:
    [c] = parse_challenges('BEARER Realm="a\\"b\\\\c" ,  Service = svc')
    assert c.scheme == "bearer"
    assert c.get("realm") == 'a"b\\c'
    assert c.get("service") == "svc"


def test_empty_header_and_empty_list_elements() -> None:
    assert parse_challenges("") == []
    assert parse_challenges(" , ,") == []
    assert [c.scheme for c in parse_challenges(", Basic ,, Bearer realm=x,")] == \
        ["basic", "bearer"]


@pytest.mark.parametrize("garbage", ['Bearer realm="unterminated', "=", '"quoted"',
                                     "Bearer realm=x junk=", "Bearer a b", "Bearer realm=",
                                     "Bearer realm=x y", "Basic realm=\"a\"\"b\"", "\x00\x01"])
def test_garbage_raises_a_crossfetch_error_with_a_fix(garbage: str) -> None:
    try:
        result = parse_challenges(garbage)
    except MalformedChallenge as e:
        assert e.fix and "WWW-Authenticate" in e.message
    else:
        # a few inputs are odd but legal (e.g. a token68 of "realm=")
        assert all(isinstance(c, Challenge) for c in result)


def test_oversized_header_is_refused() -> None:
    with pytest.raises(MalformedChallenge):
        parse_challenges("Bearer realm=\"" + "a" * MAX_HEADER + "\"")


# -- fuzz -------------------------------------------------------------------------------------

_pieces = st.sampled_from(['Bearer', 'Basic', 'realm', 'service', 'scope', '=', ',', ' ', '"',
                           '\\', 'https://a/t', 'repository:x:pull,push', 'error',
                           'insufficient_scope', '==', 'Negotiate', '\t', 'ä', ';', ':'])
_structured = st.lists(_pieces, max_size=30).map("".join)


def _challenge_text(scheme: str, params: dict[str, str]) -> str:
    def q(v: str) -> str:
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return scheme + (" " + ", ".join(f"{k}={q(v)}" for k, v in params.items()) if params else "")


_names = st.from_regex(r"[a-z][a-z0-9_]{0,8}", fullmatch=True)
_values = st.text(alphabet=st.characters(exclude_categories=["Cs"], exclude_characters="\r\n"),
                  max_size=20)


@settings(max_examples=400, deadline=None)
@given(st.one_of(st.text(max_size=200), _structured))
def test_fuzz_only_crossfetch_errors(header: str) -> None:
    try:
        result = parse_challenges(header)
    except CrossfetchError:
        return
    for c in result:
        assert c.scheme == c.scheme.lower() and c.scheme
        assert all(k == k.lower() for k in c.params)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["Bearer", "Basic", "Custom"]),
                          st.dictionaries(_names, _values, max_size=4)), min_size=1, max_size=4))
def test_fuzz_round_trip_of_well_formed_headers(challenges: list[tuple[str, dict[str, str]]]
                                                ) -> None:
    header = ", ".join(_challenge_text(s, p) for s, p in challenges)
    parsed = parse_challenges(header)
    assert [(c.scheme, c.params) for c in parsed] == [(s.lower(), p) for s, p in challenges]
