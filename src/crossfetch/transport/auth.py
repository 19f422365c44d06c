"""Registry authentication as an auth *flow*: Basic, and Bearer tokens from a realm.

The flow only acts on requests to its own endpoint's host; credentials are looked up lazily
(on the first challenge), so an anonymous registry never runs a credential helper.

Rules (each has a test that fails without it):
- credentials, and tokens obtained with them, never travel over plain HTTP unless the registry
  is allowed plain HTTP *and* the user opted in (``--allow-plain-http-credentials`` or the
  ImageConfig field ``spec.registry.authentication.allowCredentialsOverPlainHTTP: true``);
- the token realm is https unless the registry itself may be plain HTTP, and never a
  link-local or metadata address; the token request goes through the :class:`Transport`, so
  TLS policy applies to it; token responses are capped at 4 MiB;
- a 401 ``insufficient_scope`` asks once for the wider scope, then fails clearly;
- secrets never reach error messages (token server bodies are redacted).
"""

from __future__ import annotations

import base64
import json
import sys
import threading
from collections.abc import Generator
from typing import TYPE_CHECKING, NamedTuple
from urllib.parse import urlencode

from ..capped import read_capped
from ..errors import GIVE_CREDENTIALS, AuthError, PolicyRefused, Unauthorized
from ..policy.credentials import credential_secrets, redact
from ..policy.model import Credential, Endpoint, TLSConfig, TLSMode
from .challenge import Challenge, MalformedChallenge, parse_challenges, pick
from .connection import URL, Auth, InvalidURL, Request, Response
from .route import Route, RouteLike
from .session import unsafe_target
from .tokens import host_key

if TYPE_CHECKING:
    from ..policy.model import Decision
    from .session import Transport

MAX_TOKEN_RESPONSE = 4 * 1024 * 1024
DEFAULT_EXPIRES_IN = 60
CLIENT_ID = "crossfetch"
PLAIN_HTTP_OPT_IN = ("--allow-plain-http-credentials, or in the ImageConfig matching this "
                     "registry spec.registry.authentication.allowCredentialsOverPlainHTTP: true "
                     "(crossfetch's own field)")


def _debug(msg: str, *args: object) -> None:
    """Log at debug level if the application uses logging at all (importing it costs ~3 ms
    of start-up; with nobody listening there is nothing to log to)."""
    logging = sys.modules.get("logging")
    if logging is not None:
        logging.getLogger(__name__).debug(msg, *args)


# --- scopes -------------------------------------------------------------------------------


def merge_scopes(*groups: str | None) -> tuple[str, ...]:
    """Union of space-separated ``type:name:actions`` scopes, actions merged per resource."""
    merged: dict[tuple[str, str], list[str]] = {}
    for group in groups:
        for scope in (group or "").split():
            kind, _, rest = scope.partition(":")
            name, sep, actions = rest.rpartition(":")
            if not sep or not name:
                continue  # not a resource scope we understand; the realm decides
            acts = merged.setdefault((kind, name), [])
            acts.extend(a for a in actions.split(",") if a and a not in acts)
    return tuple(sorted(f"{k}:{n}:{','.join(a)}" for (k, n), a in merged.items()))


# --- the flow -----------------------------------------------------------------------------


class _Sent(NamedTuple):
    """What the flow put on the last request it sent."""

    header: str | None = None
    scheme: str | None = None  # "basic" or "bearer"
    scopes: tuple[str, ...] = ()
    key: tuple[str, ...] | None = None


class RegistryAuth(Auth):
    """Answers Basic and Bearer challenges for one endpoint and scope (``actions``)."""

    def __init__(self, endpoint: Endpoint, decision: Decision, actions: str, *,
                 transport: Transport) -> None:
        self.endpoint = endpoint
        self.decision = decision
        self.actions = actions
        self.transport = transport
        self.repository = endpoint.repository or decision.resolved.repository
        self.scope = f"repository:{self.repository}:{actions}"
        self.cache = transport.tokens
        self._cred: Credential | None = None
        self._cred_loaded = False
        self._cred_lock = threading.Lock()

    # --- credentials ---

    def credential(self) -> Credential | None:
        """The endpoint host's credentials from the keychain (looked up once)."""
        with self._cred_lock:
            if not self._cred_loaded:
                keychain = self.decision.auth.keychain
                self._cred = keychain.resolve(self.endpoint.host) if keychain else None
                self._cred_loaded = True
            return self._cred

    def _check_clear_text(self, url: URL, cred: Credential | None, what: str) -> None:
        if url.scheme != "http" or cred is None or self.decision.auth.allow_plain_http_credentials:
            return
        raise PolicyRefused(
            f"refusing to send {what} (credentials from {cred.source}) to {url.netloc} "
            "over plain HTTP: anyone on the network path could read them", url=str(url),
            host=url.host, mode=TLSMode.DISABLED.value, cause="plain-http-credentials",
            fix=f"serve the registry over HTTPS; or, accepting the risk, opt in with "
            f"{PLAIN_HTTP_OPT_IN}")

    def _registry_may_be_plain(self) -> bool:
        tls = self.endpoint.tls
        return tls.mode is TLSMode.DISABLED or tls.allow_http_fallback

    # --- the flow ---

    def _ours(self, request: Request) -> bool:
        """Only the endpoint's own host ever gets credentials, whatever sent the request."""
        own = URL(self.transport.effective_url(self.endpoint))
        return request.url.scheme == own.scheme and host_key(request.url) == host_key(own)

    def auth_flow(self, request: Request, first: Response | None = None
                  ) -> Generator[Request, Response, None]:
        """The flow for ``request``; ``first`` is its response if it was already sent without
        credentials (see :class:`DeferredAuth`)."""
        if not self._ours(request):
            if first is None:
                yield request
            return
        host = host_key(request.url)
        sent = _Sent()
        known = self.cache.challenge(host) if first is None else None
        if known is not None:  # the host challenged before: answer up front, save a 401
            sent = self._answer(known, request, _Sent(), preemptive=True)
        upgraded = refreshed = False
        response = first
        while True:
            if response is None:
                if sent.header:
                    request.headers["Authorization"] = sent.header
                response = yield request
            if response.status_code != 401:
                return
            raw = ", ".join(response.headers.get_list("www-authenticate"))
            challenge = pick(parse_challenges(raw))
            if challenge is None:
                return  # no scheme we speak: the caller reports the 401
            self.cache.remember(host, challenge)
            response.read()  # free the connection before the token request
            if sent.scheme is None or sent.scheme != challenge.scheme:
                nxt = self._answer(challenge, request, sent)
            elif challenge.scheme == "basic":
                raise self._rejected(request, response.status_code, "password")
            elif challenge.get("error") == "insufficient_scope":
                if upgraded:
                    raise self._insufficient(request, sent, challenge)
                upgraded = True
                nxt = self._answer(challenge, request, sent, widen=True)
            else:
                if refreshed:
                    raise self._rejected(request, response.status_code, "token")
                refreshed = True
                if sent.key:
                    self.cache.drop(sent.key)  # expired or revoked: ask again once
                nxt = self._answer(challenge, request, sent, widen=True)
            if nxt.header is None:
                return
            sent = nxt
            response = None

    def _answer(self, challenge: Challenge, request: Request, sent: _Sent, *,
                widen: bool = False, preemptive: bool = False) -> _Sent:
        """The header that answers ``challenge`` (``header=None``: stay anonymous)."""
        cred = self.credential()
        if challenge.scheme == "basic":
            if cred is None:
                return _Sent()
            if cred.password is None:
                raise AuthError(
                    f"{request.url.netloc} asks for a user name and password, but the "
                    f"credentials from {cred.source} hold only a token", host=request.url.host,
                    fix="give a user name and password for this registry")
            self._check_clear_text(request.url, cred, "a password")
            value = base64.b64encode(f"{cred.username or ''}:{cred.password}".encode()).decode()
            return _Sent(f"Basic {value}", "basic")
        if cred is not None and cred.registry_token:
            self._check_clear_text(request.url, cred, "a registry token")
            return _Sent(f"Bearer {cred.registry_token}", "bearer")
        # Up front, ask only for our own scope: a remembered challenge names another request's.
        scopes = merge_scopes(self.scope, None if preemptive else challenge.get("scope"),
                              " ".join(sent.scopes) if widen else None)
        if preemptive and not scopes:
            return _Sent()
        self._check_clear_text(request.url, cred, "a token obtained with credentials")
        token, key = self._token(challenge, scopes, cred, fresh=widen and sent.key is not None
                                 and merge_scopes(*sent.scopes) == scopes)
        return _Sent(f"Bearer {token}", "bearer", scopes, key)

    # --- tokens ---

    def _token(self, challenge: Challenge, scopes: tuple[str, ...], cred: Credential | None,
               *, fresh: bool = False) -> tuple[str, tuple[str, ...]]:
        realm = challenge.get("realm")
        if not realm:
            raise MalformedChallenge(
                f"{self.endpoint.host} sent a Bearer challenge without a realm",
                host=self.endpoint.host, fix="check the registry's token auth configuration")
        url = self._check_realm(realm, cred)
        service = challenge.get("service") or ""
        ident = "anonymous" if cred is None else f"{cred.source}|{cred.username or ''}"
        key = (str(url), service, " ".join(scopes), ident)
        if fresh:
            self.cache.drop(key)
        with self.cache.lock_for(key):
            cached = self.cache.get(key)
            if cached is not None:
                return cached, key
            token, expires_in = self._fetch(url, service, scopes, cred)
            self.cache.put(key, token, expires_in)
            _debug("token for %s from %s (%s), %s s", " ".join(scopes), url,
                   "anonymous" if cred is None else cred.source, expires_in)
            return token, key

    def _check_realm(self, realm: str, cred: Credential | None) -> URL:
        try:
            url = URL(realm)  # an absolute http(s) URL with a host, or InvalidURL
        except InvalidURL:
            raise MalformedChallenge(f"{self.endpoint.host} names token realm {realm!r}, which "
                                     "is not an http(s) URL", host=self.endpoint.host,
                                     fix="check the registry's auth.token.realm setting") from None
        why = unsafe_target(url.host)
        if why:
            raise PolicyRefused(f"refusing token realm {realm} named by {self.endpoint.host}: "
                                f"{why}", url=realm, cause="unsafe-realm",
                                fix="the registry's auth.token.realm must be its token "
                                "server; a realm pointing at metadata addresses is an attack")
        if url.scheme == "http":
            if not self._registry_may_be_plain():
                raise PolicyRefused(
                    f"refusing plain-HTTP token realm {realm} named by {self.endpoint.host}: "
                    "the registry is not allowed plain HTTP, so neither is its token server",
                    url=realm, cause="plain-http-realm",
                    fix="configure the registry's token realm as an https:// URL")
            self._check_clear_text(url, cred, "credentials to the token server")
        return url

    def _realm_endpoint(self, url: URL) -> RouteLike:
        """Where the token request goes: the registry's own TLS settings on its host;
        elsewhere verified TLS with the same extra CAs, but no client certificate or headers."""
        base = f"{url.scheme}://{url.netloc}"
        if host_key(url) == host_key(URL(self.transport.effective_url(self.endpoint))):
            return self.endpoint._replace(url=base, override_path=True, repository=None)
        own = self.endpoint.tls
        tls = TLSConfig(mode=TLSMode.DISABLED if url.scheme == "http" else TLSMode.STRICT,
                        ca_files=own.ca_files, ca_pem=own.ca_pem, source=own.source)
        return Route(url=base, tls=tls)

    def _fetch(self, url: URL, service: str, scopes: tuple[str, ...],
               cred: Credential | None) -> tuple[str, float]:
        ep = self._realm_endpoint(url)
        headers = {"Accept": "application/json"}
        body: bytes | None = None
        if cred is not None and cred.identity_token:
            form = {"grant_type": "refresh_token", "refresh_token": cred.identity_token,
                    "client_id": CLIENT_ID, "scope": " ".join(scopes)}
            if service:
                form["service"] = service
            body, method, target = urlencode(form).encode(), "POST", url
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        else:
            params: list[tuple[str, str]] = [("service", service)] if service else []
            params += [("scope", s) for s in scopes]
            if cred is not None and cred.password is not None:
                params.append(("account", cred.username or ""))
                basic = f"{cred.username or ''}:{cred.password}".encode()
                headers["Authorization"] = "Basic " + base64.b64encode(basic).decode()
            method, target = "GET", url.with_params(params)
        resp = self.transport.request(ep, method, str(target), headers=headers, content=body,
                                      stream=True)
        try:
            data = _read_capped(resp, str(url))
        finally:
            resp.close()
        secrets = credential_secrets(cred)
        if resp.status_code != 200:
            text = redact(data[:2000].decode(errors="replace"), secrets)[:300].strip()
            who = "anonymous access" if cred is None else f"the credentials from {cred.source}"
            cause = "token-denied" if resp.status_code in (401, 403) else "token-failed"
            raise AuthError(
                f"token server {url} refused {who} for {' '.join(scopes) or 'no scope'}: "
                f"{resp.status_code} {resp.reason_phrase}" + (f": {text}" if text else ""),
                url=str(url), host=url.host, cause=cause,
                fix="check the user name and password (or token)" if cred is not None else
                GIVE_CREDENTIALS)
        return _parse_token(data, str(url))

    # --- failures ---

    def _rejected(self, request: Request, status: int, what: str) -> Unauthorized:
        cred = self.credential()
        who = "anonymous access" if cred is None else f"the {what} from {cred.source}"
        return Unauthorized(
            f"{request.url.netloc} rejected {who} for {request.method} "
            f"{request.url.path}", status=status, url=str(request.url), host=request.url.host,
            cause="credentials-rejected" if cred else "unauthorized",
            fix=_rejected_fix(cred) if cred else GIVE_CREDENTIALS)

    def _insufficient(self, request: Request, sent: _Sent,
                      challenge: Challenge) -> Unauthorized:
        cred = self.credential()
        who = "an anonymous token" if cred is None else \
            f"a token for the credentials from {cred.source}"
        need = challenge.get("scope") or self.scope
        return Unauthorized(
            f"{request.url.netloc} needs scope {need} for {request.method} "
            f"{request.url.path}, and {who} does not grant it even after asking for "
            f"{' '.join(sent.scopes) or '(no scope)'} (insufficient_scope)", status=401,
            url=str(request.url), host=request.url.host, cause="insufficient-scope",
            fix="anonymous tokens grant pull only: give credentials" if cred is None else
            f"grant this user {need.rsplit(':', 1)[-1]} on the repository in the registry's "
            "access control")


def _read_capped(resp: Response, where: str) -> bytes:
    # requests ask for identity: no content coding to undo
    return read_capped(resp.iter_bytes(), MAX_TOKEN_RESPONSE, f"token response from {where}",
                       url=where, declared=resp.content_length)


def _parse_token(data: bytes, where: str) -> tuple[str, float]:
    try:
        body = json.loads(data)
    except (ValueError, RecursionError):  # deep nesting raises RecursionError
        body = None
    if not isinstance(body, dict):
        raise AuthError(f"token server {where} answered 200 without a JSON object",
                        url=where, cause="token-failed",
                        fix="check that the realm URL is the registry's token server")
    token = body.get("token") or body.get("access_token")
    if not isinstance(token, str) or not token or not token.isprintable() or " " in token:
        raise AuthError(f"token server {where} sent no usable token", url=where,
                        cause="token-failed", fix="check the token server's configuration")
    expires = body.get("expires_in")
    # an int past float's range would make float() raise OverflowError
    expires_in = float(expires) if isinstance(expires, int | float) and \
        0 < expires <= sys.float_info.max else float(DEFAULT_EXPIRES_IN)
    return token, expires_in


def _rejected_fix(cred: Credential) -> str:
    """What to check when the registry refused ``cred``: the place it came from."""
    user = f" for user {cred.username}" if cred.username else ""
    kind = cred.source.kind
    if kind == "flag":
        return (f"check the user name and the password given on standard input "
                f"(--password-stdin){user}: a token may have expired or lack pull access")
    if kind == "docker-config":
        return f"check {cred.source.name}{user} (docker login again if the password changed)"
    if kind == "credential-helper":
        return f"check what {cred.source.name} returns{user} (log in again through it)"
    return f"check the credentials in {cred.source}{user}"
