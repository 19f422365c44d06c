"""A :class:`crossfetch.oci.BlobSource` over containerd's content store: the node path's
counterpart of the registry, feeding the same xpkg pipeline."""

from __future__ import annotations

import json
from collections.abc import Iterator

from ..capped import read_capped
from ..oci import MAX_MANIFEST_BYTES, Descriptor, check_digest, verify_bytes
from . import hints
from .client import RuntimeClient
from .errors import ContentMissing


def _is_digest(identifier: str) -> bool:
    return identifier.startswith(("sha256:", "sha512:"))


class RuntimeBlobSource:
    """Manifests and blobs of ``ref`` as the node's runtime stores them.

    The image must already be in the runtime (see :meth:`RuntimeClient.ensure`); nothing here
    contacts a registry. ``fetch_manifest`` takes the tag or digest of ``ref``'s repository —
    for an index the caller picks a platform entry and fetches that digest.
    """

    def __init__(self, client: RuntimeClient, ref: str) -> None:
        self.client = client
        self.ref = hints.parse_runtime_ref(ref)

    def fetch_manifest(self, identifier: str) -> tuple[bytes, str, str]:
        """(raw bytes, media type, digest) of a manifest or index, verified against its digest."""
        media_type = ""
        if _is_digest(identifier):
            digest = check_digest(identifier)
        else:
            target = self.client.manifest_target(f"{self.ref.name}:{identifier}")
            digest, media_type = check_digest(target.digest), target.media_type
        # capped as it arrives, not only by the size the store reports
        raw = read_capped(self._read(digest), MAX_MANIFEST_BYTES,
                          f"manifest {digest} of {self.ref.name}", url=self.client.endpoint,
                          mode="cri", declared=self._info_size(digest))
        verify_bytes(
            raw,
            digest,
            f"manifest {digest} from the runtime's content store",
            url=self.client.endpoint,
        )
        # The content store keeps no media type: the document's own field is authoritative.
        try:
            doc = json.loads(raw)
        except (ValueError, RecursionError):
            doc = None
        if isinstance(doc, dict) and isinstance(doc.get("mediaType"), str):
            media_type = doc["mediaType"]
        return raw, media_type, digest

    def open_blob(self, desc: Descriptor) -> Iterator[bytes]:
        """Stream a blob from the content store (the consumer verifies its digest)."""
        return self._read(desc.digest)

    def _info_size(self, digest: str) -> int:
        try:
            return self.client.info(digest).size
        except ContentMissing as e:
            raise self._with_ref(e) from None

    def _read(self, digest: str) -> Iterator[bytes]:
        try:
            yield from self.client.read(digest)
        except ContentMissing as e:
            raise self._with_ref(e) from None

    def _with_ref(self, e: ContentMissing) -> ContentMissing:
        ref = str(self.ref)
        return ContentMissing(
            f"{ref} is in the runtime but {e.detail.get('digest', 'a blob')} is not: {e.message}",
            url=e.url,
            mode="cri",
            cause=e.cause,
            fix=hints.layer_missing_fix(ref),
            detail=e.detail,
        )
