"""A gRPC client for the node's container runtime: CRI v1 images plus containerd's stores.

The CRI image service (``PullImage``, ``ImageStatus``) is what kubelet calls, so a pull through it
uses the node's registry configuration (``hosts.toml``) and credentials passed as ``AuthConfig``.
CRI has no way to read an image's bytes, so manifests and blobs come from containerd's own
``Images`` and ``Content`` services, in ``namespace`` (kubelet's is ``k8s.io``).

grpc and the generated stubs are imported on first use, so importing this module is cheap.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from types import TracebackType
from typing import TYPE_CHECKING, Any

from .._extras import require_extra
from . import hints
from .errors import ContentMissing, CRIError, PullRefused, RuntimeUnavailable
from .types import (
    AuthConfig,
    ContentInfo,
    EnsureResult,
    ImageRecord,
    RuntimeVersion,
    Target,
)

if TYPE_CHECKING:
    import grpc

DEFAULT_ENDPOINT = "unix:///run/containerd/containerd.sock"
DEFAULT_NAMESPACE = "k8s.io"
CRI_API_VERSION = "v1"
_MAX_MESSAGE = 16 * 1024 * 1024


def socket_path(endpoint: str) -> str | None:
    """The filesystem path of a ``unix://`` endpoint (or of a bare path), else None."""
    if endpoint.startswith("unix://"):
        return endpoint[len("unix://") :]
    if endpoint.startswith("unix:"):
        return endpoint[len("unix:") :]
    if endpoint.startswith("/"):
        return endpoint
    return None


def _server_address(given: str, ref: str) -> str:
    """``server_address`` as containerd 1.6+ wants it: a URL whose host is the host it
    contacts. containerd parses it with a URL parser (bare ``host:port`` fails to parse) and
    silently drops the credentials when the host differs, and an empty one sends them to every
    host of the pull, mirrors included; so default to the reference's own registry."""
    address = given or hints.parse_runtime_ref(ref).api_registry
    return address if "://" in address else f"https://{address}"


class RuntimeClient:
    """Talk to the container runtime at ``endpoint`` (a ``unix://`` socket).

    ``timeout`` (seconds) bounds each call except :meth:`pull` (``pull_timeout``) and the
    streaming :meth:`read`. Use as a context manager, or call :meth:`close`.
    """

    def __init__(
        self,
        endpoint: str = DEFAULT_ENDPOINT,
        namespace: str = DEFAULT_NAMESPACE,
        timeout: float = 60,
        *,
        pull_timeout: float = 600,
    ) -> None:
        path = socket_path(endpoint)
        self.endpoint = f"unix://{path}" if path is not None else endpoint
        self.socket_path = path
        self.namespace = namespace
        self.timeout = timeout
        self.pull_timeout = pull_timeout
        self._channel: grpc.Channel | None = None
        self._stubs: dict[str, Any] = {}

    # -- plumbing --------------------------------------------------------------------------
    def __enter__(self) -> RuntimeClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        if self._channel is not None:
            self._channel.close()
            self._channel = None
            self._stubs.clear()

    def _connect(self) -> grpc.Channel:
        """The channel, created on first use after checking the socket (before importing
        grpc, so a missing or forbidden socket is reported the same everywhere)."""
        if self._channel is None:
            self._check_socket()
            require_extra("cri", "the kubelet path (--via cri)", "grpc", "google.protobuf")
            import grpc

            self._channel = grpc.insecure_channel(
                self.endpoint,
                options=[
                    ("grpc.max_receive_message_length", _MAX_MESSAGE),
                    # The socket path is the authority; keep proxies out of it.
                    ("grpc.enable_http_proxy", 0),
                ],
            )
        return self._channel

    def _stub(self, name: str) -> Any:
        channel = self._connect()
        if name not in self._stubs:
            from .gen import (
                containerd_content_v1_pb2_grpc,
                containerd_images_v1_pb2_grpc,
                containerd_version_v1_pb2_grpc,
                cri_runtime_v1_pb2_grpc,
            )

            factories: dict[str, Any] = {
                "runtime": cri_runtime_v1_pb2_grpc.RuntimeServiceStub,
                "images": cri_runtime_v1_pb2_grpc.ImageServiceStub,
                "content": containerd_content_v1_pb2_grpc.ContentStub,
                "ctrd_images": containerd_images_v1_pb2_grpc.ImagesStub,
                "ctrd_version": containerd_version_v1_pb2_grpc.VersionStub,
            }
            self._stubs[name] = factories[name](channel)
        return self._stubs[name]

    def _check_socket(self) -> None:
        path = self.socket_path
        if path is None:
            return
        if not os.path.exists(path):
            raise RuntimeUnavailable(
                f"cannot reach the container runtime: {path} does not exist",
                url=self.endpoint,
                mode="cri",
                cause="socket-missing",
                fix=hints.socket_missing_fix(path),
            )
        if not os.access(path, os.R_OK | os.W_OK):
            raise self._permission_error()

    def _permission_error(self) -> RuntimeUnavailable:
        path = self.socket_path or self.endpoint
        return RuntimeUnavailable(
            f"permission denied connecting to the container runtime socket {path} "
            f"(running as uid {os.getuid()})",
            url=self.endpoint,
            mode="cri",
            cause="permission-denied",
            fix=hints.permission_fix(path),
        )

    @property
    def _md(self) -> list[tuple[str, str]]:
        return [("containerd-namespace", self.namespace)]

    def _error(self, e: grpc.RpcError, attempted: str) -> CRIError:
        """Map a gRPC failure to a crossfetch error (the caller adds call-specific cases)."""
        import grpc

        code = e.code() if hasattr(e, "code") else None
        details = (e.details() if hasattr(e, "details") else None) or str(e)
        if code == grpc.StatusCode.UNAVAILABLE:
            if "permission denied" in details.lower():
                return self._permission_error()
            if "no such file" in details.lower() and self.socket_path:
                return RuntimeUnavailable(
                    f"{attempted}: {self.socket_path} does not exist",
                    url=self.endpoint,
                    mode="cri",
                    cause="socket-missing",
                    fix=hints.socket_missing_fix(self.socket_path),
                )
            return RuntimeUnavailable(
                f"{attempted}: the runtime at {self.endpoint} does not answer: {details}",
                url=self.endpoint,
                mode="cri",
                fix="check the runtime is running (systemctl status containerd) and that "
                "--runtime-endpoint names its gRPC socket",
            )
        if code == grpc.StatusCode.DEADLINE_EXCEEDED:
            return RuntimeUnavailable(
                f"{attempted}: no answer from {self.endpoint} within the timeout",
                url=self.endpoint,
                mode="cri",
                cause="timeout",
                fix="the runtime may be overloaded; retry, or raise --timeout",
            )
        name = code.name if code is not None else "UNKNOWN"
        return CRIError(
            f"{attempted}: the runtime answered {name}: {details}",
            url=self.endpoint,
            mode="cri",
            detail={"grpcCode": name},
        )

    def _cri_call(
        self, stub: str, method: str, request: Any, attempted: str, timeout: float | None = None
    ) -> Any:
        """Call a CRI method; UNIMPLEMENTED there means the CRI plugin is off."""
        import grpc

        try:
            return getattr(self._stub(stub), method)(request, timeout=timeout or self.timeout)
        except grpc.RpcError as e:
            if e.code() == grpc.StatusCode.UNIMPLEMENTED:
                raise self._cri_disabled(attempted, e.details() or "") from None
            raise self._error(e, attempted) from None

    def _cri_disabled(self, attempted: str, details: str) -> RuntimeUnavailable:
        import grpc
        from google.protobuf import empty_pb2

        try:
            v = self._stub("ctrd_version").Version(empty_pb2.Empty(), timeout=self.timeout)
        except grpc.RpcError:
            return RuntimeUnavailable(
                f"{attempted}: the endpoint {self.endpoint} does not serve the CRI v1 API "
                f"({details}) and is not containerd either",
                url=self.endpoint,
                mode="cri",
                cause="cri-disabled",
                fix="point --runtime-endpoint at the node's CRI socket (containerd >= 1.5 or "
                "CRI-O), or use --via direct",
            )
        return RuntimeUnavailable(
            f"{attempted}: containerd {v.version} answers at {self.endpoint} but its CRI "
            f"plugin does not ({details})",
            url=self.endpoint,
            mode="cri",
            cause="cri-disabled",
            fix=hints.CRI_DISABLED_FIX,
            detail={"containerdVersion": v.version},
        )

    def _ctrd_call(self, stub: str, method: str, request: Any, attempted: str) -> Any:
        import grpc

        try:
            return getattr(self._stub(stub), method)(
                request, timeout=self.timeout, metadata=self._md
            )
        except grpc.RpcError as e:
            raise self._ctrd_error(e, attempted) from None

    def _ctrd_error(self, e: grpc.RpcError, attempted: str) -> CRIError:
        import grpc

        if e.code() == grpc.StatusCode.UNIMPLEMENTED:
            return RuntimeUnavailable(
                f"{attempted}: the runtime at {self.endpoint} has no containerd "
                f"{attempted.split()[0]} service ({e.details()})",
                url=self.endpoint,
                mode="cri",
                cause="not-containerd",
                fix="reading images from the node needs containerd (CRI-O keeps them in "
                "containers-storage); use --via direct",
            )
        return self._error(e, attempted)

    # -- CRI -------------------------------------------------------------------------------
    def version(self) -> RuntimeVersion:
        """CRI ``RuntimeService.Version``: the runtime's name and version."""
        self._connect()
        from .gen import cri_runtime_v1_pb2 as pb

        r = self._cri_call(
            "runtime", "Version", pb.VersionRequest(version=CRI_API_VERSION), "CRI Version"
        )
        return RuntimeVersion(r.runtime_name, r.runtime_version, r.runtime_api_version)

    def image_status(self, ref: str) -> ImageRecord | None:
        """The runtime's record of ``ref``, or None when it does not have the image."""
        self._connect()
        from .gen import cri_runtime_v1_pb2 as pb

        r = self._cri_call(
            "images",
            "ImageStatus",
            pb.ImageStatusRequest(image=pb.ImageSpec(image=ref)),
            f"CRI ImageStatus {ref}",
        )
        if not r.HasField("image") or not r.image.id:
            return None
        img = r.image
        return ImageRecord(img.id, tuple(img.repo_tags), tuple(img.repo_digests), img.size)

    def pull(self, ref: str, auth: AuthConfig | None = None) -> str:
        """CRI ``PullImage``: the runtime pulls ``ref`` with the node's registry configuration.

        Returns the runtime's image reference (the config digest). A refusal raises
        :class:`PullRefused` carrying the runtime's message.
        """
        self._connect()
        import grpc

        from .gen import cri_runtime_v1_pb2 as pb

        req = pb.PullImageRequest(image=pb.ImageSpec(image=ref))
        if auth is not None:
            req.auth.CopyFrom(
                pb.AuthConfig(
                    username=auth.username,
                    password=auth.password,
                    auth=auth.auth,
                    server_address=_server_address(auth.server_address, ref),
                    identity_token=auth.identity_token,
                    registry_token=auth.registry_token,
                )
            )
        try:
            r = self._stub("images").PullImage(req, timeout=self.pull_timeout)
        except grpc.RpcError as e:
            if e.code() == grpc.StatusCode.UNIMPLEMENTED:
                raise self._cri_disabled(f"CRI PullImage {ref}", e.details() or "") from None
            if e.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                raise self._error(e, f"CRI PullImage {ref}") from None
            message = e.details() or str(e)
            registry = hints.parse_runtime_ref(ref).registry
            raise PullRefused(
                f"the runtime refused to pull {ref}: {message}",
                url=self.endpoint,
                host=registry,
                mode="cri",
                fix=hints.pull_refused_fix(registry, message),
                detail={"runtimeMessage": message, "grpcCode": e.code().name},
            ) from None
        return str(r.image_ref)

    def ensure(self, ref: str, auth: AuthConfig | None = None) -> EnsureResult:
        """Pull ``ref`` unless the runtime already has it (then nothing reaches the registry)."""
        have = self.image_status(ref)
        if have is not None:
            return EnsureResult(False, have)
        self.pull(ref, auth)
        have = self.image_status(ref)
        if have is None:
            raise ContentMissing(
                f"the runtime reported pulling {ref} but does not list it afterwards",
                url=self.endpoint,
                mode="cri",
                cause="image-not-present",
                fix="another client may have removed it (image GC); retry",
            )
        return EnsureResult(True, have)

    # -- containerd ------------------------------------------------------------------------
    def manifest_target(self, ref: str) -> Target:
        """The manifest (or index) descriptor containerd records for ``ref``.

        CRI's image id is the config digest; the manifest digest lives in containerd's image
        record, named as containerd normalises ``ref`` (``host/repo:tag`` or
        ``host/repo@digest``). Falls back to the repo digests CRI lists for ``ref``.
        """
        self._connect()
        import grpc

        from .gen import containerd_images_v1_pb2 as pb

        names = [hints.containerd_name(ref)]
        tried: list[str] = []
        while names:
            name = names.pop(0)
            tried.append(name)
            try:
                r = self._stub("ctrd_images").Get(
                    pb.GetImageRequest(name=name), timeout=self.timeout, metadata=self._md
                )
            except grpc.RpcError as e:
                if e.code() != grpc.StatusCode.NOT_FOUND:
                    raise self._ctrd_error(e, f"images Get {name}") from None
                if len(tried) == 1:
                    status = self.image_status(ref)
                    names += [d for d in (status.repo_digests if status else ()) if d != name]
                continue
            t = r.image.target
            return Target(t.media_type, t.digest, t.size)
        raise ContentMissing(
            f"containerd (namespace {self.namespace}) has no image record for {ref} "
            f"(looked up: {', '.join(tried)})",
            url=self.endpoint,
            mode="cri",
            cause="image-not-present",
            fix=f"pull it through the runtime first (crictl pull {ref}, or crossfetch pull "
            f"--via cri), and check --runtime-namespace (kubelet uses k8s.io)",
        )

    def info(self, digest: str) -> ContentInfo:
        """containerd ``Content.Info``: size and labels of a blob."""
        self._connect()
        from .gen import containerd_content_v1_pb2 as pb

        try:
            r = self._ctrd_call(
                "content", "Info", pb.InfoRequest(digest=digest), f"content Info {digest}"
            )
        except CRIError as e:
            raise self._maybe_missing(e, digest) from None
        return ContentInfo(r.info.digest, r.info.size, dict(r.info.labels))

    def read(self, digest: str, offset: int = 0, size: int = 0) -> Iterator[bytes]:
        """Stream ``size`` bytes (0: to the end) of a blob from ``offset``.

        Checks the chunks are contiguous. containerd numbers a ranged read's chunks from the
        requested offset (the first chunk says 0), older or other servers may count from the
        blob's start; both are accepted, anything else is an error.
        """
        self._connect()
        import grpc

        from .gen import containerd_content_v1_pb2 as pb

        attempted = f"content Read {digest}"
        req = pb.ReadContentRequest(digest=digest, offset=offset, size=size)
        stream = self._stub("content").Read(req, metadata=self._md)
        base: int | None = None
        pos = 0
        try:
            for chunk in stream:
                if base is None:
                    if chunk.offset not in (0, offset):
                        raise CRIError(
                            f"{attempted}: first chunk at offset {chunk.offset}, "
                            f"asked for {offset}",
                            url=self.endpoint,
                            mode="cri",
                        )
                    base = chunk.offset
                if chunk.offset - base != pos:
                    raise CRIError(
                        f"{attempted}: chunk at offset {chunk.offset} where "
                        f"{base + pos} was expected",
                        url=self.endpoint,
                        mode="cri",
                    )
                pos += len(chunk.data)
                if chunk.data:
                    yield bytes(chunk.data)
        except grpc.RpcError as e:
            raise self._maybe_missing(self._ctrd_error(e, attempted), digest) from None
        finally:
            stream.cancel()
        if size and pos != size:
            raise CRIError(
                f"{attempted}: got {pos} bytes, asked for {size}", url=self.endpoint, mode="cri"
            )

    def _maybe_missing(self, e: CRIError, digest: str) -> CRIError:
        if e.detail.get("grpcCode") == "NOT_FOUND":
            return ContentMissing(
                f"containerd (namespace {self.namespace}) has no blob {digest}",
                url=self.endpoint,
                mode="cri",
                cause="layer-missing",
                fix=hints.layer_missing_fix(None),
                detail={"digest": digest},
            )
        return e
