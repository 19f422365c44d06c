"""The node path's stages (``doctor --via cri``): is the runtime there, can it pull, and does
its copy of the image hold a package."""

from __future__ import annotations

import tempfile
from typing import TYPE_CHECKING, Any

from .report import Check, Status

if TYPE_CHECKING:
    from ..client import Client
    from ..policy.model import Decision


def pull_deadline(timeout: float) -> float:
    """How long the runtime's pull may take in a diagnosis: 12 network timeouts, at least a
    minute (it downloads the whole image, runtime layers included)."""
    return max(60.0, 12 * timeout)


def runtime_stage(client: Client, decision: Decision) -> Check:
    """Socket reachable, runtime name and version from CRI ``Version``, then the pull (or
    the image already present), exactly as kubelet would ask for it."""
    from ..cri import AuthConfig

    ref = str(decision.resolved)
    keychain = decision.auth.keychain
    cred = keychain.resolve(decision.resolved.registry) if keychain else None
    auth = AuthConfig.from_credential(cred, decision.resolved.registry)
    with client.runtime(pull_timeout=pull_deadline(client.timeout or 60)) as rt:
        version = rt.version()
        ensured = rt.ensure(ref, auth)
    data: dict[str, Any] = {"endpoint": rt.endpoint, "runtime": version.runtime_name,
                            "version": version.runtime_version,
                            "apiVersion": version.runtime_api_version,
                            "pulled": ensured.pulled, "credentials": bool(cred)}
    what = "pulled it" if ensured.pulled else "already had it (no registry request)"
    return Check("runtime", Status.PASS, None,
                 f"{version.runtime_name} {version.runtime_version} at {rt.endpoint} "
                 f"(CRI {version.runtime_api_version}) {what}: {ref}", data=data)


def cri_package_stage(client: Client, decision: Decision) -> Check:
    """Read the package from the runtime's content store, into a throwaway cache."""
    from ..cache import Cache
    from ..client import Client as _Client

    with tempfile.TemporaryDirectory(prefix="crossfetch-doctor-") as tmp, _Client(
            client.policy, cache=Cache(tmp), pull_policy="Always", platform=client.platform,
            via="cri", runtime_endpoint=client.runtime_endpoint,
            runtime_namespace=client.runtime_namespace, timeout=client.timeout) as c:
        res = c.pull(decision.reference)
        pkg = res.package
        base = res.base_layer
        layer = f"base layer ({base.how}) {base.digest[:19]}…" if base else "no base layer"
        return Check("package", Status.PASS, None,
                     f"{pkg.kind} {pkg.name} ({pkg.api_version}), package.yaml {pkg.size} bytes "
                     f"from the runtime's content store, {layer}",
                     data={"digest": res.digest, "kind": pkg.kind, "name": pkg.name})
