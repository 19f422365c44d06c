"""The node path: let the node's container runtime pull, then read the image from its store.

``RuntimeClient`` speaks CRI v1 (what kubelet calls) and containerd's content and image
services over the runtime's unix socket; ``RuntimeBlobSource`` serves the result to the same
xpkg pipeline as the registry path. Importing this package does not import grpc.
"""

from .client import DEFAULT_ENDPOINT, DEFAULT_NAMESPACE, RuntimeClient
from .errors import ContentMissing, CRIError, PullRefused, RuntimeUnavailable
from .hints import containerd_name, hosts_toml_snippet
from .source import RuntimeBlobSource
from .types import AuthConfig, ContentInfo, EnsureResult, ImageRecord, RuntimeVersion, Target

__all__ = [
    "DEFAULT_ENDPOINT",
    "DEFAULT_NAMESPACE",
    "AuthConfig",
    "CRIError",
    "ContentInfo",
    "ContentMissing",
    "EnsureResult",
    "ImageRecord",
    "PullRefused",
    "RuntimeBlobSource",
    "RuntimeClient",
    "RuntimeUnavailable",
    "RuntimeVersion",
    "Target",
    "containerd_name",
    "hosts_toml_snippet",
]
