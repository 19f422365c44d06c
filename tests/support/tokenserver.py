"""A distribution-spec token server (the ``realm`` of a token-auth registry) for tests.

GET ``realm?service=&scope=…`` (Docker token flow) and POST form (OAuth2 ``password`` /
``refresh_token`` grants). Anonymous callers get ``pull`` only; users given as
``{name: password}`` get what ``grants`` allows (default pull and push everywhere). Tokens are
RS256 JWTs carrying the signing certificate in ``x5c``; that certificate is the registry's
``rootcertbundle``.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import fnmatch
import json
import secrets
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

from tests.support.certs import CertPair
from tests.support.httpserver import BaseHandler, TestServer
from tests.support.registry import TokenAuth

DEFAULT_GRANT = {"*": ["pull", "push"]}


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def parse_scope(scope: str) -> tuple[str, str, list[str]]:
    """``repository:ns/repo:pull,push`` → (type, name, actions)."""
    kind, _, rest = scope.partition(":")
    name, _, actions = rest.rpartition(":")
    return kind, name, [a for a in actions.split(",") if a]


class _TokenHandler(BaseHandler):
    def do_GET(self) -> None:
        self._serve(self.recorded(), parse_qs(self.path.partition("?")[2]))

    def do_POST(self) -> None:
        body = self.read_body()
        rec = self.recorded(body)
        self._serve(rec, parse_qs(body.decode(errors="replace")), oauth=True)

    def _serve(self, rec: Any, params: dict[str, list[str]], oauth: bool = False) -> None:
        owner: TokenServer = self.server.owner
        owner.record(rec)
        status, body = owner.answer(self.headers.get("Authorization"), params, oauth)
        rec.status = status
        headers = {"WWW-Authenticate": 'Basic realm="token"'} if status == 401 else {}
        self.reply(status, json.dumps(body).encode(), headers)


class TokenServer(TestServer):
    """Token server; ``.requests`` records every request (method, path, query, headers)."""

    handler = _TokenHandler

    def __init__(
        self,
        tls: CertPair | None = None,
        *,
        users: dict[str, str] | None = None,
        grants: dict[str, dict[str, list[str]]] | None = None,
        anonymous_pull: bool = True,
        service: str = "test-registry",
        issuer: str = "test-issuer",
        expires_in: int = 300,
        workdir: Path | None = None,
        host: str = "127.0.0.1",
    ) -> None:
        super().__init__(tls=tls, host=host)
        self.users = users or {}
        # user -> {repository glob -> allowed actions}
        self.grants = grants or {}
        self.anonymous_pull = anonymous_pull
        self.service = service
        self.issuer = issuer
        self.expires_in = expires_in
        self.refresh_tokens: dict[str, str] = {}  # refresh token -> user
        self.issued: list[dict[str, Any]] = []  # claims of every token handed out
        self._workdir = workdir or Path(tempfile.mkdtemp(prefix="tokenserver-"))
        self._workdir.mkdir(parents=True, exist_ok=True)
        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self._cert = self._signing_cert()
        self.signing_cert = self._workdir / "token-signing.crt"
        self.signing_cert.write_bytes(self._cert.public_bytes(serialization.Encoding.PEM))

    def _signing_cert(self) -> x509.Certificate:
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "crossfetch test token signer")])
        now = dt.datetime.now(dt.UTC)
        return (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self._key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(hours=1))
            .not_valid_after(now + dt.timedelta(days=7))
            .sign(self._key, hashes.SHA256())
        )

    @property
    def realm(self) -> str:
        return f"{self.url}/token"

    def registry_auth(self) -> TokenAuth:
        """The ``auth.token`` settings a :class:`Registry` needs to trust this server."""
        return TokenAuth(
            realm=self.realm,
            service=self.service,
            issuer=self.issuer,
            rootcertbundle=self.signing_cert,
        )

    # -- policy ------------------------------------------------------------------------------
    def allowed(self, user: str | None, kind: str, name: str) -> set[str]:
        if user is None:
            return {"pull"} if self.anonymous_pull and kind == "repository" else set()
        rules = self.grants.get(user, DEFAULT_GRANT)
        actions: set[str] = set()
        for pattern, granted in rules.items():
            if fnmatch.fnmatchcase(name, pattern):
                actions.update(granted)
        return actions

    def _basic_user(self, authorization: str | None) -> tuple[str | None, bool]:
        """(user, credentials_ok). No header → (None, True): anonymous."""
        if not authorization:
            return None, True
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() != "basic":
            return None, False
        try:
            user, _, password = base64.b64decode(value).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return None, False
        return user, self.users.get(user) == password

    def answer(
        self, authorization: str | None, params: dict[str, list[str]], oauth: bool
    ) -> tuple[int, dict[str, Any]]:
        """Decide one token request: (HTTP status, JSON body)."""
        first = {k: v[0] for k, v in params.items() if v}
        if first.get("service", self.service) != self.service:
            return 400, {"error": "invalid_request", "error_description": "unknown service"}
        scopes: list[str] = []
        for s in params.get("scope", []):
            scopes.extend(s.split(" "))  # OAuth2 joins scopes with spaces
        want_refresh = first.get("offline_token") == "true" or first.get("access_type") == "offline"

        if oauth:
            grant = first.get("grant_type")
            if grant == "password":
                user: str | None = first.get("username", "")
                if self.users.get(user or "") != first.get("password"):
                    return 401, {"error": "invalid_grant"}
            elif grant == "refresh_token":
                user = self.refresh_tokens.get(first.get("refresh_token", ""))
                if user is None:
                    return 401, {"error": "invalid_grant"}
                want_refresh = True
            else:
                return 400, {"error": "unsupported_grant_type"}
        else:
            user, ok = self._basic_user(authorization)
            if not ok:
                return 401, {"errors": [{"code": "UNAUTHORIZED", "message": "bad credentials"}]}

        access = []
        for scope in scopes:
            kind, name, actions = parse_scope(scope)
            granted = [a for a in actions if a in self.allowed(user, kind, name)]
            if "*" in actions and user is not None:
                granted = ["*"]
            access.append({"type": kind, "name": name, "actions": granted})
        token = self.issue(user or "", access)
        body: dict[str, Any] = {
            "token": token,
            "access_token": token,
            "expires_in": self.expires_in,
            "issued_at": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
        if want_refresh and user is not None:
            refresh = first.get("refresh_token") or secrets.token_urlsafe(24)
            self.refresh_tokens[refresh] = user
            body["refresh_token"] = refresh
        return 200, body

    def issue(
        self, subject: str, access: list[dict[str, Any]], *, expires_in: int | None = None
    ) -> str:
        """Sign a registry token (tests may also mint one directly)."""
        now = int(time.time())
        header = {
            "typ": "JWT",
            "alg": "RS256",
            "x5c": [base64.b64encode(self._cert.public_bytes(serialization.Encoding.DER)).decode()],
        }
        claims = {
            "iss": self.issuer,
            "sub": subject,
            "aud": self.service,
            "exp": now + (self.expires_in if expires_in is None else expires_in),
            "nbf": now - 10,
            "iat": now,
            "jti": secrets.token_hex(12),
            "access": access,
        }
        with self.lock:
            self.issued.append(claims)
        signing_input = (
            f"{_b64url(json.dumps(header).encode())}.{_b64url(json.dumps(claims).encode())}"
        )
        signature = self._key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
        return f"{signing_input}.{_b64url(signature)}"
