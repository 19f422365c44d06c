"""Put test packages into registries without crossfetch: skopeo, or a tiny raw API pusher."""

from __future__ import annotations

import base64
import re
import shutil
import ssl
import subprocess
import tempfile
from collections.abc import Generator
from pathlib import Path

import httpx

SKOPEO = "skopeo"


class PushError(RuntimeError):
    """A fixture push failed; the message carries the tool's own error text."""


def skopeo_push(
    src: str,
    dest_ref: str,
    *,
    tls_verify: bool = True,
    cert_dir: Path | None = None,
    creds: str | None = None,
    all_platforms: bool = False,
    fmt: str | None = None,
) -> None:
    """``skopeo copy SRC docker://DEST`` keeping digests as built where the source allows.

    ``cert_dir`` may be a directory in containers-certs.d layout or a single CA file (it is
    then copied as ``ca.crt`` into a temporary directory: skopeo only reads ``*.crt``).
    """
    if shutil.which(SKOPEO) is None:
        raise PushError("skopeo is missing: `apt-get install -y skopeo`")
    dest = dest_ref if dest_ref.startswith("docker://") else f"docker://{dest_ref}"
    with tempfile.TemporaryDirectory(prefix="skopeo-certs-") as tmp:
        args = [SKOPEO, "--insecure-policy", "copy", "--quiet", "--retry-times", "2"]
        args.append(f"--dest-tls-verify={'true' if tls_verify else 'false'}")
        if cert_dir is not None:
            if cert_dir.is_file():
                shutil.copy(cert_dir, Path(tmp) / "ca.crt")
                cert_dir = Path(tmp)
            args += ["--dest-cert-dir", str(cert_dir)]
        args += ["--dest-creds", creds] if creds else ["--dest-no-creds"]
        if all_platforms:
            args.append("--all")
        if fmt:
            args += ["--format", fmt]
        # docker-archive sources get a manifest synthesised by skopeo, so there are no source
        # digests to keep; every other source must arrive byte for byte as built.
        if not src.startswith("docker-archive:") and not fmt:
            args.append("--preserve-digests")
        proc = subprocess.run(
            [*args, src, dest], capture_output=True, text=True, timeout=300, check=False
        )
    if proc.returncode != 0:
        raise PushError(f"skopeo copy {src} {dest} failed ({proc.returncode}):\n{proc.stderr}")


def _basic(creds: tuple[str, str]) -> str:
    return "Basic " + base64.b64encode(f"{creds[0]}:{creds[1]}".encode()).decode()


class _RegistryAuth(httpx.Auth):
    """Answer a 401 with Basic credentials or a bearer token from the challenge's realm."""

    def __init__(self, creds: tuple[str, str] | None, scope: str) -> None:
        self.creds = creds
        self.scope = scope
        self.header: str | None = None

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        if self.header:
            request.headers["Authorization"] = self.header
        response = yield request
        if response.status_code != 401:
            return
        challenge = response.headers.get("WWW-Authenticate", "")
        scheme, _, rest = challenge.partition(" ")
        params = dict(re.findall(r'(\w+)="([^"]*)"', rest))
        if scheme.lower() == "basic":
            if not self.creds:
                return
            self.header = _basic(self.creds)
        elif scheme.lower() == "bearer":
            query = {"service": params.get("service", ""), "scope": self.scope}
            token_req = httpx.Request("GET", params["realm"], params=query)
            if self.creds:
                token_req.headers["Authorization"] = _basic(self.creds)
            token_resp = yield token_req
            token_resp.read()
            if token_resp.status_code != 200:
                raise PushError(f"token request failed: {token_resp.status_code} {token_resp.text}")
            body = token_resp.json()
            self.header = f"Bearer {body.get('token') or body['access_token']}"
        else:
            return
        request.headers["Authorization"] = self.header
        yield request


def _context(verify: ssl.SSLContext | bool | str) -> ssl.SSLContext | bool:
    return ssl.create_default_context(cafile=verify) if isinstance(verify, str) else verify


def raw_push(
    registry_url: str,
    repo: str,
    tag: str,
    manifest: bytes,
    media_type: str,
    blobs: dict[str, bytes],
    *,
    verify: ssl.SSLContext | bool | str = True,
    auth: tuple[str, str] | None = None,
) -> str:
    """Upload ``blobs`` and PUT ``manifest`` exactly as given; return the registry's digest.

    For content skopeo would rewrite (wrong media types, odd manifests). Blobs already present
    are skipped. Handles Basic and token auth.
    """
    base = registry_url.rstrip("/")
    flow = _RegistryAuth(auth, f"repository:{repo}:pull,push")
    with httpx.Client(verify=_context(verify), auth=flow, timeout=60) as client:
        for digest, data in blobs.items():
            head = client.head(f"{base}/v2/{repo}/blobs/{digest}")
            if head.status_code == 200:
                continue
            start = client.post(f"{base}/v2/{repo}/blobs/uploads/")
            if start.status_code != 202:
                raise PushError(f"upload start for {repo}: {start.status_code} {start.text}")
            location = httpx.URL(base).join(start.headers["Location"])
            put = client.put(
                location.copy_merge_params({"digest": digest}),
                content=data,
                headers={"Content-Type": "application/octet-stream"},
            )
            if put.status_code != 201:
                raise PushError(f"blob {digest} to {repo}: {put.status_code} {put.text}")
        resp = client.put(
            f"{base}/v2/{repo}/manifests/{tag}",
            content=manifest,
            headers={"Content-Type": media_type},
        )
        if resp.status_code != 201:
            raise PushError(f"manifest {repo}:{tag}: {resp.status_code} {resp.text}")
        return str(resp.headers.get("Docker-Content-Digest", ""))
