"""Authentication that costs nothing until a registry asks for it.

Most package pulls are anonymous. :class:`DeferredAuth` sends the first request bare and only
on a ``401`` imports the real flow (:class:`~crossfetch.transport.auth.RegistryAuth`, the
challenge parser, the credential sources), hands it that response and lets it answer. Once the
transport's token cache (:attr:`Transport.tokens`) has seen a host challenge, later flows for
that host are real from the start, so it is answered up front as before.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import TYPE_CHECKING

from .connection import URL, Auth, Request, Response
from .tokens import host_key

if TYPE_CHECKING:
    from ..policy.model import Decision, Endpoint
    from .auth import RegistryAuth
    from .session import Transport

class DeferredAuth(Auth):
    """A :class:`RegistryAuth` built on the first challenge (same arguments)."""

    def __init__(self, endpoint: Endpoint, decision: Decision, actions: str, *,
                 transport: Transport) -> None:
        self._args = (endpoint, decision, actions)
        self._transport = transport
        self._real: RegistryAuth | None = None
        if transport.tokens.challenged(host_key(URL(transport.effective_url(endpoint)))):
            self._materialize()  # this host asks for credentials: answer up front

    def _materialize(self) -> RegistryAuth:
        if self._real is None:
            from .auth import RegistryAuth

            self._real = RegistryAuth(*self._args, transport=self._transport)
        return self._real

    def auth_flow(self, request: Request) -> Generator[Request, Response, None]:
        if self._real is not None:
            yield from self._real.auth_flow(request)
            return
        response = yield request
        if response.status_code == 401:
            yield from self._materialize().auth_flow(request, first=response)
