"""Plain values the runtime client takes and returns (no grpc here)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..policy.model import Credential


@dataclass(frozen=True)
class RuntimeVersion:
    """What CRI ``Version`` reports, e.g. ``containerd``, ``1.6.20~ds1``, ``v1``."""

    runtime_name: str
    runtime_version: str
    runtime_api_version: str


@dataclass(frozen=True)
class ImageRecord:
    """The runtime's view of an image (CRI ``Image``). ``id`` is the *config* digest."""

    id: str
    repo_tags: tuple[str, ...]
    repo_digests: tuple[str, ...]
    size: int


@dataclass(frozen=True)
class AuthConfig:
    """Registry credentials handed to the runtime for one pull, as kubelet passes pull secrets.

    Set ``username``/``password``, or ``identity_token`` (a refresh token), or
    ``registry_token`` (a bearer token). ``server_address`` is the registry host the
    credentials are for (default: the pulled reference's registry); the runtime uses them only
    for that host.
    """

    username: str = ""
    password: str = field(default="", repr=False)
    server_address: str = ""
    identity_token: str = field(default="", repr=False)
    registry_token: str = field(default="", repr=False)
    auth: str = field(default="", repr=False)
    """base64 ``user:password``, the docker config.json form (alternative to the pair)."""

    @classmethod
    def from_credential(cls, cred: Credential | None, registry: str) -> AuthConfig | None:
        """What kubelet would pass for ``registry``, from one of crossfetch's credentials."""
        if cred is None:
            return None
        return cls(username=cred.username or "", password=cred.password or "",
                   identity_token=cred.identity_token or "",
                   registry_token=cred.registry_token or "",
                   server_address=f"https://{registry}")


@dataclass(frozen=True)
class Target:
    """The root descriptor of an image record: a manifest or an index."""

    media_type: str
    digest: str
    size: int


@dataclass(frozen=True)
class ContentInfo:
    digest: str
    size: int
    labels: dict[str, str]


@dataclass(frozen=True)
class EnsureResult:
    """Outcome of :meth:`RuntimeClient.ensure`: ``pulled`` is False when it was already there."""

    pulled: bool
    image: ImageRecord
