"""Transport redirect rules with the auth flow attached (an in-process mock pool, no network):
no credentials to another host, never https -> http, never link-local or metadata targets."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from crossfetch.errors import PolicyRefused, TransportError
from crossfetch.policy.model import AuthPolicy, Credential, Decision, Endpoint, Source
from crossfetch.reference import Reference
from crossfetch.transport.auth import RegistryAuth
from crossfetch.transport.connection import BasicAuth, Headers, Request, Response
from crossfetch.transport.session import Transport

REG = "registry.example"
PASSWORD = "s3cret-redirect-pw"


@dataclass
class Keys:
    def describe(self, registry: str) -> Source | None:
        return Source("flag", "--username")

    def resolve(self, registry: str) -> Credential | None:
        return Credential(username="alice", password=PASSWORD, source=Source("flag", "x"))


@dataclass
class World:
    """Hosts answering through one MockTransport; records every request by host."""

    location: str
    seen: dict[str, list[Request]] = field(default_factory=dict)

    def send(self, request: Request, **_: object) -> Response:
        self.seen.setdefault(request.url.host, []).append(request)
        if request.url.host == REG:
            if "authorization" not in request.headers:
                return Response(401, request=request,
                                headers=Headers({"WWW-Authenticate": 'Basic realm="r"'}))
            return Response(307, request=request, headers=Headers({"Location": self.location}))
        return Response(200, request=request, content=b"blob")

    def close(self) -> None:
        pass


def transport_for(world: World) -> Transport:
    t = Transport(retries=0)
    t._client = lambda ep, scheme: world  # type: ignore[method-assign,assignment,return-value]
    return t


def fetch(world: World) -> Response:
    t = transport_for(world)
    ref = Reference.parse(f"{REG}/team/app:v1")
    ep = Endpoint(url=f"https://{REG}")
    d = Decision(ref, ref, (ep,), AuthPolicy(Keys()))
    auth = RegistryAuth(ep, d, "pull", transport=t)
    return t.send(ep, "GET", "/v2/team/app/blobs/sha256:" + "a" * 64, auth=auth,
                  headers={"Accept": "*/*"}, follow_redirects=True)


def test_cross_host_redirect_carries_no_authorization() -> None:
    world = World("https://storage.example/bucket/blob?sig=abc")
    resp = fetch(world)
    assert resp.status_code == 200
    [_, at_registry_auth] = world.seen[REG]
    assert at_registry_auth.headers["authorization"].startswith("Basic ")
    [at_storage] = world.seen["storage.example"]
    assert "authorization" not in at_storage.headers
    assert PASSWORD not in str(at_storage.headers)


def test_same_host_redirect_keeps_authorization() -> None:
    world = World(f"https://{REG}/v2/other-path")
    t = transport_for(world)
    ref = Reference.parse(f"{REG}/team/app:v1")
    ep = Endpoint(url=f"https://{REG}")
    d = Decision(ref, ref, (ep,), AuthPolicy(Keys()))
    auth = RegistryAuth(ep, d, "pull", transport=t)
    with pytest.raises(TransportError):  # the mock redirects forever
        t.send(ep, "GET", "/v2/x", auth=auth, follow_redirects=True)
    later = world.seen[REG][2:]
    assert later and all("authorization" in r.headers for r in later)


@pytest.mark.parametrize("location", [
    "http://storage.example/blob",
    f"http://{REG}/blob",
])
def test_redirect_from_https_to_http_is_refused(location: str) -> None:
    world = World(location)
    with pytest.raises(PolicyRefused) as info:
        fetch(world)
    assert info.value.cause == "unsafe-redirect"
    assert "storage.example" not in world.seen
    assert len(world.seen[REG]) == 2  # the challenge, then the redirect; nothing after


@pytest.mark.parametrize("location", [
    "https://169.254.169.254/latest/meta-data/iam/security-credentials/",
    "https://[fe80::a9fe:a9fe]/x",
    "https://metadata.google.internal/computeMetadata/v1/",
    "file:///etc/passwd",
])
def test_redirect_to_link_local_metadata_or_other_schemes_is_refused(location: str) -> None:
    world = World(location)
    with pytest.raises(PolicyRefused):
        fetch(world)
    assert set(world.seen) == {REG}


def test_transport_itself_strips_auth_and_headers_across_hosts() -> None:
    """The Transport rule on its own: even a naive auth that signs every request, and an
    Authorization header passed by the caller, never reach the other host."""
    world = World("https://storage.example/blob")
    t = transport_for(world)
    ep = Endpoint(url=f"https://{REG}")
    resp = t.send(ep, "GET", "/v2/team/app/blobs/x", auth=BasicAuth("alice", PASSWORD),
                  headers={"X-Trace": "1"}, follow_redirects=True)
    assert resp.status_code == 200
    assert world.seen[REG][-1].headers["authorization"].startswith("Basic ")
    [at_storage] = world.seen["storage.example"]
    assert "authorization" not in at_storage.headers
    assert "x-trace" not in at_storage.headers
