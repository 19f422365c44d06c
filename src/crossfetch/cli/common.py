"""Options, policy building, output and error rendering shared by every command.

The CLI is built on :mod:`argparse`: importing click costs ~13 ms more than argparse, a tenth
of a whole package pull (docs/benchmarks.md), and start-up is part of what users wait for.
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

from ..errors import CrossfetchError

if TYPE_CHECKING:
    from ..client import Client, Progress
    from ..crossplane.profile import Profile
    from ..policy.resolver import KeychainProvider, Policy

F = TypeVar("F", bound=Callable[..., Any])

REF_HELP = "REF is host[:port]/path[:tag][@sha256:...]; the registry host is required."


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the examples in descriptions as written; shows defaults where they help."""

    def __init__(self, prog: str) -> None:
        super().__init__(prog, max_help_position=32, width=min(100, _width()))

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if action.default not in (None, False, [], (), argparse.SUPPRESS) and \
                "%(default)" not in text and action.option_strings:
            text += " (default: %(default)s)"
        return text


def _width() -> int:
    """``shutil.get_terminal_size((100, 24)).columns`` without importing shutil (and with it
    bz2 and lzma, ~3 ms of start-up): ``$COLUMNS``, else stdout's terminal, else 100."""
    try:
        columns = int(os.environ["COLUMNS"])
    except (KeyError, ValueError):
        columns = 0
    if columns <= 0:
        try:
            columns = os.get_terminal_size(sys.__stdout__.fileno()).columns  # type: ignore[union-attr]
        except (AttributeError, ValueError, OSError):
            columns = 0
    return columns if columns > 0 else 100


class CliParser(argparse.ArgumentParser):
    """An argparse parser whose errors are crossfetch usage errors, so that they print as one
    ``error:`` line with a fix (or one JSON object under ``-O json``) and exit 2."""

    def error(self, message: str) -> NoReturn:
        from ..errors import UsageError

        raise UsageError(f"{self.prog}: {message}", cause="bad-usage",
                         fix=f"see `{self.prog} --help`")


def new_parser(prog: str, doc: str, *, epilog: str | None = None,
               args: str = "REF") -> argparse.ArgumentParser:
    """A command's parser; ``doc`` (description and examples) is shown as written."""
    return CliParser(prog=prog, description=doc.strip(), epilog=epilog,
                     usage=f"%(prog)s {args} [options]", formatter_class=HelpFormatter,
                     allow_abbrev=False)


def echo(text: str = "", *, err: bool = False, nl: bool = True) -> None:
    stream = sys.stderr if err else sys.stdout
    stream.write(text + ("\n" if nl else ""))
    stream.flush()


def confirm(question: str) -> bool:
    """Ask on stderr, read the answer from stdin; anything but y/yes is no."""
    sys.stderr.write(f"{question} [y/N]: ")
    sys.stderr.flush()
    answer = sys.stdin.readline().strip().lower()
    return answer in ("y", "yes")


def bounded_int(low: int, high: int) -> Callable[[str], int]:
    """argparse type of a whole-number option in ``low..high`` (else a usage error, exit 2)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{value} is not in {low}..{high}")
        return value

    return parse


MAX_SECONDS = 86400.0


def seconds(text: str) -> float:
    """argparse type of every duration option: a finite number of seconds above 0, at most a
    day (``-1``, ``0``, ``nan`` and ``inf`` are usage errors, exit 2)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not math.isfinite(value) or not 0 < value <= MAX_SECONDS:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a duration: give seconds above 0 and at most {MAX_SECONDS:g}")
    return value


def stdout_is_broken() -> bool:
    """True when stdout is a pipe whose reader has gone (``crossfetch ... | head -1``)."""
    import select

    try:
        fd = sys.__stdout__.fileno() if sys.__stdout__ else 1
        poller = select.poll()
        poller.register(fd, 0)  # POLLERR is always reported: a widowed pipe's write end
        return any(ev & select.POLLERR for _, ev in poller.poll(0))
    except (OSError, ValueError, AttributeError):
        return False


def rate(text: str) -> float:
    """argparse type of ``--min-rate``: a finite number of bytes/s, 0 or more."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of bytes/s") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a rate: give bytes/s, 0 or more")
    return value


def add_output_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--output", "-O", dest="output_format", choices=["text", "json"],
                   default="text", help="Human text, or one JSON object for scripts.")


def add_policy_options(p: argparse.ArgumentParser, *, network: bool = True,
                       timeout_help: str | None = None, deadlines: bool = True,
                       verbose: bool = True) -> None:
    """Options that decide where to go and whom to trust. ``network=False`` leaves out the
    options of commands that send nothing (``--timeout``, ``--retries``); ``timeout_help``
    replaces the ``--timeout`` text for a command with its own default; ``deadlines=False``
    leaves out ``--deadline``/``--min-rate``/``--rate-window`` (a command with its own
    bounds); ``verbose=False`` leaves out ``-v`` (a command whose own ``-v`` means more)."""
    g = p.add_argument_group("policy")
    g.add_argument("--config", "-c", dest="config_files", action="append", default=[],
                   metavar="FILE",
                   help="Multi-document YAML with ImageConfig, ConfigMap and Secret objects, as "
                   "you would kubectl apply them. Repeatable.")
    g.add_argument("--ca-bundle", metavar="FILE",
                   help="Extra CA certificates (PEM), added to the system roots for every "
                   "registry. Env: CA_BUNDLE_PATH (Crossplane's name).")
    g.add_argument("--default-registry", metavar="HOST",
                   help="Registry for names without one (Crossplane v2 refuses such names).")
    if network:
        g.add_argument("--timeout", type=seconds, default=None, metavar="SECONDS",
                       help=timeout_help or "Connect timeout, and the longest wait for any one "
                       "read (default 10 s connect, 60 s read).")
    if network and deadlines:
        g.add_argument("--deadline", type=seconds, default=None, metavar="SECONDS",
                       help="The most one request may take in all: connecting, the answer and "
                       "its body (a blob: until its body starts). A server that accepts and "
                       "then stalls or drips bytes is cut off with a 'stalled' error "
                       "(default 30).")
        g.add_argument("--min-rate", type=rate, default=None, metavar="BYTES_PER_S",
                       help="The slowest a blob body may arrive, averaged over --rate-window; "
                       "slower is a 'stalled' error (default 1024; 0: no floor). E.g. "
                       "--min-rate 100 --rate-window 120 for a very slow link.")
        g.add_argument("--rate-window", type=seconds, default=None, metavar="SECONDS",
                       help="The window --min-rate is measured over (default 30).")
    if network:
        g.add_argument("--retries", type=bounded_int(0, 10), default=3, metavar="N",
                       help="Retries (0..10) on connection errors, 5xx and 429 (Retry-After "
                       "honoured up to 30 s), with backoff; a blob that breaks off is resumed "
                       "where it stopped as often. Only idempotent requests are resent.")
        if verbose:
            g.add_argument("--verbose", "-v", dest="trace", action="store_true",
                           help="Show each HTTP request on stderr: method, URL, status and "
                           "time (never a header value or a credential).")
    g.add_argument("--allow-plain-http-credentials", action="store_true",
                   help="Allow sending credentials to registries that policy allows plain "
                   "HTTP. Off by default: credentials in clear text can be stolen.")
    n = p.add_argument_group("node files (containerd, Docker, containers)")
    n.add_argument("--hosts-dir", dest="hosts_dirs", action="append", default=[], metavar="DIR",
                   help="containerd certs.d directory of <host>/hosts.toml files. Repeatable.")
    n.add_argument("--certs-dir", dest="certs_dirs", action="append", default=[], metavar="DIR",
                   help="Docker/containers certs.d directory (<host>/*.crt, client.cert, "
                   "client.key). Repeatable.")
    n.add_argument("--registries-conf", metavar="FILE",
                   help="containers registries.conf (v2): mirrors, insecure, blocked.")
    n.add_argument("--daemon-json", metavar="FILE",
                   help="Docker daemon.json: insecure-registries (host:port or CIDR).")
    n.add_argument("--no-node-config", action="store_true",
                   help="Do not read the node's standard files (/etc/containerd/certs.d, "
                   "/etc/docker/certs.d, /etc/containers/registries.conf, ...).")
    c = p.add_argument_group("credentials")
    c.add_argument("--pull-secret", dest="pull_secrets", action="append", default=[],
                   metavar="FILE",
                   help="A kubernetes.io/dockerconfigjson Secret (YAML) or a bare "
                   ".dockerconfigjson file. Repeatable.")
    c.add_argument("--username", "-u", metavar="USER",
                   help="User name for the registry (with --password-stdin).")
    c.add_argument("--password-stdin", action="store_true",
                   help="Read the password or token from standard input.")


def add_runtime_options(p: argparse.ArgumentParser, what: str) -> None:
    g = p.add_argument_group("the node path")
    g.add_argument("--via", choices=["direct", "cri"], default="direct", help=what)
    g.add_argument("--runtime-endpoint", metavar="URL",
                   default="unix:///run/containerd/containerd.sock",
                   help="The runtime's CRI socket, for --via cri.")
    g.add_argument("--runtime-namespace", default="k8s.io", metavar="NS",
                   help="containerd namespace to read images from (kubelet uses k8s.io).")


def add_fetch_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("fetching")
    g.add_argument("--platform", metavar="OS/ARCH",
                   help="Platform to pick from a multi-platform index (default linux/amd64).")
    g.add_argument("--cache-dir", metavar="DIR",
                   help="Package cache (default $XDG_CACHE_HOME/crossfetch), bounded by "
                   "CROSSFETCH_CACHE_MAX_SIZE (default 5GiB; see crossfetch cache). If it is "
                   "not writable, a private temporary cache is used, with a warning.")
    g.add_argument("--no-cache", action="store_true",
                   help="Use a private temporary cache, removed on exit (read-only file "
                   "systems, one-off Jobs).")
    g.add_argument("--pull-policy", choices=["IfNotPresent", "Always", "Never"],
                   default=None,
                   help="As Crossplane's packagePullPolicy: use the cache by digest, always "
                   "fetch, or never touch the network for the package (default: IfNotPresent; "
                   "Always with --as-crossplane, as a fresh Crossplane has nothing cached).")
    add_runtime_options(p, "direct: crossfetch talks to the registry. cri: the node's container "
                        "runtime pulls (the kubelet path, with the node's hosts.toml and our "
                        "credentials as CRI AuthConfig) and crossfetch reads its content store.")


def add_crossplane_options(p: argparse.ArgumentParser, *, emulate: bool = False) -> None:
    """``--crossplane-version`` (and, with ``emulate``, ``--as-crossplane``)."""
    from ..crossplane.profile import DEFAULT_VERSION, SUPPORTED

    g = p.add_argument_group("Crossplane")
    g.add_argument("--crossplane-version", metavar="vX.Y.Z", default=DEFAULT_VERSION,
                   help="The Crossplane release to answer for (what it has, how it fetches; "
                   f"fixes name only what it has): {', '.join(SUPPORTED)}, any patch release of "
                   "those minors, or a minor such as v2.3.")
    if emulate:
        g.add_argument("--as-crossplane", action="store_true",
                       help="Fetch exactly as that Crossplane release would: HTTPS with the "
                       "system roots plus --ca-bundle, plain HTTP only where its "
                       "go-containerregistry allows it, ImageConfig rewriteImage/pullSecretRef "
                       "where it has them, credentials only from pull secrets; no tls block, "
                       "client certificates or node files.")


def crossplane_profile(params: dict[str, Any]) -> Profile | None:
    """The profile ``--as-crossplane`` emulates (``None`` without the flag); checks the
    version even without it, so a typo fails before any request."""
    from ..crossplane.profile import get

    version = params.get("crossplane_version")
    prof = get(version) if version is not None else None
    return prof if params.get("as_crossplane") else None


def default_registry(params: dict[str, Any]) -> str | None:
    """``--default-registry``, or under ``--as-crossplane`` what that release uses."""
    prof = crossplane_profile(params)
    if prof is None:
        return params.get("default_registry")
    from ..crossplane.emulate import default_registry as crossplane_default

    return crossplane_default(prof, params.get("default_registry"))


def _ca_bundle_env() -> dict[str, str]:
    """The one variable the policy reads from the environment: ``CA_BUNDLE_PATH``, Crossplane's
    name for its CA bundle (``--ca-bundle`` wins over it); errors then name the one used."""
    value = os.environ.get("CA_BUNDLE_PATH")
    return {"CA_BUNDLE_PATH": value} if value else {}


def _load_policy(params: dict[str, Any]) -> Policy:
    """The ImageConfigs, ConfigMaps and Secrets of ``--config`` plus the CA bundle, with their
    warnings printed: what both decision modes start from."""
    from ..policy.resolver import Policy

    policy = Policy.load(params.get("config_files") or (), ca_bundle=params.get("ca_bundle"),
                         env=_ca_bundle_env(),
                         allow_plain_http_credentials=bool(
                             params.get("allow_plain_http_credentials")))
    report_warnings(policy.objects.warnings)
    return policy


def build_policy(params: dict[str, Any]) -> Policy:
    prof = crossplane_profile(params)
    if prof is not None:
        return _crossplane_policy(params, prof)
    return _build_policy(params)


def _crossplane_policy(params: dict[str, Any], prof: Profile) -> Policy:
    from ..crossplane.emulate import emulation_policy
    from ..errors import UsageError

    if params.get("username") or params.get("password_stdin"):
        raise UsageError("--as-crossplane takes credentials only from pull secrets, as "
                         "Crossplane does: --username/--password-stdin have no Crossplane "
                         "equivalent",
                         fix="put the credentials in a kubernetes.io/dockerconfigjson Secret "
                         "and pass it with --pull-secret (the package's packagePullSecrets) or "
                         "name it in an ImageConfig pullSecretRef")
    policy = _load_policy(params)
    return emulation_policy(policy, prof, pull_secret_files=params.get("pull_secrets") or ())


def _build_policy(params: dict[str, Any]) -> Policy:
    from ..errors import UsageError
    from ..policy.node import load_node_policy

    policy = _load_policy(params)
    policy.node = load_node_policy(
        hosts_dirs=params.get("hosts_dirs") or (),
        certs_dirs=params.get("certs_dirs") or (),
        registries_conf=params.get("registries_conf"),
        daemon_json=params.get("daemon_json"),
        system=not params.get("no_node_config"),
    )
    if any(ic.client_cert_secret for ic in policy.objects.image_configs):
        from ..policy.tlssecret import client_cert_loader

        policy.client_cert_loader = client_cert_loader(policy.objects)
    password = None
    if params.get("password_stdin"):
        if not params.get("username"):
            raise UsageError("--password-stdin needs --username")
        password = sys.stdin.readline().rstrip("\r\n")
    elif params.get("username"):
        raise UsageError("--username needs --password-stdin (passwords are never taken as "
                         "arguments: they would land in shell history and ps)")
    explicit = params.get("pull_secrets") or params.get("username") or any(
        ic.pull_secret for ic in policy.objects.image_configs)
    if explicit:  # validate what the user gave before any request
        from ..policy.credentials import keychain_provider

        policy.keychains = keychain_provider(
            policy.objects, pull_secret_files=params.get("pull_secrets") or (),
            username=params.get("username"), password=password, env=os.environ)
    else:  # only Docker's config.json could answer: read it when a registry asks
        from ..policy.deferred import DeferredKeychains

        objects = policy.objects

        def build() -> KeychainProvider | None:
            from ..policy.credentials import keychain_provider

            return keychain_provider(objects, env=os.environ)

        policy.keychains = DeferredKeychains(build)
    return policy


def build_client(params: dict[str, Any], *, progress: bool = True) -> Client:
    from ..client import Client

    emulating = crossplane_profile(params) is not None
    if emulating and (params.get("via") or "direct") != "direct":
        from ..errors import UsageError

        raise UsageError("--as-crossplane emulates Crossplane's own fetch; --via cri is the "
                         "node's (kubelet's) path", fix="use one or the other")
    return Client(
        build_policy(params),
        cache=params.get("cache_dir"),
        no_cache=bool(params.get("no_cache")),
        pull_policy=params.get("pull_policy") or ("Always" if emulating else "IfNotPresent"),
        platform=params.get("platform"),
        default_registry=default_registry(params),
        timeout=params.get("timeout"),
        retries=params.get("retries", 3),
        deadline=params.get("deadline"),
        min_rate=params.get("min_rate"),
        rate_window=params.get("rate_window"),
        progress=make_progress() if progress else None,
        via=params.get("via") or "direct",
        runtime_endpoint=params.get("runtime_endpoint"),
        runtime_namespace=params.get("runtime_namespace"),
        trace=_trace if params.get("trace") else None,
    )


def _trace(line: str) -> None:
    echo(f"> {line}", err=True)


def make_progress() -> Progress | None:
    """A rich progress bar on an interactive stderr; nothing otherwise."""
    if not sys.stderr.isatty() or os.environ.get("CROSSFETCH_NO_PROGRESS"):
        return None
    from .progress import RichProgress

    return RichProgress()


WARNINGS: list[str] = []
"""Warnings printed so far (``Warning: ...`` on stderr); :func:`emit_json` adds them too."""


def report_warnings(warnings: list[str]) -> None:
    """Print each warning as kubectl does (``Warning: unknown field ...`` on stderr) and keep
    it for the JSON result."""
    for w in warnings:
        if w not in WARNINGS:
            WARNINGS.append(w)
            echo(f"Warning: {w}", err=True)


def emit_json(obj: Any) -> None:
    if WARNINGS and isinstance(obj, dict):
        obj = {**obj, "warnings": list(WARNINGS)}
    echo(json.dumps(obj, indent=2, sort_keys=False, default=str))


def fail(err: CrossfetchError, output_format: str, *,
         crossplane_version: str | None = None) -> NoReturn:
    """Print an error (text to stderr, or JSON to stdout) and exit with its code."""
    report(err, output_format, crossplane_version=crossplane_version)
    sys.exit(err.exit_code)


def report(err: CrossfetchError, output_format: str, *,
           crossplane_version: str | None = None) -> None:
    """Print an error: ``error:`` lines on stderr, or one JSON object on stdout. An error
    that carries only facts gets its fix written here, at the edge, for the Crossplane release
    ``crossplane_version`` (:func:`crossfetch.fixes.for_error`)."""
    steps: dict[str, Any] = {}
    if err.fix is None:
        from ..crossplane.profile import get
        from ..fixes import for_error

        try:
            profile = get(crossplane_version)
        except CrossfetchError:  # an unknown version is reported by its own error
            profile = get()
        written = for_error(err, profile)  # the release's plain-HTTP rule for the failed host
        if written is not None:
            err.fix = written.text().rstrip("\n")
            steps = {"fixSteps": written.to_dict()}
    if output_format == "json":
        emit_json({"ok": False, **err.to_dict(), **steps})
    else:
        echo(f"error: {err.message}", err=True)
        if err.url or err.mode:
            bits = [f"url: {err.url}" if err.url else "", f"mode: {err.mode}" if err.mode else ""]
            echo("  " + ", ".join(b for b in bits if b), err=True)
        for k, v in (err.detail or {}).items():
            if k in ("skippedEndpoints",) and isinstance(v, list):
                for s in v:
                    echo(f"  tried {s.get('role')} {s.get('url')}: {s.get('error')}", err=True)
        if err.fix:
            lines = err.fix.splitlines()
            echo(f"  fix: {lines[0]}", err=True)
            for line in lines[1:]:
                echo(f"       {line}".rstrip(), err=True)


def handle_errors(f: F) -> F:
    """Turn crossfetch errors into messages and exit codes (never a traceback)."""

    @functools.wraps(f)
    def wrapper(ns: argparse.Namespace) -> Any:
        fmt = getattr(ns, "output_format", "text")
        WARNINGS.clear()  # one run's warnings (the CLI may run in-process more than once)
        try:
            return f(ns)
        except CrossfetchError as e:
            fail(e, fmt, crossplane_version=getattr(ns, "crossplane_version", None))
        except OSError as e:
            if isinstance(e, BrokenPipeError) and stdout_is_broken():
                raise  # the reader of our output left: main() exits quietly
            from ..errors import FetchError

            fail(FetchError(f"{e.strerror or e}: {e.filename or ''}".strip(": "),
                            cause="os-error"), fmt)

    return wrapper  # type: ignore[return-value]
