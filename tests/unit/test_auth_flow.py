"""The RegistryAuth flow driven by hand (no network): a fake Transport answers token requests.

Each rule of crossfetch.transport.auth has a test here that fails without it.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from urllib.parse import parse_qs

import pytest

from crossfetch.errors import AuthError, LimitExceeded, PolicyRefused, Unauthorized
from crossfetch.policy.model import (
    AuthPolicy,
    Credential,
    Decision,
    Endpoint,
    Source,
    TLSConfig,
    TLSMode,
)
from crossfetch.reference import Reference
from crossfetch.transport.auth import (
    MAX_TOKEN_RESPONSE,
    RegistryAuth,
    merge_scopes,
)
from crossfetch.transport.challenge import MalformedChallenge
from crossfetch.transport.connection import Auth, Headers, Request, Response
from crossfetch.transport.deferred import DeferredAuth
from crossfetch.transport.tokens import TokenCache

REG = "registry.example:5000"
REALM = "https://auth.example/token"
PASSWORD = "pa55-w0rd-secret"
CRED = Credential(username="alice", password=PASSWORD, source=Source("flag", "--username"))
BEARER = f'Bearer realm="{REALM}",service="reg",scope="repository:team/app:pull"'


@dataclass
class Keys:
    """A Keychain stub that counts lookups."""

    cred: Credential | None
    calls: list[str] = field(default_factory=list)

    def describe(self, registry: str) -> Source | None:
        return self.cred.source if self.cred else None

    def resolve(self, registry: str) -> Credential | None:
        self.calls.append(registry)
        return self.cred


@dataclass
class FakeTransport:
    """Stands in for crossfetch.transport.session.Transport: answers token requests."""

    answer: Callable[[Request], Response] | None = None
    requests: list[tuple[Endpoint, Request]] = field(default_factory=list)
    plain: bool = False
    tokens: TokenCache = field(default_factory=TokenCache)

    def effective_url(self, ep: Endpoint) -> str:
        return ep.url

    def request(self, ep: Endpoint, method: str, url: str, *, headers: dict[str, str] | None = None,
                auth: Auth | None = None, stream: bool = False,
                content: bytes | None = None, **kw: object) -> Response:
        req = Request(method, url, headers=headers, content=content)
        if auth is not None:
            req = next(auth.auth_flow(req))
        self.requests.append((ep, req))
        if self.answer:
            resp = self.answer(req)
        else:
            resp = Response(200, request=req, content=json.dumps(
                {"token": f"tok{len(self.requests)}", "expires_in": 300}).encode())
        resp.request = req
        return resp


def decision(*, cred: Credential | None = CRED, scheme: str = "https", allow: bool = False,
             mode: TLSMode | None = None) -> tuple[Decision, Endpoint, Keys]:
    ref = Reference.parse(f"{REG}/team/app:v1")
    tls = TLSConfig(mode=mode or (TLSMode.DISABLED if scheme == "http" else TLSMode.STRICT))
    ep = Endpoint(url=f"{scheme}://{REG}", tls=tls)
    keys = Keys(cred)
    return Decision(ref, ref, (ep,), AuthPolicy(keys, allow)), ep, keys


def auth_for(t: FakeTransport, **kw: object) -> tuple[RegistryAuth, Keys]:
    d, ep, keys = decision(**kw)  # type: ignore[arg-type]
    return RegistryAuth(ep, d, "pull", transport=t), keys  # type: ignore[arg-type]


Flow = Generator[Request, Response, None]


def start(auth: RegistryAuth, url: str = f"https://{REG}/v2/team/app/manifests/v1",
          method: str = "GET") -> tuple[Flow, Request]:
    flow = auth.auth_flow(Request(method, url))
    return flow, next(flow)


def reply(flow: Flow, req: Request, status: int, challenge: str | None = None
          ) -> Request | None:
    headers = {"WWW-Authenticate": challenge} if challenge else {}
    try:
        return flow.send(Response(status, headers=Headers(headers), request=req))
    except StopIteration:
        return None


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


# -- Basic ----------------------------------------------------------------------------------


def test_basic_challenge_answered_with_credentials() -> None:
    auth, _ = auth_for(FakeTransport())
    flow, req = start(auth)
    assert "authorization" not in req.headers
    again = reply(flow, req, 401, 'Basic realm="reg"')
    assert again is not None and again.headers["authorization"] == basic("alice", PASSWORD)
    assert reply(flow, again, 200) is None


def test_basic_rejected_credentials_fail_naming_the_source() -> None:
    auth, _ = auth_for(FakeTransport())
    flow, req = start(auth)
    again = reply(flow, req, 401, 'Basic realm="reg"')
    assert again is not None
    with pytest.raises(Unauthorized) as info:
        reply(flow, again, 401, 'Basic realm="reg"')
    assert "flag --username" in str(info.value) and PASSWORD not in str(info.value)


def test_no_credentials_leaves_the_401_to_the_caller() -> None:
    auth, _ = auth_for(FakeTransport(), cred=None)
    flow, req = start(auth)
    assert reply(flow, req, 401, 'Basic realm="reg"') is None


def test_unknown_scheme_leaves_the_401_to_the_caller() -> None:
    auth, keys = auth_for(FakeTransport())
    flow, req = start(auth)
    assert reply(flow, req, 401, "Negotiate abc==") is None
    assert keys.calls == []


def test_credentials_are_looked_up_only_when_challenged() -> None:
    auth, keys = auth_for(FakeTransport())
    flow, req = start(auth)
    assert reply(flow, req, 200) is None
    assert keys.calls == []


def test_malformed_challenge_is_a_crossfetch_error() -> None:
    auth, _ = auth_for(FakeTransport())
    flow, req = start(auth)
    with pytest.raises(MalformedChallenge):
        reply(flow, req, 401, 'Bearer realm="unterminated')


# -- plain HTTP -----------------------------------------------------------------------------


def test_plain_http_credentials_refused_naming_flag_and_field() -> None:
    auth, _ = auth_for(FakeTransport(), scheme="http")
    flow, req = start(auth, f"http://{REG}/v2/team/app/manifests/v1")
    with pytest.raises(PolicyRefused) as info:
        reply(flow, req, 401, 'Basic realm="reg"')
    err = info.value
    assert err.cause == "plain-http-credentials"
    assert "--allow-plain-http-credentials" in (err.fix or "")
    assert "spec.registry.authentication.allowCredentialsOverPlainHTTP: true" in (err.fix or "")
    assert PASSWORD not in str(err)


def test_plain_http_credentials_sent_with_opt_in() -> None:
    auth, _ = auth_for(FakeTransport(), scheme="http", allow=True)
    flow, req = start(auth, f"http://{REG}/v2/team/app/manifests/v1")
    again = reply(flow, req, 401, 'Basic realm="reg"')
    assert again is not None and again.headers["authorization"] == basic("alice", PASSWORD)


def test_token_got_with_credentials_is_not_sent_over_plain_http() -> None:
    t = FakeTransport()
    auth, _ = auth_for(t, scheme="http")
    flow, req = start(auth, f"http://{REG}/v2/team/app/manifests/v1")
    with pytest.raises(PolicyRefused):
        reply(flow, req, 401, BEARER)
    assert t.requests == []  # not even the token request was made


def test_anonymous_token_over_plain_http_is_fine() -> None:
    auth, _ = auth_for(FakeTransport(), scheme="http", cred=None)
    flow, req = start(auth, f"http://{REG}/v2/team/app/manifests/v1")
    again = reply(flow, req, 401, BEARER)
    assert again is not None and again.headers["authorization"] == "Bearer tok1"


# -- realms ---------------------------------------------------------------------------------


@pytest.mark.parametrize("realm,cause", [
    ("http://auth.example/token", "plain-http-realm"),
    ("https://169.254.169.254/latest/meta-data", "unsafe-realm"),
    ("https://[fe80::1]/token", "unsafe-realm"),
    ("https://metadata.google.internal/token", "unsafe-realm"),
])
def test_unsafe_realms_are_refused(realm: str, cause: str) -> None:
    t = FakeTransport()
    auth, _ = auth_for(t, cred=None)
    flow, req = start(auth)
    with pytest.raises(PolicyRefused) as info:
        reply(flow, req, 401, f'Bearer realm="{realm}",service="reg"')
    assert info.value.cause == cause
    assert t.requests == []


def test_plain_http_realm_allowed_when_the_registry_may_be_plain() -> None:
    t = FakeTransport()
    auth, _ = auth_for(t, cred=None, scheme="http")
    flow, req = start(auth, f"http://{REG}/v2/team/app/manifests/v1")
    again = reply(flow, req, 401, f'Bearer realm="http://{REG}/token",service="reg"')
    assert again is not None
    ep, token_req = t.requests[0]
    assert token_req.url.scheme == "http" and ep.tls.mode is TLSMode.DISABLED


def test_realm_without_url_or_missing_is_malformed() -> None:
    for challenge in ['Bearer service="reg"', 'Bearer realm="ftp://x/y"']:
        auth, _ = auth_for(FakeTransport(), cred=None)
        flow, req = start(auth)
        with pytest.raises(MalformedChallenge):
            reply(flow, req, 401, challenge)


def test_token_request_to_another_host_gets_strict_tls_and_no_client_cert() -> None:
    t = FakeTransport()
    auth, _ = auth_for(t)
    flow, req = start(auth)
    reply(flow, req, 401, BEARER)
    ep, token_req = t.requests[0]
    assert ep.url == "https://auth.example" and ep.tls.mode is TLSMode.STRICT
    assert ep.tls.client is None and ep.headers == ()
    assert token_req.headers["authorization"] == basic("alice", PASSWORD)
    q = parse_qs(token_req.url.query)
    assert q == {"service": ["reg"], "scope": ["repository:team/app:pull"], "account": ["alice"]}


# -- bearer tokens --------------------------------------------------------------------------


def test_bearer_token_is_cached_across_flows_of_one_transport() -> None:
    t = FakeTransport()
    auth, _ = auth_for(t)
    flow, req = start(auth)
    again = reply(flow, req, 401, BEARER)
    assert again is not None and again.headers["authorization"] == "Bearer tok1"
    reply(flow, again, 200)
    # A second RegistryAuth on the same transport (another blob, another decision) sends the
    # cached token up front: no 401 round trip, no second token request.
    other, _ = auth_for(t)
    _, first = start(other, f"https://{REG}/v2/team/app/blobs/sha256:" + "a" * 64)
    assert first.headers["authorization"] == "Bearer tok1"
    assert len(t.requests) == 1
    # A different transport does not share it.
    fresh, _ = auth_for(FakeTransport())
    _, first = start(fresh)
    assert "authorization" not in first.headers


def test_expired_token_is_fetched_again() -> None:
    now = [1000.0]
    t = FakeTransport()
    t.tokens.clock = lambda: now[0]
    auth, _ = auth_for(t)
    flow, req = start(auth)
    reply(flow, req, 401, BEARER)
    now[0] += 301  # expires_in 300
    _, first = start(auth)
    assert first.headers["authorization"] == "Bearer tok2"
    assert len(t.requests) == 2


def test_rejected_token_is_dropped_and_asked_again_once() -> None:
    t = FakeTransport()
    auth, _ = auth_for(t)
    flow, req = start(auth)
    again = reply(flow, req, 401, BEARER)
    assert again is not None
    third = reply(flow, again, 401, BEARER + ',error="invalid_token"')
    assert third is not None and third.headers["authorization"] == "Bearer tok2"
    with pytest.raises(Unauthorized):
        reply(flow, third, 401, BEARER + ',error="invalid_token"')


def test_insufficient_scope_widens_once_then_fails_clearly() -> None:
    t = FakeTransport()
    auth, _ = auth_for(t)
    url = f"https://{REG}/v2/team/app/blobs/uploads/"
    flow, req = start(auth, url, "POST")
    again = reply(flow, req, 401, BEARER)
    assert again is not None
    wide = (f'Bearer realm="{REALM}",service="reg",scope="repository:team/app:pull,push",'
            'error="insufficient_scope"')
    upgraded = reply(flow, again, 401, wide)
    assert upgraded is not None and upgraded.headers["authorization"] == "Bearer tok2"
    scopes = [parse_qs(r.url.query)["scope"] for _, r in t.requests]
    assert scopes == [["repository:team/app:pull"], ["repository:team/app:pull,push"]]
    with pytest.raises(Unauthorized) as info:
        reply(flow, upgraded, 401, wide)
    assert info.value.cause == "insufficient-scope"
    assert "repository:team/app:pull,push" in str(info.value)
    assert len(t.requests) == 2


def test_several_scopes_go_in_one_token_request() -> None:
    t = FakeTransport()
    d, ep, _ = decision()
    auth = RegistryAuth(ep, d, "pull,push", transport=t)  # type: ignore[arg-type]
    flow, req = start(auth, f"https://{REG}/v2/team/app/blobs/uploads/?mount=x&from=lib/base",
                      "POST")
    reply(flow, req, 401, f'Bearer realm="{REALM}",service="reg",'
          'scope="repository:team/app:pull,push repository:lib/base:pull"')
    [(_, token_req)] = t.requests
    assert parse_qs(token_req.url.query)["scope"] == [
        "repository:lib/base:pull", "repository:team/app:pull,push"]


def test_merge_scopes() -> None:
    assert merge_scopes("repository:a:pull", "repository:a:push repository:b:pull", None) == (
        "repository:a:pull,push", "repository:b:pull")
    assert merge_scopes("registry:catalog:*", "garbage") == ("registry:catalog:*",)


def test_identity_token_uses_refresh_grant_post() -> None:
    t = FakeTransport()
    cred = Credential(identity_token="refresh-me-123", source=Source("docker-config", "x"))
    auth, _ = auth_for(t, cred=cred)
    flow, req = start(auth)
    again = reply(flow, req, 401, BEARER)
    assert again is not None and again.headers["authorization"] == "Bearer tok1"
    [(_, token_req)] = t.requests
    assert token_req.method == "POST" and "authorization" not in token_req.headers
    assert token_req.headers["content-type"] == "application/x-www-form-urlencoded"
    form = parse_qs(token_req.content.decode())
    assert form == {"grant_type": ["refresh_token"], "refresh_token": ["refresh-me-123"],
                    "client_id": ["crossfetch"], "scope": ["repository:team/app:pull"],
                    "service": ["reg"]}


def test_registry_token_is_sent_as_is() -> None:
    t = FakeTransport()
    cred = Credential(registry_token="reg-token-xyz", source=Source("docker-config", "x"))
    auth, _ = auth_for(t, cred=cred)
    flow, req = start(auth)
    again = reply(flow, req, 401, BEARER)
    assert again is not None and again.headers["authorization"] == "Bearer reg-token-xyz"
    assert t.requests == []


def test_token_response_is_capped() -> None:
    big = b'{"token": "' + b"a" * (MAX_TOKEN_RESPONSE + 1) + b'"}'
    t = FakeTransport(answer=lambda r: Response(200, request=r, content=big))
    auth, _ = auth_for(t, cred=None)
    flow, req = start(auth)
    with pytest.raises(LimitExceeded):
        reply(flow, req, 401, BEARER)


@pytest.mark.parametrize("body", [b"not json", b"[]", b'{"token": ""}',
                                  b'{"token": "a\\r\\nX-Injected: 1"}', b'{"expires_in": 5}'])
def test_unusable_token_responses(body: bytes) -> None:
    t = FakeTransport(answer=lambda r: Response(200, request=r, content=body))
    auth, _ = auth_for(t, cred=None)
    flow, req = start(auth)
    with pytest.raises(AuthError):
        reply(flow, req, 401, BEARER)


def test_token_server_error_body_is_redacted() -> None:
    """A token server that echoes what it got must not leak it into the error."""
    def echo(r: Request) -> Response:
        return Response(401, request=r, content=json.dumps({
            "error": "denied", "got": r.headers["authorization"], "password": PASSWORD}).encode())

    auth, _ = auth_for(FakeTransport(answer=echo))
    flow, req = start(auth)
    with pytest.raises(AuthError) as info:
        reply(flow, req, 401, BEARER)
    err = info.value
    text = str(err) + repr(err) + json.dumps(err.to_dict())
    assert "denied" in text and "***" in text
    assert PASSWORD not in text
    assert base64.b64encode(f"alice:{PASSWORD}".encode()).decode() not in text
    assert err.cause == "token-denied"


def test_no_secrets_in_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    auth, _ = auth_for(FakeTransport())
    flow, req = start(auth)
    reply(flow, req, 401, BEARER)
    assert caplog.records  # the token fetch is logged ...
    assert PASSWORD not in caplog.text and "tok1" not in caplog.text  # ... without secrets


def test_credential_repr_hides_secrets() -> None:
    assert PASSWORD not in repr(CRED) and PASSWORD not in str(CRED)


# -- hosts ----------------------------------------------------------------------------------


def test_requests_to_another_host_get_nothing() -> None:
    """Defence in depth: even if a caller passes the flow along a redirect, another host
    never sees the registry's credentials or tokens."""
    t = FakeTransport()
    auth, _ = auth_for(t)
    flow, req = start(auth)
    reply(flow, req, 401, BEARER)  # a token is now cached for this host
    for url in ("https://storage.example/blob", f"https://{REG.split(':')[0]}:5001/v2/",
                f"http://{REG}/v2/"):
        _, first = start(auth, url)
        assert "authorization" not in first.headers, url


# -- deferred auth: decided by the transport's own cache, never by what was imported ----------


def test_deferred_auth_sends_bare_until_its_host_has_challenged() -> None:
    t = FakeTransport()
    d, ep, keys = decision()
    url = f"https://{REG}/v2/team/app/manifests/v1"
    # The auth module is imported in this process already; a fresh host still goes bare.
    lazy = DeferredAuth(ep, d, "pull", transport=t)  # type: ignore[arg-type]
    flow = lazy.auth_flow(Request("GET", url))
    first = next(flow)
    assert "Authorization" not in first.headers and keys.calls == []
    # The registry challenges: the real flow takes over and answers with a token.
    retry = flow.send(Response(401, request=first, headers=Headers({"WWW-Authenticate": BEARER})))
    assert retry.headers["Authorization"].startswith("Bearer ")
    assert t.tokens.challenged(f"{REG}") is True
    # A later flow for the same host (same transport) answers up front, saving the 401.
    eager = DeferredAuth(ep, d, "pull", transport=t)  # type: ignore[arg-type]
    assert next(eager.auth_flow(Request("GET", url))).headers["Authorization"].startswith(
        "Bearer ")
    # Another transport has seen nothing: bare again.
    other = DeferredAuth(ep, d, "pull", transport=FakeTransport())  # type: ignore[arg-type]
    assert "Authorization" not in next(other.auth_flow(Request("GET", url))).headers
