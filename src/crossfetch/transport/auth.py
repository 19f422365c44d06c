"""Registry authentication flows (placeholder: anonymous until the auth flows land)."""

from __future__ import annotations

from collections.abc import Generator
from typing import TYPE_CHECKING

import httpx

if TYPE_CHECKING:
    from ..policy.model import Decision, Endpoint
    from .http import Transport


class RegistryAuth(httpx.Auth):
    """Answers Basic and Bearer challenges for one endpoint and scope."""

    def __init__(self, endpoint: Endpoint, decision: Decision, actions: str, *,
                 transport: Transport) -> None:
        self.endpoint = endpoint
        self.decision = decision
        self.actions = actions
        self.transport = transport

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        yield request
