"""Where a package comes from. A :class:`Source` resolves a reference to the digest it names,
serves that image's manifests and blobs, and says which endpoint served them; the pull
pipeline (:meth:`crossfetch.client.Client.pull`) is the same whatever the source, as
Crossplane's ``Fetcher`` is one interface for its fetch path.

- :class:`RegistrySource`: the registry itself, under the policy (direct path).
- :class:`RuntimeSource`: the node's container runtime (the kubelet path, ``--via cri``); it
  may ask the runtime to pull only when the pull policy allows the network.

Only :class:`~crossfetch.client.Client` reads through these; ``serve`` reaches its upstream
through its own per-repository interface (``serve/upstream.py``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, Protocol

from .errors import CacheMiss

if TYPE_CHECKING:
    from .cri import AuthConfig, RuntimeClient
    from .oci import Descriptor
    from .reference import Reference
    from .registry import RegistryClient


class Source(Protocol):
    """A place to read one package from (a :class:`~crossfetch.oci.BlobSource` that also
    resolves tags)."""

    extra: dict[str, Any]
    """Keys this source adds to the pull's JSON result (e.g. ``via``, ``runtimePulled``)."""

    def resolve(self, ref: Reference) -> str:
        """The digest ``ref``'s tag names now."""
        ...

    def fetch_manifest(self, identifier: str) -> tuple[bytes, str, str]: ...

    def open_blob(self, desc: Descriptor) -> Iterator[bytes]: ...

    @property
    def endpoint(self) -> str | None:
        """Where the content came from (the registry endpoint, or the runtime socket)."""
        ...

    def close(self) -> None: ...


class RegistrySource:
    """The registry, reached under the policy: HEAD (falling back to GET, as Crossplane does)
    to resolve, then manifests pinned to that digest and verified blobs; ``bar`` reports blob
    progress."""

    def __init__(self, rc: RegistryClient,
                 bar: Callable[[Descriptor], Callable[[int], None] | None] | None = None) -> None:
        self.rc = rc
        self.bar = bar
        self.extra: dict[str, Any] = {}

    def resolve(self, ref: Reference) -> str:
        return self.rc.head().digest

    def fetch_manifest(self, identifier: str) -> tuple[bytes, str, str]:
        return self.rc.fetch_manifest(identifier)

    def open_blob(self, desc: Descriptor) -> Iterator[bytes]:
        return self.rc.open_blob(desc, self.bar(desc) if self.bar else None)

    @property
    def endpoint(self) -> str | None:
        return self.rc.last_endpoint.url if self.rc.last_endpoint else None

    def close(self) -> None:
        """The registry client belongs to the :class:`Client`'s transport: nothing to close."""


class RuntimeSource:
    """The node's runtime: it pulls the image as kubelet would (``ImageStatus``, then
    ``PullImage`` only when missing, with ``auth`` as CRI ``AuthConfig``) when ``pull`` is true;
    with ``pull`` false (pull policy Never) it only reads what the runtime already has.
    Closing the source closes ``runtime``."""

    def __init__(self, runtime: RuntimeClient, ref: str, *, auth: AuthConfig | None,
                 pull: bool) -> None:
        from .cri import RuntimeBlobSource

        self.runtime = runtime
        try:
            if pull:
                pulled = runtime.ensure(ref, auth).pulled
            elif runtime.image_status(ref) is None:
                raise CacheMiss(f"{ref} is neither in the cache nor in the runtime, and the "
                                "pull policy is Never", url=runtime.endpoint, mode="cri",
                                fix="pull it once with --pull-policy IfNotPresent (or "
                                f"crictl pull {ref})")
            else:
                pulled = False
        except BaseException:
            runtime.close()
            raise
        self.extra: dict[str, Any] = {"via": "cri", "runtimePulled": pulled}
        self._blobs = RuntimeBlobSource(runtime, ref)

    def resolve(self, ref: Reference) -> str:
        return self._blobs.fetch_manifest(ref.identifier)[2]

    def fetch_manifest(self, identifier: str) -> tuple[bytes, str, str]:
        return self._blobs.fetch_manifest(identifier)

    def open_blob(self, desc: Descriptor) -> Iterator[bytes]:
        return self._blobs.open_blob(desc)

    @property
    def endpoint(self) -> str | None:
        return self.runtime.endpoint

    def close(self) -> None:
        self.runtime.close()
