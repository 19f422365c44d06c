"""The docker-credential-helpers protocol: ``docker-credential-<name> get`` for one registry."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping

from ..errors import AuthError
from .hosts import DOCKER_HUB_KEY, HUB_HOSTS
from .model import Credential, Source

HELPER_TIMEOUT = 30.0
MAX_HELPER_OUTPUT = 1024 * 1024
_HELPER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")  # fullmatch: no trailing newline


def run_helper(name: str, registry: str, *, env: Mapping[str, str],
               why: str = "") -> Credential | None:
    """``docker-credential-<name> get`` for ``registry``; ``None`` when it has no entry.

    Any other failure (missing binary, non-zero exit, bad output, timeout) is an
    :class:`AuthError` naming the helper: pulling anonymously instead would hide the problem.
    """
    exe_name = f"docker-credential-{name}"
    setting = f" (named by {why})" if why else ""
    if not _HELPER_NAME.fullmatch(name):
        raise AuthError(f"credential helper name {name!r}{setting} is not a plain name",
                        cause="credential-helper", fix="helper names are like 'pass', "
                        "'ecr-login', 'desktop'")
    import shutil
    import subprocess

    exe = shutil.which(exe_name, path=env.get("PATH", os.defpath))
    if exe is None:
        raise AuthError(f"credential helper {exe_name}{setting} is not on PATH, so the "
                        f"credentials for {registry} cannot be read", host=registry,
                        cause="credential-helper-missing",
                        fix=f"install {exe_name} or put it on PATH, or remove the setting "
                        "from the Docker config to pull anonymously")
    server = DOCKER_HUB_KEY if registry.lower() in HUB_HOSTS else registry
    try:
        proc = subprocess.run([exe, "get"], input=server.encode(), capture_output=True,
                              timeout=HELPER_TIMEOUT, env=dict(env), check=False)
    except subprocess.TimeoutExpired:
        raise AuthError(f"credential helper {exe_name} did not answer within "
                        f"{HELPER_TIMEOUT:.0f} s for {registry}", host=registry,
                        cause="credential-helper-failed",
                        fix=f"run 'echo {server} | {exe_name} get' to see what it waits "
                        "for (an unlocked keyring, a login)") from None
    except OSError as e:
        raise AuthError(f"cannot run credential helper {exe}: {e.strerror}", host=registry,
                        cause="credential-helper-failed",
                        fix="check that it is executable") from None
    out = proc.stdout[:MAX_HELPER_OUTPUT].decode(errors="replace")
    if proc.returncode != 0:
        text = (out.strip() or proc.stderr.decode(errors="replace").strip())[:300]
        if "credentials not found" in text.lower():
            return None  # the protocol's own "no entry" answer
        raise AuthError(f"credential helper {exe_name} failed for {registry} (exit "
                        f"{proc.returncode}): {text or 'no output'}", host=registry,
                        cause="credential-helper-failed",
                        fix=f"run 'echo {server} | {exe_name} get' to see the error; log in "
                        "again if the stored credentials expired")
    try:
        doc = json.loads(out)
        username, secret = doc.get("Username"), doc.get("Secret")
    except (ValueError, AttributeError):
        raise AuthError(f"credential helper {exe_name} answered with something that is not "
                        "its JSON protocol", host=registry, cause="credential-helper-failed",
                        fix="check the helper's version") from None
    if not secret:
        return None
    src = Source("credential-helper", f"{exe_name} ({why})" if why else exe_name)
    if username == "<token>":
        return Credential(identity_token=str(secret), source=src)
    return Credential(username=str(username or ""), password=str(secret), source=src)
