"""Errors of the node (CRI) path: each names the cause and the one change that fixes it.

All are :class:`crossfetch.errors.FetchError` subclasses (exit code 1) with ``mode="cri"`` and
``url`` set to the runtime endpoint. Callers can switch on ``.cause``:

============================  =======================================================
cause                         raised by / meaning
============================  =======================================================
``socket-missing``            :class:`RuntimeUnavailable`: no socket at the endpoint path
``permission-denied``         :class:`RuntimeUnavailable`: the socket refuses this user
``runtime-unreachable``       :class:`RuntimeUnavailable`: nothing answers gRPC there
``cri-disabled``              :class:`RuntimeUnavailable`: containerd answers, CRI does not
``pull-refused``              :class:`PullRefused`: the runtime's pull failed (its message)
``image-not-present``         :class:`ContentMissing`: the runtime has no such image
``layer-missing``             :class:`ContentMissing`: a blob of a present image is gone
``runtime-error``             :class:`CRIError`: any other gRPC failure
============================  =======================================================
"""

from __future__ import annotations

from ..errors import FetchError, TransportError


class CRIError(FetchError):
    """Base of every failure talking to the node's container runtime."""

    default_cause = "runtime-error"


class RuntimeUnavailable(CRIError, TransportError):
    """The runtime's socket is missing, refuses us, or does not serve the CRI."""

    default_cause = "runtime-unreachable"


class PullRefused(CRIError):
    """The runtime tried to pull and failed; ``detail["runtimeMessage"]`` is its own words."""

    default_cause = "pull-refused"


class ContentMissing(CRIError):
    """The runtime has no record of the image, or lost one of its blobs."""

    default_cause = "layer-missing"
