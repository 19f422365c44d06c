"""``crossfetch trust HOST[:PORT]``: read the presented chain, pin it, write trust config."""

from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .common import (
    add_output_option,
    confirm,
    echo,
    emit_json,
    handle_errors,
    new_parser,
    seconds,
)


def _interactive() -> bool:
    """A person can answer: stdin and stderr (where the question goes) are terminals."""
    return sys.stdin.isatty() and sys.stderr.isatty()


def _say(text: str, to_stderr: bool) -> None:
    echo(text, err=to_stderr)


@handle_errors
def run_trust(ns: argparse.Namespace) -> None:
    target, fingerprint, secret_file = ns.target, ns.fingerprint, ns.secret_file
    emits: tuple[str, ...] = tuple(ns.emits or ["pem"])
    out, cm_name, namespace, key = ns.out, ns.cm_name, ns.namespace, ns.key
    server_name, timeout, assume_yes = ns.server_name, ns.timeout, ns.assume_yes
    output_format = ns.output_format
    from ..errors import PolicyRefused, UsageError
    from ..trust import (
        FingerprintRequired,
        TrustNames,
        decide_trust,
        emit_text,
        fetch_chain,
        load_secret_certs,
        normalize_fingerprint,
        split_host_port,
        verifies_with,
        write_certs_d,
        write_hosts_dir,
    )

    host, port = split_host_port(target)
    registry = target.split("/", 1)[0]
    pin = normalize_fingerprint(fingerprint) if fingerprint else None
    kinds = list(dict.fromkeys(emits))
    if len(kinds) > 1 and not set(kinds) <= {"configmap", "imageconfig"}:
        raise UsageError("only configmap and imageconfig can be emitted together",
                         fix="run trust once per --emit kind")
    if "certs-d" in kinds and not out:
        raise UsageError("--emit certs-d writes a directory: give -o DIR",
                         fix="e.g. -o /etc/docker/certs.d")
    text_to_stderr = output_format == "json" or out is None
    if secret_file:
        chain, secret_key = load_secret_certs(secret_file)
        origin = f"Secret {secret_file} key {secret_key}"
    else:
        chain = fetch_chain(host, port, timeout=timeout, server_name=server_name)
        origin = f"{registry} (TLS handshake)"
    if output_format != "json":
        _say(f"{len(chain)} certificate(s) from {origin}:", text_to_stderr)
        for i, cert in enumerate(chain):
            _say(f"[{i}]\n{cert.describe('  ')}", text_to_stderr)
    # The rules are the library's (crossfetch.trust.decide_trust): one anchor rule for both
    # sources, a pin must match, an unpinned network certificate needs a person's yes.
    try:
        anchor, ask = decide_trust(
            chain, registry=registry, host=host, origin=origin, pin=pin,
            from_secret=bool(secret_file),
            can_ask=(assume_yes or _interactive()) and output_format != "json")
    except FingerprintRequired as e:
        argv = ["crossfetch", "trust", target, "--fingerprint", e.anchor.fingerprint]
        argv += [a for k in kinds if k != "pem" for a in ("--emit", k)]
        argv += ["-o", out] if out else []
        cmd = shlex.join(argv)
        if output_format == "json":
            emit_json({"ok": False, "cause": e.cause, "host": registry,
                       "chain": [c.to_dict() for c in chain],
                       "anchor": e.anchor.to_dict(), "command": cmd})
        else:
            echo("refusing to save an unpinned certificate without a terminal to "
                 "confirm it. After checking the fingerprint, run:", err=True)
            echo(f"  {cmd}", err=True)
        sys.exit(e.exit_code)
    if ask and not assume_yes and not confirm(
            f"Trust {anchor.subject} (sha256 {anchor.fingerprint.removeprefix('sha256:')}) "
            f"for {registry}?"):
        raise PolicyRefused("not trusted: answered no", cause="not-confirmed")
    names = TrustNames(registry, cm_name or "", namespace, key)
    written: list[Path] = []
    verified = None
    if not secret_file:
        verified = verifies_with(host, port, anchor, timeout=timeout, server_name=server_name)
    if "certs-d" in kinds:
        assert out is not None
        written = write_certs_d(out, anchor, registry)
    elif kinds == ["hosts-toml"] and out and Path(out).is_dir():
        written = write_hosts_dir(out, anchor, names)
    else:
        text = "---\n".join(emit_text(k, anchor, names) for k in kinds)
        if out:
            Path(out).write_text(text, encoding="utf-8")
            written = [Path(out)]
        elif output_format != "json":
            echo(text, nl=False)
    if output_format == "json":
        result: dict[str, Any] = {"ok": True, "host": registry,
                                  "chain": [c.to_dict() for c in chain],
                                  "anchor": anchor.to_dict(), "emitted": kinds,
                                  "written": [str(p) for p in written],
                                  "verified": verified is None if not secret_file else None}
        if not written:
            result["text"] = "---\n".join(emit_text(k, anchor, names) for k in kinds
                                          if k != "certs-d")
        emit_json(result)
        return
    _say(f"anchor: {anchor.subject} ({anchor.fingerprint})", True)
    if verified is not None:
        _say(f"warning: a Strict handshake with only this anchor still fails: {verified}", True)
    elif not secret_file:
        _say(f"checked: a Strict handshake with {registry} verifies with this anchor", True)
    for p in written:
        _say(f"wrote {p}", True)


def trust_parser(prog: str) -> argparse.ArgumentParser:
    p = new_parser(prog, args="HOST[:PORT]", doc="""\
Read HOST[:PORT]'s certificate chain, show every certificate (subject, issuer, validity, SANs,
SHA-256), and save the trust anchor: the root if the server sent it, else its self-signed
certificate.

The anchor is saved only when --fingerprint matches it, or after a yes on a terminal.
Otherwise nothing is written and the command to run (with the fingerprint) is printed,
exit code 2.

Examples:
  crossfetch trust gitea.cnoe.localtest.me:8443
  crossfetch trust reg.local:8443 --fingerprint sha256:3f1c... --emit configmap \\
      --emit imageconfig -o trust.yaml
  crossfetch trust reg.local:8443 --from-secret idpbuilder-cert.yaml --emit helm-values
  crossfetch trust reg.local:8443 --fingerprint sha256:3f1c... --emit certs-d \\
      -o /etc/docker/certs.d
""")
    p.add_argument("target", metavar="HOST[:PORT]")
    p.add_argument("--fingerprint", metavar="sha256:HEX",
                   help="The SHA-256 fingerprint the trust anchor must have (as printed here, "
                   "or by `openssl x509 -noout -fingerprint -sha256`).")
    p.add_argument("--from-secret", dest="secret_file", metavar="FILE",
                   help="Take the CA from a Secret manifest (keys ca.crt or tls.crt), e.g. "
                   "idpbuilder's: kubectl get secret -n default idpbuilder-cert -o yaml. No "
                   "connection is made.")
    p.add_argument("--emit", dest="emits", action="append",
                   choices=["pem", "configmap", "helm-values", "imageconfig", "hosts-toml",
                            "certs-d"],
                   help="What to write for the anchor (default pem). Repeat configmap/"
                   "imageconfig to get both in one multi-document YAML.")
    p.add_argument("-o", "--out", metavar="PATH",
                   help="Write here instead of stdout (certs-d: a directory; hosts-toml: a "
                   "file, or an existing directory to get <dir>/<host:port>/hosts.toml and "
                   "ca.crt).")
    p.add_argument("--name", dest="cm_name", help="ConfigMap name (default derived from the "
                   "host).")
    p.add_argument("--namespace", default="crossplane-system",
                   help="Namespace of the ConfigMap (Crossplane's).")
    p.add_argument("--key", default="ca.crt", help="ConfigMap key.")
    p.add_argument("--server-name", help="SNI name to send (default HOST).")
    p.add_argument("--timeout", type=seconds, default=5.0, metavar="SECONDS")
    p.add_argument("--yes", dest="assume_yes", action="store_true", help=argparse.SUPPRESS)
    add_output_option(p)
    p.set_defaults(func=run_trust)
    return p


PARSERS: dict[str, Callable[[str], argparse.ArgumentParser]] = {"trust": trust_parser}
