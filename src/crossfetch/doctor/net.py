"""The socket-level stages: ``dns``, ``tcp`` and ``tls``, each bounded by a timeout.

They use sockets directly so each layer's failure is seen on its own, and the TLS stage uses
the very :func:`~crossfetch.transport.tls.ssl_context` a pull uses, so a handshake that passes
here passes there.
"""

from __future__ import annotations

import contextlib
import functools
import socket
import ssl
from typing import TYPE_CHECKING

from ..errors import CrossfetchError
from ..policy.model import Endpoint, TLSMode
from ..reference import is_ip, is_localhost_name, is_loopback
from ..transport.tls import is_tls_answer, probe_first_bytes, ssl_context
from .report import Check, Status

if TYPE_CHECKING:
    from ..crossplane.profile import Profile
    from ..trust import CertInfo

# What only a failing stage needs (the fix writers, the certificate reader, the resolver thread)
# is imported where it is used: a healthy run does not pay for it.

MAX_ADDRESSES = 4
"""Addresses tried by the TCP stage (a name with dozens of records must not multiply time)."""


class Target:
    """Where one endpoint lives, and what the stages learned about it."""

    def __init__(self, registry: str, host: str, port: int, scheme: str) -> None:
        self.registry = registry
        """``host[:port]`` as in references (IPv6 in brackets)."""
        self.host = host
        self.port = port
        self.scheme = scheme
        self.addresses: list[str] = []
        self.connected: str | None = None
        self.chain: list[CertInfo] = []
        self.answers: dict[str, bytes] = {}
        """What each address answered a TLS ClientHello with (:meth:`first_bytes`)."""

    def __repr__(self) -> str:
        return f"Target({self.scheme}://{self.registry}, addresses={self.addresses})"

    def first_bytes(self, addr: str, timeout: float) -> bytes:
        """The first bytes ``addr`` answers a ClientHello with, probed once per run: the dns
        stage's question (plain HTTP?) and the tls stage's (TLS?) share one answer. An empty
        answer (a silent server) is not kept, so a later stage asks again with its timeout.
        Raises :class:`OSError` when the connection fails."""
        if not self.answers.get(addr):
            self.answers[addr] = probe_first_bytes(addr, self.port, timeout)
        return self.answers[addr]

    @classmethod
    def of(cls, ep: Endpoint) -> Target:
        scheme, netloc = ep.scheme, ep.host
        if netloc.startswith("["):
            host, _, tail = netloc[1:].partition("]")
            port_s = tail.removeprefix(":")
        else:
            host, _, port_s = netloc.partition(":")
        port = int(port_s) if port_s else (443 if scheme == "https" else 80)
        return cls(netloc, host, port, scheme)


@functools.lru_cache(maxsize=8)
def loopback_fix(registry: str, host: str, *, is_ip: bool, resolver_maps: bool = True,
                 plain_http: bool = False, target: Profile | None = None) -> str:
    """The text of :func:`crossfetch.fixes.causes.loopback`, written once per run: the dns stage
    and the Crossplane verdict give the same fix for the same registry."""
    from ..fixes import causes

    return causes.loopback(registry, host, is_ip=is_ip, resolver_maps=resolver_maps,
                           plain_http=plain_http, target=target).text()


def _resolve(host: str, port: int, timeout: float) -> list[str]:
    """getaddrinfo with a deadline. The C resolver cannot be interrupted, so it runs in a
    daemon thread that is abandoned (not joined) when it overruns."""
    import queue
    import threading

    out: queue.Queue[list[str] | BaseException] = queue.Queue(maxsize=1)

    def run() -> None:
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
            out.put(list(dict.fromkeys(str(i[4][0]) for i in infos)))
        except BaseException as e:  # handed to the caller
            out.put(e)

    threading.Thread(target=run, name=f"doctor-dns-{host}", daemon=True).start()
    try:
        result = out.get(timeout=timeout)
    except queue.Empty:
        raise TimeoutError(f"no answer from the resolver within {timeout:g}s") from None
    if isinstance(result, BaseException):
        raise result
    return result


_PRIVATE_SUFFIXES = ("local", "localhost", "internal", "lan", "home", "corp", "intranet",
                     "localdomain", "private", "test", "example", "invalid", "arpa", "svc",
                     "cluster")
"""Last labels of names that no public resolver answers (RFC 6761/6762/8375, common LAN use,
Kubernetes Service names)."""


def is_public_name(host: str) -> bool:
    """Whether ``host`` looks like a name on public DNS (``ghcr.io``, ``xpkg.crossplane.io``):
    dotted, not an address, and not under a private or special-use suffix."""
    h = host.lower().rstrip(".")
    if is_ip(h) or "." not in h:
        return False
    return h.rsplit(".", 1)[1] not in _PRIVATE_SUFFIXES


def _localtest_note(host: str) -> str:
    from .crossplane import is_localtest_name

    if not is_localtest_name(host):
        return ""
    return ("\n*.localtest.me is public DNS that always answers loopback (127.0.0.1, and ::1 "
            "over IPv6; idpbuilder's default domain): inside the Crossplane pod the name is the "
            "pod itself (crossplane#5798), whatever this machine resolves.")


def dns_stage(t: Target, timeout: float, *, in_cluster: bool,
              target: Profile | None = None, plain_http: bool = False) -> Check:
    """Resolve the host; warn when it lands on loopback (a pod would reach itself). A name
    that does not resolve here fails the stage: nothing after it could be checked from here.
    ``target`` is the Crossplane release fixes are written for; ``plain_http``, whether a
    loopback address was found speaking plain HTTP (its fix routes to a ClusterIP)."""
    loop_status = Status.FAIL if in_cluster else Status.WARN
    where = ("this runs inside a pod, so the request reaches this pod itself" if in_cluster else
             "fine on this machine, but inside a pod (Crossplane) it reaches the pod itself")
    if is_ip(t.host):
        t.addresses = [t.host]
        if is_loopback(t.host):
            data: dict[str, object] = {"addresses": t.addresses}
            if plain_http:
                data["plainHttp"] = True
            return Check("dns", loop_status, "loopback-address",
                         f"{t.host} is a loopback address: {where}",
                         loopback_fix(t.registry, t.host, is_ip=True, plain_http=plain_http,
                                      target=target), data=data)
        return Check("dns", Status.PASS, None, f"{t.host} is an IP address (no lookup)",
                     data={"addresses": t.addresses})
    try:
        t.addresses = _resolve(t.host, t.port, timeout)
    except (OSError, TimeoutError) as e:
        if is_localhost_name(t.host):
            # RFC 6761 makes *.localhost loopback, but this machine's resolver does not map
            # it: a pull from here fails at name resolution, so the chain stops here instead
            # of checking 127.0.0.1 in its place (tcp and tls there would prove nothing about
            # the pull).
            return Check("dns", Status.FAIL, "dns-failure",
                         f"{t.host} is reserved for loopback (RFC 6761), but this machine's "
                         f"resolver does not map it ({e}): a pull from here fails, so tcp, tls "
                         f"and the registry were not checked. Inside a pod (Crossplane) the "
                         "name is the pod itself, or does not resolve either.",
                         loopback_fix(t.registry, t.host, is_ip=False, resolver_maps=False,
                                      target=target),
                         data={"error": str(e), "resolverMaps": False})
        cause = "timeout" if isinstance(e, TimeoutError) else "dns-failure"
        public = is_public_name(t.host)
        hint = ("\nIt is a public name: from a cluster without access to it (air-gapped, "
                "egress-filtered), pull through a mirror that is reachable." if public else "")
        note = _localtest_note(t.host)
        if note:
            fix = loopback_fix(t.registry, t.host, is_ip=False, target=target)
        else:
            from ..fixes import causes

            fix = causes.dns_failure(t.host, t.registry, public=public, target=target).text()
        return Check("dns", Status.FAIL, cause,
                     f"cannot resolve {t.host}: {e}\nFrom a pod: cluster DNS must know this name, "
                     "and a NetworkPolicy denying egress to port 53 would look the same."
                     + hint + note, fix, data={"error": str(e), "publicName": public})
    loop = [a for a in t.addresses if is_loopback(a)]
    if loop or is_localhost_name(t.host):
        return Check("dns", loop_status, "loopback-address",
                     f"{t.host} resolves to {', '.join(t.addresses)} (loopback): {where}"
                     + _localtest_note(t.host),
                     loopback_fix(t.registry, t.host, is_ip=False, target=target),
                     data={"addresses": t.addresses})
    return Check("dns", Status.PASS, None, f"{t.host} resolves to {', '.join(t.addresses)}",
                 data={"addresses": t.addresses})


def _sockaddr(addr: str, port: int) -> str:
    return f"[{addr}]:{port}" if ":" in addr else f"{addr}:{port}"


def tcp_stage(t: Target, timeout: float) -> Check:
    """Open a TCP connection to each address in turn; the first that connects passes."""
    errors: dict[str, str] = {}
    kinds: list[str] = []
    for addr in t.addresses[:MAX_ADDRESSES]:
        try:
            with socket.create_connection((addr, t.port), timeout=timeout):
                t.connected = addr
                note = f" (after {len(errors)} failed)" if errors else ""
                return Check("tcp", Status.PASS, None,
                             f"connected to {_sockaddr(addr, t.port)}{note}",
                             data={"address": addr, "port": t.port, "errors": errors})
        except TimeoutError:
            kinds.append("timeout")
            errors[addr] = f"no answer within {timeout:g}s"
        except ConnectionRefusedError:
            kinds.append("connection-refused")
            errors[addr] = "connection refused"
        except OSError as e:
            kinds.append("connection-failed")
            errors[addr] = e.strerror or str(e)
    tried = ", ".join(f"{_sockaddr(a, t.port)}: {why}" for a, why in errors.items())
    if "connection-refused" in kinds:
        return Check("tcp", Status.FAIL, "connection-refused",
                     f"{tried}\nSomething answered with a reset: nothing listens on port {t.port} "
                     "there (wrong port, or the registry is down). A firewall REJECT rule looks "
                     "the same; a NetworkPolicy drops packets instead, so it is not the likely "
                     "cause.",
                     f"# check the port in the reference ({t.port}) and that the registry "
                     f"listens on it:\nss -ltnp | grep ':{t.port} '\n"
                     f"curl -v https://{t.registry}/v2/",
                     data={"port": t.port, "errors": errors})
    if "timeout" in kinds:
        return Check("tcp", Status.FAIL, "timeout",
                     f"{tried}\nPackets are dropped: a NetworkPolicy (from a pod) or a firewall "
                     "is likely, or the host is down.",
                     "# from a pod, check NetworkPolicies:\nkubectl get networkpolicy -A -o yaml "
                     f"> netpol.yaml && crossfetch doctor {t.registry}/<repo>:<tag> "
                     "--network-policies netpol.yaml\n# else check firewall rules for TCP port "
                     f"{t.port}; raise --timeout if the link is just slow",
                     data={"port": t.port, "errors": errors})
    return Check("tcp", Status.FAIL, "connection-failed",
                 f"{tried or 'no address to connect to'}\nNo route to the host: a firewall REJECT "
                 "rule or routing.",
                 "# check routes and firewall rules to the registry", data={"errors": errors})


def _verify_cause(e: ssl.SSLCertVerificationError) -> str:
    code = getattr(e, "verify_code", None)
    text = str(e)
    if code == 10 or "expired" in text:
        return "expired-certificate"
    if code == 62 or "mismatch" in text:
        return "hostname-mismatch"
    return "untrusted-certificate"


def _trust_sources(ep: Endpoint) -> str:
    extra = [str(p) for p in ep.tls.ca_files] + [f"CA from {ep.tls.source}"
                                                 for _ in ep.tls.ca_pem]
    return "system roots" + (" + " + ", ".join(extra) if extra else " only")


def tls_stage(t: Target, ep: Endpoint, timeout: float, target: Profile) -> Check:
    """Handshake as a pull would (same context); name the certificate problem precisely.
    ``target`` is the Crossplane release fixes are written for."""
    addr = t.connected or (t.addresses[0] if t.addresses else t.host)
    if t.scheme == "http":
        try:
            tls = is_tls_answer(t.first_bytes(addr, timeout))
        except OSError:
            tls = False
        if tls:
            from ..fixes import causes

            return Check("tls", Status.FAIL, "tls-expected",
                         f"{t.registry} speaks TLS, but policy says plain HTTP (tls.mode Disabled "
                         f"from {ep.tls.source})", causes.tls_expected(t.registry).text())
        return Check("tls", Status.PASS, None,
                     f"plain HTTP, as policy says (tls.mode Disabled from {ep.tls.source})",
                     data={"mode": "Disabled"})
    try:
        ctx = ssl_context(ep.tls)
    except CrossfetchError as e:
        return Check("tls", Status.FAIL, e.cause, e.message, e.fix)
    try:
        with socket.create_connection((addr, t.port), timeout=timeout) as raw:
            raw.settimeout(timeout)
            with ctx.wrap_socket(raw, server_hostname=t.host) as s:
                version = s.version()
                der = s.getpeercert(binary_form=True)
    except ssl.SSLCertVerificationError as e:
        return _cert_failure(t, ep, addr, timeout, e, target)
    except TimeoutError:
        return Check("tls", Status.FAIL, "timeout",
                     f"TCP connected to {_sockaddr(addr, t.port)}, but no TLS answer came "
                     f"within {timeout:g}s: the server does not speak first-byte TLS (a stuck "
                     "server, or a proxy holding the connection).",
                     "# check what listens there: curl -v https://" + t.registry + "/v2/ ; raise "
                     "--timeout if the link is slow")
    except (ssl.SSLError, OSError) as e:
        first = b""
        with contextlib.suppress(OSError):
            first = t.first_bytes(addr, timeout)
        if first.startswith(b"HTTP/"):
            if ep.tls.allow_http_fallback:
                return Check("tls", Status.PASS, None,
                             "the server speaks plain HTTP, and policy allows falling back to "
                             f"it for this endpoint ({ep.tls.source})", data={"fallback": True})
            return Check("tls", Status.FAIL, "plain-http",
                         f"{t.registry} answered the TLS handshake in plain HTTP "
                         f"(first bytes 'HTTP/'), and policy requires TLS "
                         f"({ep.tls.mode.value}, {ep.tls.source})",
                         _plain_http_fix(t.registry, target),
                         data={"firstBytes": first.hex()})
        return Check("tls", Status.FAIL, "tls-error",
                     f"TLS handshake with {_sockaddr(addr, t.port)} failed: {e}",
                     "# check that the port speaks TLS 1.2 or newer: openssl s_client -connect "
                     f"{_sockaddr(addr, t.port)} -servername {t.host}")
    from ..trust import CertInfo

    info = CertInfo.from_der(der) if der else None
    data = {"version": version, "mode": ep.tls.mode.value,
            "certificate": info.to_dict() if info else None}
    who = f"; certificate {info.subject}, issued by {info.issuer}, valid until " \
          f"{info.not_after:%Y-%m-%d}" if info else ""
    if ep.tls.mode is TLSMode.INSECURE:
        return Check("tls", Status.WARN, "verification-disabled",
                     f"{version} handshake done without verification (tls.mode Insecure from "
                     f"{ep.tls.source}){who}",
                     f"# verify instead: crossfetch trust {t.registry} shows the CA to pin",
                     data=data)
    return Check("tls", Status.PASS, None,
                 f"{version}, verified against {_trust_sources(ep)}{who}", data=data)


def _plain_http_fix(registry: str, target: Profile) -> str:
    """The plain-HTTP fix, naming go-containerregistry's rule of the targeted release."""
    from ..crossplane.profile import plain_http_allowed, plain_http_summary
    from ..fixes import causes

    speaks = plain_http_allowed(target, registry)
    return (f"# {plain_http_summary(target)}.\n"
            + causes.plain_http(registry, target=target, crossplane_speaks_http=speaks).text())


def _cert_failure(t: Target, ep: Endpoint, addr: str, timeout: float,
                  e: ssl.SSLCertVerificationError, target: Profile) -> Check:
    from ..fixes import causes
    from ..trust import fetch_chain

    cause = _verify_cause(e)
    try:
        t.chain = fetch_chain(addr, t.port, timeout=timeout,
                              server_name=None if is_ip(t.host) else t.host)
    except CrossfetchError:
        t.chain = []
    leaf = t.chain[0] if t.chain else None
    lines = [f"{e.verify_message or e} (verify code {e.verify_code}); trusted here: "
             f"{_trust_sources(ep)}"]
    for i, cert in enumerate(t.chain):
        lines.append(f"presented certificate {i}:")
        lines.append(cert.describe("  "))
    if cause == "untrusted-certificate":
        fix = causes.trust(t.registry, t.chain, target=target).text()
    elif cause == "hostname-mismatch":
        fix = causes.hostname(t.host, leaf).text()
    else:
        fix = causes.expired(leaf).text()
    return Check("tls", Status.FAIL, cause, "\n".join(lines), fix,
                 data={"verifyCode": e.verify_code, "verifyMessage": e.verify_message,
                       "chain": [c.to_dict() for c in t.chain]})
