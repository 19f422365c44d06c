"""``Doctor``: run the stages in order and say exactly where and why a pull fails.

Stages, by JSON name: ``reference``, ``policy``, ``dns``, ``tcp``, ``tls``, ``registry``,
``auth``, ``manifest`` (HEAD, then GET), ``package``, and ``networkpolicy`` when NetworkPolicies
are given. The first failure stops the chain; later stages are reported as ``skip``. The
exception is ``networkpolicy``: it is pure evaluation of what the Crossplane pod may reach, so
it runs whenever the reference and policy are known, since a network failure (typically from
inside the pod) is exactly when it is needed.

After the stages comes the second verdict, :attr:`Report.crossplane`: whether the targeted
Crossplane release, in its pod, would pull it (:mod:`crossfetch.doctor.crossplane`). Each check
is handed to ``on_check`` as it completes (the CLI prints it at once on a terminal); Ctrl-C
ends the run with the finished checks kept.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING

from ..errors import CrossfetchError
from ..reference import Reference, is_ip, is_loopback
from .api import ApiStages
from .net import Target, dns_stage, tcp_stage, tls_stage
from .report import DIRECT_ONLY, STAGES, Check, Report, Status, Verdict

if TYPE_CHECKING:
    from ..client import Client
    from ..crossplane.profile import Profile
    from ..policy.model import Decision, Endpoint
    from ..policy.resolver import Policy
    from .netpol import NetworkPolicy

DEFAULT_TIMEOUT = 5.0
"""Seconds allowed per network operation (resolve, connect, handshake, each HTTP read)."""
PROBE_TIMEOUT = 1.0
"""Seconds the dns stage waits to learn whether a loopback address speaks plain HTTP."""


class Doctor:
    """Diagnoses one reference at a time under a policy.

    >>> report = Doctor(Policy.load(["local.yaml"]), timeout=2).run("reg.local:8443/fn:v1")
    ... # doctest: +SKIP
    >>> report.ok, report.failure and report.failure.cause                   # doctest: +SKIP
    """

    def __init__(self, policy: Policy | None = None, *, timeout: float | None = None,
                 default_registry: str | None = None, platform: str | None = None,
                 network_policies: Sequence[NetworkPolicy] | None = None,
                 pod_namespace: str | None = None, pod_labels: Mapping[str, str] | None = None,
                 in_cluster: bool | None = None, via: str = "direct",
                 runtime_endpoint: str | None = None,
                 runtime_namespace: str | None = None,
                 crossplane: Profile | None = None,
                 crossplane_pull_secrets: Sequence[str] = ()) -> None:
        from ..client import Client
        from ..crossplane.emulate import emulation_policy
        from ..crossplane.profile import get
        from ..policy.resolver import Policy
        from ..transport.session import Timeouts, Transport

        self.timeout = DEFAULT_TIMEOUT if timeout is None else float(timeout)
        self.platform = platform
        self.network_policies = network_policies
        self.pod_namespace = pod_namespace
        self.pod_labels = pod_labels
        self.in_cluster = bool(os.environ.get("KUBERNETES_SERVICE_HOST")) \
            if in_cluster is None else in_cluster
        # Retries off: a diagnosis reports the first failure, it does not hide it.
        transport = Transport(timeouts=Timeouts(connect=self.timeout, read=self.timeout),
                              retries=0)
        self.via = via
        policy = policy or Policy()
        self.profile: Profile = crossplane or get()
        """The Crossplane release of the second verdict (and of every fix)."""
        self.crossplane_policy = emulation_policy(policy, self.profile,
                                                  pull_secret_files=crossplane_pull_secrets)
        self.client: Client = Client(policy, transport=transport,
                                     default_registry=default_registry, platform=platform,
                                     via=via, runtime_endpoint=runtime_endpoint,
                                     runtime_namespace=runtime_namespace,
                                     timeout=self.timeout)

    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> Doctor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- running ---

    def run(self, ref: str, on_check: Callable[[Check], None] | None = None) -> Report:
        """Run every stage for ``ref`` and return the report (never raises for a diagnosis).

        ``on_check`` gets each check as it completes, in run order. Ctrl-C stops the run and
        returns what finished, with ``interrupted`` set.
        """
        report = Report(ref)
        start = time.perf_counter()
        run = _Run(self, report, on_check)
        try:
            run.go(ref)
            report.crossplane = run.crossplane_verdict(ref)
        except KeyboardInterrupt:
            report.interrupted = True
        finally:
            run.fill_skipped()
            report.seconds = time.perf_counter() - start
        return report


class _Run:
    """State of one diagnosis."""

    def __init__(self, doctor: Doctor, report: Report,
                 on_check: Callable[[Check], None] | None = None) -> None:
        self.d = doctor
        self.report = report
        self.on_check = on_check
        self.ref: Reference | None = None
        self.decision: Decision | None = None
        self.target: Target | None = None
        self.endpoint: Endpoint | None = None

    def commit(self, checks: list[Check]) -> None:
        """Record finished checks and hand them to ``on_check``."""
        self.report.checks += checks
        if self.on_check is not None:
            for check in checks:
                self.on_check(check)

    def crossplane_verdict(self, text: str) -> Verdict:
        """The second verdict (never raises)."""
        from .crossplane import verdict

        try:
            return verdict(self.d, self, text)
        except Exception as e:  # a diagnosis must report, not crash
            return Verdict(self.d.profile.version, False, "unexpected-error",
                           f"{type(e).__name__}: {e}", "# please report this as a crossfetch bug")

    def run(self, name: str, fn: Callable[[], Check | list[Check]]) -> list[Check]:
        """Run one stage (or a pair, for HEAD and GET) and time it; nothing is recorded."""
        start = time.perf_counter()
        try:
            result = fn()
        except CrossfetchError as e:
            result = Check(name, Status.FAIL, e.cause, e.message, e.fix,
                           data={"error": e.to_dict()})
        except Exception as e:  # a diagnosis must report, not crash
            result = Check(name, Status.FAIL, "unexpected-error",
                           f"{type(e).__name__}: {e}", "# please report this as a crossfetch bug")
        checks = result if isinstance(result, list) else [result]
        for check in checks:
            if not check.seconds:
                check.seconds = time.perf_counter() - start
        return checks

    def add(self, name: str, fn: Callable[[], Check | list[Check]]) -> bool:
        """Run one stage and record it; False when it failed."""
        checks = self.run(name, fn)
        self.commit(checks)
        return not any(c.status is Status.FAIL for c in checks)

    def go(self, ref: str) -> None:
        if not (self.add("reference", lambda: self._reference(ref))
                and self.add("policy", self._policy)):
            return
        assert self.decision is not None
        if self.d.via == "cri":
            from .runtime import cri_package_stage, runtime_stage

            client, decision = self.d.client, self.decision
            if self.add("runtime", lambda: runtime_stage(client, decision)):
                self.add("package", lambda: cri_package_stage(client, decision))
            return
        try:
            chain_ok = self._network()
            if chain_ok:
                self._api()
        finally:
            if self.d.network_policies is not None:
                self.add("networkpolicy", self._networkpolicy)

    def fill_skipped(self) -> None:
        done = {c.name for c in self.report.checks}
        for name in STAGES:
            if name == "networkpolicy" and self.d.network_policies is None:
                continue
            if name == "runtime" and self.d.via != "cri":
                continue
            if name in done:
                continue
            if self.d.via == "cri" and name in DIRECT_ONLY:
                self.report.checks.append(Check(
                    name, Status.SKIP, detail="not used with --via cri: the node's runtime "
                    "reaches the registry under its own hosts.toml"))
                continue
            methods: Sequence[str | None] = ("HEAD", "GET") if name == "manifest" else (None,)
            for m in methods:
                self.report.checks.append(Check(
                    name, Status.SKIP, method=m,
                    detail="not run: interrupted (Ctrl-C)" if self.report.interrupted
                    else "skipped after an earlier failure"))
        order = {n: i for i, n in enumerate(STAGES)}
        self.report.checks.sort(key=lambda c: order.get(c.name, len(order)))

    # --- stages ---

    def _reference(self, text: str) -> Check:
        ref = Reference.parse(text, default_registry=self.d.client.default_registry)
        self.ref = ref
        data = {"registry": ref.registry, "repository": ref.repository, "tag": ref.tag,
                "digest": ref.digest}
        first = text.strip().split("/", 1)[0]
        if self.d.client.default_registry and not text.strip().startswith(ref.registry + "/"):
            return Check("reference", Status.WARN, "not-fully-qualified",
                         f"{text} names no registry; --default-registry made it {ref}, but "
                         "Crossplane v2 rejects such a name",
                         f"# write the full name in the Crossplane manifest:\npackage: {ref}",
                         data=data)
        if "." not in ref.host and not is_ip(ref.host) and ":" not in ref.host:
            return Check("reference", Status.WARN, "not-fully-qualified",
                         f"registry host {first!r} has no dot: crossfetch pulls it, but "
                         "Crossplane v2 rejects such a package name",
                         "# use an address or a name with a dot for the same registry, e.g.:\n"
                         f"package: {str(ref).replace(ref.host, '127.0.0.1', 1)}", data=data)
        return Check("reference", Status.PASS, None,
                     f"registry {ref.registry}, repository {ref.repository}, "
                     + (f"digest {ref.digest}" if ref.digest else f"tag {ref.tag}"), data=data)

    def _policy(self) -> Check:
        assert self.ref is not None
        decision = self.d.client.decide(self.ref)
        self.decision = decision
        eps = [f"{e.role} {e.url} (tls.mode {e.tls.mode.value} from {e.tls.source})"
               for e in decision.endpoints]
        lines = [f"{'; '.join(eps)}"]
        if decision.rewrite_source is not None:
            lines.insert(0, f"rewritten to {decision.resolved} by {decision.rewrite_source}")
        data = {"resolved": str(decision.resolved),
                "endpoints": [{"url": e.url, "role": e.role, "mode": e.tls.mode.value,
                               "source": str(e.tls.source)} for e in decision.endpoints],
                "rewrite": str(decision.rewrite_source) if decision.rewrite_source else None}
        return Check("policy", Status.PASS, None, "\n".join(lines), data=data)

    def _network(self) -> bool:
        """dns, tcp, tls, registry on each endpoint in try order until one passes all four;
        a mirror's failure is noted, the upstream's is the verdict (as a pull falls through).
        The last endpoint's checks are committed as each completes (printed live)."""
        assert self.decision is not None
        endpoints = list(self.decision.endpoints)
        skipped: list[dict[str, str | None]] = []
        for i, ep in enumerate(endpoints):
            last = i == len(endpoints) - 1
            checks = self._endpoint_chain(ep, skipped if last else None)
            failed = next((c for c in checks if c.status is Status.FAIL), None)
            if failed is None or last:
                if not last:
                    self.commit(checks)
                if failed is None:
                    self.endpoint = ep
                return failed is None
            skipped.append({"url": ep.url, "stage": failed.name, "cause": failed.cause})
        return False

    def _endpoint_chain(self, ep: Endpoint,
                        live: list[dict[str, str | None]] | None = None) -> list[Check]:
        """The four stages on ``ep``. With ``live`` (the endpoints skipped before this, the
        last one), each check is committed as it completes, the first noting the skipped."""
        target = Target.of(ep)
        self.target = target
        timeout = self.d.timeout
        api = ApiStages(self.d.client, self.decision, ep, timeout,  # type: ignore[arg-type]
                        self.d.platform)
        api.target = self.d.profile
        self._api_stages = api
        prof = self.d.profile
        stages: list[tuple[str, Callable[[], Check]]] = [
            ("dns", lambda: self._dns(target, timeout)),
            ("tcp", lambda: tcp_stage(target, timeout)),
            ("tls", lambda: tls_stage(target, ep, timeout, prof)),
            ("registry", api.registry_stage),
        ]
        out: list[Check] = []
        for name, fn in stages:
            check = self.run(name, fn)[0]
            ok = check.status is not Status.FAIL
            if not out and live:
                check.data["skippedEndpoints"] = live
                check.detail += "\n" + "; ".join(
                    f"{s['url']} failed at {s['stage']}: {s['cause']}" for s in live)
            out.append(check)
            if live is not None:
                self.commit([check])
            if not ok:
                break
        return out

    def _dns(self, target: Target, timeout: float) -> Check:
        """The dns stage. A loopback address's fix depends on whether the registry speaks
        plain HTTP (a Service DNS name would lose go-containerregistry's HTTP fallback on
        recent releases): ask the port once, so the fix is right when first shown."""
        # Only where it changes the fix (go-containerregistry without *.local), and briefly:
        # a server that holds the connection silent is the tls stage's to report.
        plain_http = False
        if is_loopback(target.host) and not self.d.profile.plain_http_local_dot_local:
            from ..transport.tls import is_http_answer

            try:
                plain_http = is_http_answer(
                    target.first_bytes(target.host, min(timeout, PROBE_TIMEOUT)))
            except OSError:
                plain_http = False
        return dns_stage(target, timeout, in_cluster=self.d.in_cluster, target=self.d.profile,
                         plain_http=plain_http)

    def _api(self) -> None:
        api = self._api_stages
        if not self.add("auth", api.auth_stage):
            return
        if not self.add("manifest", api.manifest_stages):
            return
        self.add("package", api.package_stage)

    def _networkpolicy(self) -> Check:
        from .netpol import DEFAULT_NAMESPACE, DEFAULT_POD_LABELS, evaluate_dns, evaluate_egress

        assert self.decision is not None and self.d.network_policies is not None
        ep = self.endpoint or self.decision.endpoints[-1]
        target = self.target if self.target and self.endpoint in (None, ep) else Target.of(ep)
        ns = self.d.pod_namespace or DEFAULT_NAMESPACE
        labels = self.d.pod_labels if self.d.pod_labels is not None else DEFAULT_POD_LABELS
        addrs = [a for a in (target.addresses or []) if a]
        egress = evaluate_egress(self.d.network_policies, namespace=ns, pod_labels=labels,
                                 addresses=addrs, port=target.port)
        verdicts = {"registry": egress}
        if not is_ip(target.host):
            verdicts["dns"] = evaluate_dns(self.d.network_policies, namespace=ns,
                                           pod_labels=labels)
        data = {k: v.to_dict() for k, v in verdicts.items()}
        detail = "\n".join(v.reason for v in verdicts.values())
        fixes = "\n".join(v.fix for v in verdicts.values() if v.fix) or None
        states = [v.verdict.value for v in verdicts.values()]
        if "denied" in states:
            which = " and ".join(k for k, v in verdicts.items() if v.verdict.value == "denied")
            blockers = sorted({p for v in verdicts.values() if v.verdict.value == "denied"
                               for p in v.isolating})
            return Check("networkpolicy", Status.FAIL, "egress-blocked",
                         f"egress to {which} is blocked by {', '.join(blockers)}\n{detail}",
                         fixes, data=data)
        if "undecidable" in states:
            return Check("networkpolicy", Status.WARN, "egress-undecidable", detail, fixes,
                         data=data)
        if not addrs:
            detail += "\n(the registry's address is unknown: only rules matching any address " \
                      "could decide)"
        return Check("networkpolicy", Status.PASS, None, detail, data=data)
