"""The HTTP stages: ``registry`` (``/v2/``), ``auth``, ``manifest`` (HEAD, GET) and ``package``.

They speak through the same :class:`~crossfetch.transport.session.Transport` and
:class:`~crossfetch.registry.RegistryClient` a pull uses (retries off, short timeouts), so the
errors here are the errors a pull would hit.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..errors import CrossfetchError, HTTPStatusError, Unauthorized
from ..oci import ACCEPT, resolve_image
from ..registry import HEAD_FALLBACK, RegistryClient, status_error
from .report import Check, Status

if TYPE_CHECKING:
    from ..client import Client
    from ..crossplane.profile import Profile
    from ..policy.model import Decision, Endpoint
    from ..transport.connection import Auth

PACKAGE_DEADLINE_FACTOR = 12
"""The package stage (which downloads a layer) may take this many ``--timeout`` in total."""


def parse_challenge(header: str | None) -> dict[str, str]:
    """The challenge crossfetch would answer, as report data: ``Bearer realm="…",service="…"``
    → ``{"scheme": "Bearer", "realm": …, …}``. Parsed by the auth flow's own parser
    (:mod:`crossfetch.transport.challenge`), so the doctor never reads a header differently."""
    if not header:
        return {}
    from ..transport.challenge import MalformedChallenge, parse_challenges, pick

    try:
        found = parse_challenges(header)
    except MalformedChallenge as e:
        return {"scheme": "(malformed)", "error": e.message}
    chosen = pick(found) or (found[0] if found else None)
    if chosen is None:
        return {}
    return {"scheme": {"bearer": "Bearer", "basic": "Basic"}.get(chosen.scheme, chosen.scheme),
            **chosen.params}


def _error_check(name: str, e: CrossfetchError, *, method: str | None = None) -> Check:
    detail = e.message + (f"\n(url: {e.url})" if e.url and e.url not in e.message else "")
    return Check(name, Status.FAIL, e.cause, detail, e.fix, method=method,
                 data={"error": e.to_dict()})


class _SystemTemp:
    """The system's temporary directory, looked up only if asked: only an image without a
    marked base layer spills candidates there (removed after), so most packages never import
    :mod:`tempfile`."""

    def __fspath__(self) -> str:
        import tempfile

        return tempfile.gettempdir()


class ApiState:
    """What the HTTP stages learned, for the stages after them."""

    def __init__(self) -> None:
        self.ping_status = 0
        self.challenge: dict[str, str] | None = None
        self.digest: str | None = None
        self.manifest: tuple[bytes, str, str] | None = None


class ApiStages:
    """Runs the HTTP stages against one endpoint of a decision."""

    def __init__(self, client: Client, decision: Decision, ep: Endpoint, timeout: float,
                 platform: str | None = None) -> None:
        self.client = client
        self.decision = decision
        self.ep = ep
        self.timeout = timeout
        self.platform = platform
        self.target: Profile | None = None
        """The Crossplane release fixes are written for."""
        self.transport = client.transport
        self.state = ApiState()
        # Only this endpoint: the stages diagnose one place, not a fall-through.
        self.rc = RegistryClient(decision._replace(endpoints=(ep,)), client.transport,
                                 client.auth_factory(decision))

    @property
    def registry(self) -> str:
        return self.decision.resolved.registry

    def _auth(self) -> Auth | None:
        return self.client.auth_factory(self.decision)(self.ep, "pull")

    # --- registry ---

    def registry_stage(self) -> Check:
        try:
            resp = self.transport.send(self.ep, "GET", self.ep.api_path(), retries=0)
        except CrossfetchError as e:
            return _error_check("registry", e)
        status = resp.status_code
        api = resp.headers.get("docker-distribution-api-version")
        ctype = resp.headers.get("content-type", "")
        server = resp.headers.get("server")
        self.state.ping_status = status
        self.state.challenge = parse_challenge(resp.headers.get("www-authenticate"))
        data = {"url": str(resp.request.url), "status": status, "apiVersion": api,
                "contentType": ctype, "server": server}
        looks_json = "json" in ctype or resp.content.strip() in (b"{}", b"")
        if status in (200, 401) and (api or (status == 401 and self.state.challenge)
                                     or (status == 200 and looks_json)):
            what = f"{api}" if api else "a registry (no Docker-Distribution-API-Version header)"
            auth = ", authentication required" if status == 401 else ", anonymous access"
            return Check("registry", Status.PASS, None,
                         f"GET {data['url']} answered {status}: {what}{auth}", data=data)
        body = resp.content[:120].decode(errors="replace").replace("\n", " ")
        return Check("registry", Status.FAIL, "not-a-registry",
                     f"GET {data['url']} answered {status} {resp.reason_phrase} "
                     f"({ctype or 'no content type'}{', server ' + server if server else ''}), "
                     f"not the registry API: {body!r}",
                     "# Check the host and port: they must serve the OCI distribution API at "
                     "/v2/ (a web UI,\n# or a proxy without the registry route, answers like "
                     "this). Try: curl -i " + str(resp.request.url) + "\n# A registry under a "
                     "path needs a containerd hosts.toml mirror with override_path = true.",
                     data=data)

    def _unauthorized_fix(self) -> str:
        from ..fixes import causes  # only a failing stage writes a fix

        return causes.unauthorized(self.registry, target=self.target).text()

    # --- auth ---

    def auth_stage(self) -> Check:
        kc = self.decision.auth.keychain
        source = kc.describe(self.decision.resolved.registry) if kc else None
        creds = f"credentials from {source}" if source else "no credentials configured"
        if self.state.ping_status == 200:
            return Check("auth", Status.PASS, None,
                         f"anonymous access to /v2/ is allowed ({creds})",
                         data={"anonymous": True, "credentials": str(source) if source else None})
        ch = self.state.challenge or {}
        try:
            resp = self.transport.send(self.ep, "GET", self.ep.api_path(), auth=self._auth(),
                                       retries=0)
        except Unauthorized as e:
            # The auth flow's own verdict (e.g. credentials-rejected) stays in data; the
            # stage's cause is the one users and scripts look for.
            scheme = ch.get("scheme", "(none)")
            realm = f" realm={ch['realm']!r}" if ch.get("realm") else ""
            return Check("auth", Status.FAIL, "unauthorized",
                         f"{e.message}\nchallenge: {scheme}{realm}; {creds}",
                         (f"# {e.fix}\n" if e.fix else "")
                         + self._unauthorized_fix(),
                         data={"challenge": ch, "credentials": str(source) if source else None,
                               "error": e.to_dict()})
        except CrossfetchError as e:
            return _error_check("auth", e)
        data = {"challenge": ch, "credentials": str(source) if source else None,
                "status": resp.status_code}
        if resp.status_code == 200:
            return Check("auth", Status.PASS, None,
                         f"{ch.get('scheme', 'auth')} challenge answered with {creds}", data=data)
        realm = f" realm={ch['realm']!r}" if ch.get("realm") else ""
        service = f" service={ch['service']!r}" if ch.get("service") else ""
        return Check("auth", Status.FAIL, "unauthorized",
                     f"GET /v2/ answered {resp.status_code} with challenge "
                     f"{ch.get('scheme', '(none)')}{realm}{service}; {creds}"
                     + (" and they were refused" if source else ""),
                     self._unauthorized_fix(), data=data)

    # --- manifest ---

    def manifest_stages(self) -> list[Check]:
        ident = self.decision.resolved.identifier
        head = self._timed(lambda: self._head(ident))
        get = self._timed(lambda: self._get(ident))
        if get.status is Status.PASS and head.status is Status.FAIL:
            head.status = Status.WARN
            head.detail += (f"\nA pull still works: Crossplane and crossfetch fall back to GET "
                            f"(Crossplane logs: {HEAD_FALLBACK}).")
        return [head, get]

    @staticmethod
    def _timed(fn: Callable[[], Check]) -> Check:
        start = time.perf_counter()
        check = fn()
        check.seconds = time.perf_counter() - start
        return check

    def _head(self, ident: str) -> Check:
        path = self.ep.repo_path(self.decision.resolved.repository, f"manifests/{ident}")
        try:
            resp = self.transport.send(self.ep, "HEAD", path, headers={"Accept": ACCEPT},
                                       auth=self._auth(), retries=0)
        except CrossfetchError as e:
            return _error_check("manifest", e, method="HEAD")
        url, status = str(resp.request.url), resp.status_code
        digest = resp.headers.get("docker-content-digest")
        data = {"url": url, "status": status, "digest": digest,
                "mediaType": resp.headers.get("content-type")}
        if status == 200 and digest:
            self.state.digest = digest
            return Check("manifest", Status.PASS, None,
                         f"HEAD {url}: {digest} ({data['mediaType']})", method="HEAD",
                         data=data)
        if status == 200:
            return Check("manifest", Status.FAIL, "no-digest-header",
                         f"HEAD {url} answered 200 without a Docker-Content-Digest header",
                         "# the registry or a proxy strips the header; fix the proxy",
                         method="HEAD", data=data)
        resp.read_some()
        err = status_error(resp, "HEAD manifest")
        return Check("manifest", Status.FAIL, err.cause, f"HEAD {url} answered {status} "
                     f"{resp.reason_phrase}", self._status_fix(err), method="HEAD", data=data)

    def _status_fix(self, err: HTTPStatusError) -> str:
        """The doctor's fix for a status error (its cause comes from
        :func:`crossfetch.registry.status_error`, the one mapping): it knows the target and
        can list the repository's tags."""
        if err.cause == "unauthorized":
            return self._unauthorized_fix()
        if err.cause == "not-found":
            return self._not_found_fix()
        if err.cause == "method-not-allowed":
            return ("# the registry or a proxy in front of it refuses this method; allow HEAD "
                    "and GET on /v2/")
        return f"# {err.fix}" if err.fix else "# check the registry's logs"

    def _not_found_fix(self) -> str:
        ref = self.decision.resolved
        try:
            tags = self.rc.tags()
        except CrossfetchError as e:
            return (f"# the repository {ref.repository} is not there either ({e.cause}): check "
                    "its name, and the path of any rewriteImage or mirror")
        shown = ", ".join(tags[:15]) + (" …" if len(tags) > 15 else "")
        return (f"# {ref.repository} exists; its tags: {shown or '(none)'}\n"
                f"crossfetch tags {ref.name}")

    def _get(self, ident: str) -> Check:
        try:
            raw, mt, digest = self.rc.fetch_manifest(ident)
        except CrossfetchError as e:
            check = _error_check("manifest", e, method="GET")
            if isinstance(e, HTTPStatusError) and e.cause in (
                    "unauthorized", "not-found", "method-not-allowed"):
                check.fix = self._status_fix(e)
            return check
        self.state.manifest = (raw, mt, digest)
        return Check("manifest", Status.PASS, None,
                     f"GET manifests/{ident}: {digest} ({mt}, {len(raw)} bytes, digest verified)",
                     method="GET", data={"digest": digest, "mediaType": mt, "size": len(raw)})

    # --- package ---

    def package_stage(self) -> Check:
        from ..transport.deadline import budget
        from ..xpkg import extract_package

        assert self.state.manifest is not None
        raw, mt, digest = self.state.manifest
        # One budget for every request of the stage, enforced at each socket read, so a
        # server that trickles bytes cannot hold the doctor (per-read timeouts would not).
        try:
            with budget(self.timeout * PACKAGE_DEADLINE_FACTOR,
                        f"the package stage ({PACKAGE_DEADLINE_FACTOR} x --timeout)"):
                parsed, platform = resolve_image(self.rc, raw, mt, digest, self.platform)
                # The stage reads package.yaml to check it, and keeps nothing.
                with open(os.devnull, "wb") as sink:
                    read = extract_package(self.rc, parsed, sink, tmp_dir=_SystemTemp())
        except CrossfetchError as e:
            check = _error_check("package", e)
            if e.cause == "no-package-yaml":  # the doctor knows the reference to push to
                check.fix = ("# this image is not a Crossplane package (no package.yaml in its "
                             "base layer or anywhere).\n# Build and push it with the Crossplane "
                             "CLI:\ncrossplane xpkg build --package-root=. -o pkg.xpkg\n"
                             f"crossplane xpkg push -f pkg.xpkg {self.decision.resolved}")
            return check
        pkg = read.package
        data: dict[str, Any] = {"kind": pkg.kind, "apiVersion": pkg.api_version,
                                "name": pkg.name, "platform": platform,
                                "baseLayer": {"digest": read.layer.digest,
                                               "size": read.layer.size, "how": read.how},
                                "objects": dict(pkg.objects), "size": pkg.size}
        how = {"annotation": "base layer (annotation)", "label": "base layer (config label)",
               "flattened": "all layers flattened (no base layer marked)"}[read.how]
        note = f"; {read.note}" if read.note else ""
        return Check("package", Status.PASS, None,
                     f"{pkg.kind} {pkg.name} ({pkg.api_version}), package.yaml {pkg.size} bytes "
                     f"from {how} {read.layer.digest[:19]}…{note}", data=data)
