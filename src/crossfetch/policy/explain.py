"""``policy explain`` and ``policy export``: a decision as stable JSON, as text, and as the
other configuration formats (ImageConfig, containerd ``hosts.toml``, ``registries.conf``).

The JSON shape (documented in ``docs/policy.md``; keys are never renamed, only added)::

    {"reference", "resolved", "rewrite": Source|null, "blocked": Source|null,
     "endpoints": [{"url", "role", "capabilities", "repository",
                    "tls": {"mode", "caFiles", "caInline", "clientCert", "httpFallback",
                            "source"},
                    "headers", "source"}],
     "credentials": {"registry", "source", "plainHTTPAllowed", "plainHTTPSource"},
     "notes": [...]}
"""

from __future__ import annotations

from typing import Any

from ..fixes.configmap import ca_configmap
from ..fixes.fix import CROSSFETCH_ONLY
from ..fixes.hoststoml import Host, hosts_toml
from ..fixes.imageconfig import TLS, imageconfig, to_yaml
from ..fixes.names import CA_KEY, object_name
from ..fixes.registriesconf import Mirror, Registry, registries_conf
from ..reference import DOCKER_HUB, DOCKER_HUB_API, Reference
from .model import PUSH, RESOLVE, Decision, Endpoint, Source, TLSMode

PRECEDENCE = "command-line flags > ImageConfig objects > node files (hosts.toml > " \
    "registries.conf > daemon.json mirrors; certs.d and insecure-registries per host)"
FORMATS = ("imageconfig", "hosts-toml", "registries-conf")
EXPORT_PROBE = "crossfetch-export-probe"
"""Repository appended to an export PREFIX to ask the policy about it."""


def _src(s: Source | None) -> dict[str, object] | None:
    return s.to_dict() if s is not None else None


def endpoint_dict(ep: Endpoint) -> dict[str, Any]:
    """One endpoint as explain JSON. Header *values* are left out: they may hold tokens."""
    t = ep.tls
    return {
        "url": ep.url,
        "role": ep.role,
        "capabilities": sorted(ep.capabilities),
        "repository": ep.repository,
        "tls": {
            "mode": t.mode.value,
            "caFiles": [str(p) for p in t.ca_files],
            "caInline": len(t.ca_pem),
            "clientCert": None if t.client is None else {
                "cert": str(t.client.cert), "key": str(t.client.key),
                "source": _src(t.client.source)},
            "httpFallback": t.allow_http_fallback,
            "source": _src(t.source),
        },
        "headers": sorted(k for k, _ in ep.headers),
        "source": _src(ep.source),
    }


def explain(decision: Decision) -> dict[str, Any]:
    """The decision as explain JSON. Credentials are described, never resolved or shown."""
    registry = decision.resolved.registry
    keychain = decision.auth.keychain
    cred_source = keychain.describe(registry) if keychain is not None else None
    return {
        "reference": str(decision.reference),
        "resolved": str(decision.resolved),
        "rewrite": _src(decision.rewrite_source),
        "blocked": _src(decision.blocked),
        "endpoints": [endpoint_dict(e) for e in decision.endpoints],
        "credentials": {
            "registry": registry,
            "source": _src(cred_source),
            "plainHTTPAllowed": decision.auth.allow_plain_http_credentials,
            "plainHTTPSource": _src(decision.auth.source)
            if decision.auth.allow_plain_http_credentials else None,
        },
        "notes": list(decision.notes),
    }


def _fmt_src(d: Any) -> str:
    if not d:
        return "default"
    where = d["name"] if d.get("line") is None else f"{d['name']}:{d['line']}"
    return f"{d['kind']} {where}".strip()


def render_text(data: dict[str, Any]) -> str:
    """Human form of :func:`explain`'s output."""
    out = [f"reference    {data['reference']}"]
    if data["resolved"] != data["reference"] or data["rewrite"]:
        out.append(f"resolved     {data['resolved']}  (rewritten by {_fmt_src(data['rewrite'])})")
    if data["blocked"]:
        out.append(f"BLOCKED      by {_fmt_src(data['blocked'])}: every request is refused")
    out.append("endpoints    (tried in this order)")
    for i, ep in enumerate(data["endpoints"], 1):
        tls = ep["tls"]
        out.append(f"  {i}. {ep['role']:<8} {ep['url']}  [{', '.join(ep['capabilities'])}]")
        if ep["repository"]:
            out.append(f"       repository  {ep['repository']}")
        bits = [tls["mode"]]
        if tls["httpFallback"]:
            bits.append("HTTPS first, plain HTTP only if the server speaks it")
        if tls["caFiles"]:
            bits.append("CA " + ", ".join(tls["caFiles"]))
        if tls["caInline"]:
            bits.append(f"{tls['caInline']} CA bundle(s) from ConfigMaps")
        if tls["clientCert"]:
            cc = tls["clientCert"]
            bits.append(f"client cert {cc['cert']} ({_fmt_src(cc['source'])})")
        out.append(f"       tls         {'; '.join(bits)}")
        out.append(f"                   decided by {_fmt_src(tls['source'])}")
        if ep["headers"]:
            out.append(f"       headers     {', '.join(ep['headers'])}")
        out.append(f"       source      {_fmt_src(ep['source'])}")
    cred = data["credentials"]
    who = _fmt_src(cred["source"]) if cred["source"] else "none found: anonymous"
    out.append(f"credentials  {cred['registry']}: {who}")
    if cred["plainHTTPAllowed"]:
        why = _fmt_src(cred["plainHTTPSource"])
        out.append(f"             may be sent over plain HTTP ({why})")
    for n in data["notes"]:
        out.append(f"note         {n}")
    out.append(f"precedence   {PRECEDENCE}")
    return "\n".join(out)


# --- export ---------------------------------------------------------------------------------


def probe_reference(prefix: str) -> Reference:
    """A reference under ``prefix`` to ask the policy about (tag form, so tag-only mirrors
    count)."""
    return Reference.parse(f"{prefix.rstrip('/')}/{EXPORT_PROBE}:latest")


def _repo_prefix(ep: Endpoint, decision: Decision) -> str:
    """The repository path the prefix becomes at ``ep`` (``""``: the registry root)."""
    repo = ep.repository or decision.resolved.repository
    return repo.removesuffix(EXPORT_PROBE).rstrip("/")


def export(decision: Decision, prefix: str, fmt: str) -> str:
    """The effective policy for ``prefix`` written as ``fmt`` (one of :data:`FORMATS`).
    Things a format cannot say are written as comments, never silently dropped."""
    if fmt == "imageconfig":
        return _imageconfig(decision, prefix)
    if fmt == "hosts-toml":
        return _hosts_toml(decision, prefix)
    if fmt == "registries-conf":
        return _registries_conf(decision, prefix)
    raise ValueError(f"unknown format {fmt!r}")


def _rewrite_note(decision: Decision, prefix: str, fmt: str) -> list[str]:
    """What a format that cannot rewrite repository paths says about a ``rewriteImage``."""
    if decision.rewrite_source is None:
        return []
    to = _location(decision.endpoints[-1], decision) + "/"
    return [f"{decision.rewrite_source} rewrites {prefix.rstrip('/')}/ to {to}: {fmt} cannot "
            f"rewrite a repository path, so this file is written for {to} and pulls "
            f"must name it (or keep the ImageConfig rewriteImage, or use --format "
            f"registries-conf, whose location can)"]


def _imageconfig(decision: Decision, prefix: str) -> str:
    up = decision.endpoints[-1]
    prefix = prefix.rstrip("/") + "/"  # Crossplane matches raw string prefixes
    name = object_name(prefix.rstrip("/"))
    comments = [f"# Effective policy for {prefix} (crossfetch policy export)."]
    if up.tls.allow_http_fallback:
        comments.append("# The node allows plain HTTP after an HTTPS attempt; ImageConfig has no "
                        "fallback: choose tls.mode Disabled if the registry only speaks HTTP.")
    ca = None
    docs: list[dict[str, Any]] = []
    if up.tls.ca_files:
        cm = f"{name}-ca"
        ca = (cm, CA_KEY)
        pem = "".join(p.read_text(encoding="utf-8", errors="replace") for p in up.tls.ca_files)
        docs.append(ca_configmap(cm, pem, namespace=None))
    elif up.tls.ca_pem:
        comments.append("# The CA comes from a ConfigMap already: keep its caBundleConfigMapRef.")
    client = None
    if up.tls.client is not None:
        client = f"{name}-client"
        comments.append(f"# clientCertSecretRef is crossfetch's addition; create the Secret with:"
                        f"\n#   kubectl create secret tls {client} --cert={up.tls.client.cert} "
                        f"--key={up.tls.client.key}")
    tls = TLS(mode=up.tls.mode.value, ca_configmap=ca, client_cert_secret=client)
    target = _location(up, decision)
    ics: list[dict[str, Any]] = []
    tls_prefix = prefix
    if up.host != decision.reference.api_registry or \
            _repo_prefix(up, decision) != decision.reference.repository.removesuffix(
                EXPORT_PROBE).rstrip("/"):
        # TLS is matched against the rewritten reference (as Crossplane matches pull
        # secrets), so it needs its own ImageConfig for the target prefix.
        tls_prefix = target + "/"
        ics.append(imageconfig(prefix, name=name, rewrite=tls_prefix))
    if tls != TLS(mode=TLSMode.STRICT.value) or up.tls.allow_http_fallback:
        comments.append(f"# registry.tls is {CROSSFETCH_ONLY}.")
        ics.append(imageconfig(tls_prefix, name=object_name(tls_prefix.rstrip("/"), "tls")
                               if ics else name, tls=tls))
    elif not ics:
        comments.append("# The default: TLS verified against the system roots, no rewrite; no "
                        "ImageConfig is needed.")
    for ep in decision.endpoints[:-1]:
        comments.append(f"# ImageConfig cannot express mirror {ep.url} "
                        f"({', '.join(sorted(ep.capabilities))}); keep it in the node files.")
    if decision.blocked is not None:
        comments.append(f"# Blocked by {decision.blocked}: ImageConfig cannot block a prefix.")
    return "\n".join(comments) + "\n" + to_yaml(*ics, *docs)


def _hosts_entry(ep: Endpoint, decision: Decision, *, mirror: bool) -> Host:
    t = ep.tls
    comments: list[str] = []
    if t.ca_pem:
        comments.append("a CA from a ConfigMap: save it to a file and list it in ca")
    if ep.repository:
        comments.append(f"hosts.toml cannot map repositories: this endpoint serves them under "
                        f"{_repo_prefix(ep, decision)}/")
    skip_verify: bool | None = True if t.mode is TLSMode.INSECURE else None
    has_tls = bool(t.ca_files or t.client or skip_verify)
    if t.allow_http_fallback and not has_tls:
        skip_verify = False  # without a TLS setting containerd would go straight to HTTP
    caps: tuple[str, ...] | None = None
    if mirror:
        caps = tuple(sorted(ep.capabilities - {PUSH}))
    elif ep.capabilities != frozenset({"pull", "resolve", "push"}):
        caps = tuple(sorted(ep.capabilities))
    return Host(_hosts_url(ep), capabilities=caps, ca=tuple(str(p) for p in t.ca_files),
                client=((str(t.client.cert), str(t.client.key)),) if t.client else (),
                skip_verify=skip_verify, override_path=ep.override_path,
                headers=ep.headers if mirror else (), comments=tuple(comments))


def _hosts_url(ep: Endpoint) -> str:
    # http:// plus TLS settings = HTTPS first, then the safe fallback
    scheme = "http" if ep.tls.allow_http_fallback else ep.scheme
    return f"{scheme}://{ep.host}{ep.path}"


def _hosts_toml(decision: Decision, prefix: str) -> str:
    comments = [f"{decision.resolved.registry}/hosts.toml (crossfetch policy export)",
                *_rewrite_note(decision, prefix, "hosts.toml")]
    if decision.blocked is not None:
        comments.append(f"blocked by {decision.blocked}: hosts.toml cannot block a registry")
    up = _hosts_entry(decision.endpoints[-1], decision, mirror=False)
    mirrors = [_hosts_entry(ep, decision, mirror=True) for ep in decision.endpoints[:-1]]
    if up == Host(up.url):
        return hosts_toml(up, mirrors, comments=comments)
    # The upstream's settings go in its own [host] table, after the mirrors: containerd 1.6
    # (Debian 12) ignored them at the top level (tests/integration/test_fixes_applied.py), and
    # a table naming the server's URL configures the server (crossfetch reads it so too).
    return hosts_toml(Host(up.url), [*mirrors, up], comments=comments)


def _location(ep: Endpoint, decision: Decision) -> str:
    rp = _repo_prefix(ep, decision)
    host = DOCKER_HUB if ep.host == DOCKER_HUB_API else ep.host
    return host + (f"/{rp}" if rp else "")


def _rc_insecure(ep: Endpoint) -> bool:
    return ep.tls.mode is not TLSMode.STRICT or ep.tls.allow_http_fallback


def _registries_conf(decision: Decision, prefix: str) -> str:
    up = decision.endpoints[-1]
    comments = [f"TLS files for {ep.host}: copy them to /etc/containers/certs.d/{ep.host}/ "
                "(CAs as *.crt, the client pair as client.cert + client.key)"
                for ep in decision.endpoints if ep.tls.ca_files or ep.tls.client]
    if decision.rewrite_source is not None:
        comments.append(f"location is the rewriteImage of {decision.rewrite_source}")
    entry = Registry(prefix.rstrip("/"), _location(up, decision), insecure=_rc_insecure(up),
                     blocked=decision.blocked is not None,
                     mirrors=tuple(Mirror(_location(ep, decision), insecure=_rc_insecure(ep),
                                          digest_only=not ep.can(RESOLVE))
                                   for ep in decision.endpoints[:-1]))
    return "# registries.conf (v2) entry (crossfetch policy export)\n" + \
        registries_conf(entry, comments=comments)
