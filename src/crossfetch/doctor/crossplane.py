"""The second verdict of ``doctor``: would Crossplane vX.Y, in its pod, pull this package?

It reuses what the crossfetch stages learned where that holds for Crossplane too (a name that
does not resolve, a port nothing listens on, an identical endpoint and credential source), and
otherwise runs the HTTP stages again through the same :class:`~crossfetch.doctor.api.ApiStages`
under the release's decision mode (:mod:`crossfetch.crossplane.emulate`): HTTPS with the system
roots plus ``--ca-bundle``, plain HTTP only where its go-containerregistry allows it, no
``tls`` block, client certificates or node files. Then, since Crossplane runs in a pod, a
loopback target fails: there it is the pod itself.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..errors import CrossfetchError
from .report import Check, Status, Verdict

if TYPE_CHECKING:
    from ..crossplane.profile import Profile
    from ..policy.model import Decision, Endpoint
    from .checks import Doctor, _Run

LOOPBACK_DNS_SUFFIXES = ("localtest.me",)
"""Public DNS names that always answer with loopback (idpbuilder's default domain)."""


def is_localtest_name(host: str) -> bool:
    h = host.lower().rstrip(".")
    return any(h == s or h.endswith("." + s) for s in LOOPBACK_DNS_SUFFIXES)


def _same_endpoint(a: Endpoint, b: Endpoint) -> bool:
    ta, tb = a.tls, b.tls
    return (a.url == b.url and a.override_path == b.override_path and a.repository == b.repository
            and a.headers == b.headers
            and (ta.mode, ta.ca_files, ta.ca_pem, ta.client, ta.allow_http_fallback)
            == (tb.mode, tb.ca_files, tb.ca_pem, tb.client, tb.allow_http_fallback))


def _credentials(decision: Decision) -> str | None:
    kc = decision.auth.keychain
    source = kc.describe(decision.resolved.registry) if kc else None
    return str(source) if source else None


def _host_port(ep: Endpoint) -> tuple[str, int]:
    from .net import Target

    t = Target.of(ep)
    return t.host, t.port


def verdict(doctor: Doctor, run: _Run, written: str) -> Verdict:
    """Crossplane ``doctor.profile``'s verdict for ``written`` after the crossfetch stages."""
    from ..crossplane.emulate import default_registry
    from ..reference import Reference

    prof = doctor.profile
    try:
        # The release's own default registry (v1), not crossfetch's --default-registry alone.
        ref = Reference.parse(written, default_registry=default_registry(
            prof, doctor.client.default_registry))
        decision = doctor.crossplane_policy.decide(ref, written)
    except CrossfetchError as e:
        return Verdict(prof.version, False, e.cause, e.message, e.fix)
    (ep,) = decision.endpoints
    data: dict[str, Any] = {"endpoint": ep.url, "resolved": str(decision.resolved),
                            "ignored": list(decision.notes)}
    result = _transport_verdict(doctor, run, decision, ep, data)
    result = _with_loopback(run, decision, ep, result, data, prof)
    return _with_network_policy(run, result, data, prof)


def _with_network_policy(run: _Run, result: Verdict, data: dict[str, Any],
                         prof: Profile) -> Verdict:
    """NetworkPolicies are about the Crossplane pod: egress they deny fails its verdict."""
    np = run.report.get("networkpolicy")
    if np is None or np.status is not Status.FAIL:
        return result
    if result.ok:
        return Verdict(prof.version, False, np.cause, np.detail, np.fix, data)
    if result.cause == "loopback-address":
        # A denied egress is a fact of the policies; the loopback a guess about cluster DNS
        # for names: the policy leads.
        return Verdict(prof.version, False, np.cause,
                       f"{np.detail}\nAlso: {result.detail.splitlines()[0]}",
                       (np.fix or "") + (result.fix or ""), data)
    result.detail += f"\nAlso: {np.detail.splitlines()[0]}"
    result.fix = (result.fix or "") + (np.fix or "")
    return result


def _with_loopback(run: _Run, decision: Decision, ep: Endpoint, result: Verdict,
                   data: dict[str, Any], prof: Profile) -> Verdict:
    """A loopback target is the Crossplane pod itself."""
    loop = _loopback_reason(run, ep)
    if loop is None:
        return result
    data["loopback"] = True
    plain_http = bool(data.get("plainHttp")) or _speaks_http(run) or result.cause == "plain-http"
    fix = _loopback_fix(prof, decision, ep, plain_http=plain_http)
    if result.ok:
        return Verdict(prof.version, False, "loopback-address", loop, fix, data)
    # Both: the transport failure leads (it is what this machine can show), the loopback
    # follows. The plain-HTTP fix already routes to the Service's ClusterIP, which solves
    # both; any other failure gets both fixes.
    result.detail += f"\nAlso: {loop}"
    if result.cause != "plain-http":
        result.fix = (result.fix or "") + fix
    return result


def _transport_verdict(doctor: Doctor, run: _Run, decision: Decision, ep: Endpoint,
                       data: dict[str, Any]) -> Verdict:
    from ..crossplane.profile import plain_http_rule

    prof = doctor.profile
    report = run.report
    rule = plain_http_rule(prof, decision.resolved.registry)
    data["plainHttpRule"] = rule
    how = (f"HTTPS, then plain HTTP ({decision.resolved.registry} is {rule} in "
           f"go-containerregistry {prof.ggcr_version}'s rule)" if rule else
           f"HTTPS only (go-containerregistry {prof.ggcr_version})")
    trust = "system roots" + "".join(f" + {p}" for p in ep.tls.ca_files)
    crossfetch = run.decision
    failed = report.failure
    # 1. What holds for any client: a name that does not resolve, a port nothing listens on,
    #    a server that never answers.
    if failed is not None and run.target is not None \
            and (failed.name in ("dns", "tcp") or failed.cause == "timeout") \
            and (run.target.host, run.target.port) == _host_port(ep):
        return Verdict(prof.version, False, failed.cause,
                       f"the same failure from any client: {failed.detail}",
                       failed.fix, data)
    # 2. The very endpoint, trust and credentials crossfetch used: the same outcome.
    if crossfetch is not None and run.endpoint is not None and report.ok \
            and crossfetch.resolved == decision.resolved \
            and _same_endpoint(run.endpoint, ep) and _credentials(crossfetch) == \
            _credentials(decision):
        data["plainHttp"] = _speaks_http(run)
        return Verdict(prof.version, True, None,
                       f"as crossfetch did: {how}, trusting {trust}", None, data)
    # 3. Otherwise ask the registry again, as that release would.
    return _probe(doctor, run, decision, ep, data, how, trust)


def _speaks_http(run: _Run) -> bool:
    """Whether the crossfetch stages found the registry speaking plain HTTP."""
    tls, dns = run.report.get("tls"), run.report.get("dns")
    return bool((tls and (tls.data.get("fallback") or tls.data.get("mode") == "Disabled"
                          or tls.cause == "plain-http"))
                or (dns and dns.data.get("plainHttp")))


def _probe(doctor: Doctor, run: _Run, decision: Decision, ep: Endpoint, data: dict[str, Any],
           how: str, trust: str) -> Verdict:
    from ..client import Client
    from ..transport.session import Timeouts, Transport
    from .api import ApiStages

    prof = doctor.profile
    transport = Transport(timeouts=Timeouts(connect=doctor.timeout, read=doctor.timeout),
                          retries=0)
    with Client(doctor.crossplane_policy, transport=transport, platform=doctor.platform,
                timeout=doctor.timeout, cache=doctor.client.cache) as client:
        api = ApiStages(client, decision, ep, doctor.timeout, doctor.platform)
        checks: list[Check] = [api.registry_stage()]
        if checks[-1].status is not Status.FAIL:
            checks.append(api.auth_stage())
        if checks[-1].status is not Status.FAIL:
            checks += api.manifest_stages()
        if checks[-1].status is not Status.FAIL:
            mine = run.report.get("package")
            got = run.report.get("manifest", "GET")
            same = (mine is not None and mine.status is Status.PASS and got is not None
                    and api.state.manifest is not None
                    and got.data.get("digest") == api.state.manifest[2])
            if not same:
                checks.append(api.package_stage())
        effective = transport.effective_url(ep)
    data["plainHttp"] = effective.startswith("http://")
    data["checks"] = [c.to_dict() for c in checks]
    bad = next((c for c in checks if c.status is Status.FAIL), None)
    if bad is None:
        scheme = "plain HTTP after trying HTTPS" if data["plainHttp"] else "HTTPS"
        return Verdict(prof.version, True, None,
                       f"checked as that release fetches: over {scheme} ({how}), trusting "
                       f"{trust}", None, data)
    return _failure(prof, decision, bad, data)


def _failure(prof: Profile, decision: Decision, bad: Check, data: dict[str, Any]) -> Verdict:
    from ..crossplane.emulate import crossplane_fix, plain_http_refusal

    registry = decision.resolved.registry
    err_data = bad.data.get("error") or {}
    err = CrossfetchError(bad.detail, url=err_data.get("url"), host=err_data.get("host"),
                          cause=bad.cause)
    detail = f"{bad.label}: {bad.detail}"
    if bad.cause == "plain-http":
        detail = f"{plain_http_refusal(registry, prof)}."
    fix = crossplane_fix(err, prof, registry) or bad.fix
    return Verdict(prof.version, False, bad.cause, detail, fix, data)


def _loopback_reason(run: _Run, ep: Endpoint) -> str | None:
    """Why ``ep``'s host is the Crossplane pod itself, or ``None``."""
    from ..reference import is_ip, is_localhost_name, is_loopback

    host, _ = _host_port(ep)
    pod = "inside the Crossplane pod that is the pod itself, not the registry"
    if is_ip(host):
        return f"{host} is a loopback address: {pod}" if is_loopback(host) else None
    if is_localhost_name(host):
        return f"{host} is a *.localhost name, loopback by RFC 6761: {pod}"
    if is_localtest_name(host):
        return (f"{host} is under localtest.me, public DNS that always answers loopback "
                f"(127.0.0.1, and ::1 over IPv6): {pod} (crossplane#5798)")
    target = run.target
    if target is not None and target.host == host and target.addresses and all(
            is_loopback(a) for a in target.addresses):
        return (f"{host} resolves to {', '.join(target.addresses)} here; if cluster DNS "
                f"answers the same, {pod}")
    return None


def _loopback_fix(prof: Profile, decision: Decision, ep: Endpoint, *, plain_http: bool) -> str:
    from ..reference import is_ip
    from .net import loopback_fix

    host, _ = _host_port(ep)
    return loopback_fix(decision.resolved.registry, host, is_ip=is_ip(host),
                        plain_http=plain_http, target=prof)
