"""Options, policy building, output and error rendering shared by every command."""

from __future__ import annotations

import functools
import json
import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import click

from ..errors import CrossfetchError

if TYPE_CHECKING:
    from ..client import Client, Progress
    from ..policy.resolver import KeychainProvider, Policy

F = TypeVar("F", bound=Callable[..., Any])


def output_option(f: F) -> F:
    return click.option("--output", "-O", "output_format", type=click.Choice(["text", "json"]),
                        default="text", show_default=True,
                        help="Human text, or one JSON object for scripts.")(f)


def policy_options(f: F) -> F:
    """Options that decide where to go and whom to trust."""
    opts = [
        click.option("--config", "-c", "config_files", multiple=True,
                     type=click.Path(dir_okay=False),
                     help="Multi-document YAML with ImageConfig, ConfigMap and Secret objects, as "
                     "you would kubectl apply them. Repeatable."),
        click.option("--ca-bundle", type=click.Path(dir_okay=False), envvar="CA_BUNDLE_PATH",
                     help="Extra CA certificates (PEM), added to the system roots for every "
                     "registry. Env: CA_BUNDLE_PATH (Crossplane's name)."),
        click.option("--default-registry", metavar="HOST",
                     help="Registry for names without one (Crossplane v2 refuses such names)."),
        click.option("--timeout", type=float, default=None, metavar="SECONDS",
                     help="Connect and read timeout per request (default 10 s connect, 60 s "
                     "read)."),
        click.option("--retries", type=click.IntRange(0, 10), default=3, show_default=True,
                     help="Retries on connection errors, 5xx and 429 (with backoff)."),
        click.option("--allow-plain-http-credentials", is_flag=True,
                     help="Allow sending credentials to registries that policy allows plain "
                     "HTTP. Off by default: credentials in clear text can be stolen."),
        # node files (containerd, Docker, containers)
        click.option("--hosts-dir", "hosts_dirs", multiple=True, type=click.Path(file_okay=False),
                     help="containerd certs.d directory of <host>/hosts.toml files. Repeatable."),
        click.option("--certs-dir", "certs_dirs", multiple=True, type=click.Path(file_okay=False),
                     help="Docker/containers certs.d directory (<host>/*.crt, client.cert, "
                     "client.key). Repeatable."),
        click.option("--registries-conf", type=click.Path(dir_okay=False),
                     help="containers registries.conf (v2): mirrors, insecure, blocked."),
        click.option("--daemon-json", type=click.Path(dir_okay=False),
                     help="Docker daemon.json: insecure-registries (host:port or CIDR)."),
        click.option("--no-node-config", is_flag=True,
                     help="Do not read the node's standard files (/etc/containerd/certs.d, "
                     "/etc/docker/certs.d, /etc/containers/registries.conf, ...)."),
        # credentials
        click.option("--pull-secret", "pull_secrets", multiple=True,
                     type=click.Path(dir_okay=False),
                     help="A kubernetes.io/dockerconfigjson Secret (YAML) or a bare "
                     ".dockerconfigjson file. Repeatable."),
        click.option("--username", "-u", help="User name for the registry (with "
                     "--password-stdin)."),
        click.option("--password-stdin", is_flag=True,
                     help="Read the password or token from standard input."),
    ]
    for opt in reversed(opts):
        f = opt(f)
    return f


def fetch_options(f: F) -> F:
    opts = [
        click.option("--platform", metavar="OS/ARCH",
                     help="Platform to pick from a multi-platform index (default linux/amd64)."),
        click.option("--cache-dir", type=click.Path(file_okay=False),
                     help="Package cache (default $XDG_CACHE_HOME/crossfetch)."),
        click.option("--pull-policy", type=click.Choice(["IfNotPresent", "Always", "Never"]),
                     default="IfNotPresent", show_default=True,
                     help="As Crossplane's packagePullPolicy: use the cache by digest, always "
                     "fetch, or never touch the network for the package."),
        click.option("--via", type=click.Choice(["direct", "cri"]), default="direct",
                     show_default=True,
                     help="direct: crossfetch talks to the registry. cri: the node's container "
                     "runtime pulls (the kubelet path, with the node's hosts.toml and our "
                     "credentials as CRI AuthConfig) and crossfetch reads its content store."),
        click.option("--runtime-endpoint", metavar="URL",
                     default="unix:///run/containerd/containerd.sock", show_default=True,
                     help="The runtime's CRI socket, for --via cri."),
        click.option("--runtime-namespace", default="k8s.io", show_default=True,
                     help="containerd namespace to read images from (kubelet uses k8s.io)."),
    ]
    for opt in reversed(opts):
        f = opt(f)
    return f


def build_policy(params: dict[str, Any]) -> Policy:
    from ..errors import UsageError
    from ..policy.node import load_node_policy
    from ..policy.resolver import Policy

    # CA_BUNDLE_PATH is read by click into --ca-bundle, so the policy sees no environment here.
    policy = Policy.load(params.get("config_files") or (), ca_bundle=params.get("ca_bundle"),
                         env={},
                         allow_plain_http_credentials=bool(
                             params.get("allow_plain_http_credentials")))
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
    from ..cache import Cache
    from ..client import Client

    return Client(
        build_policy(params),
        cache=Cache(params.get("cache_dir")),
        pull_policy=params.get("pull_policy") or "IfNotPresent",
        platform=params.get("platform"),
        default_registry=params.get("default_registry"),
        timeout=params.get("timeout"),
        retries=params.get("retries", 3),
        progress=make_progress() if progress else None,
        via=params.get("via") or "direct",
        runtime_endpoint=params.get("runtime_endpoint"),
        runtime_namespace=params.get("runtime_namespace"),
    )


def make_progress() -> Progress | None:
    """A rich progress bar on an interactive stderr; nothing otherwise."""
    if not sys.stderr.isatty() or os.environ.get("CROSSFETCH_NO_PROGRESS"):
        return None
    from .progress import RichProgress

    return RichProgress()


def emit_json(obj: Any) -> None:
    click.echo(json.dumps(obj, indent=2, sort_keys=False, default=str))


def fail(err: CrossfetchError, output_format: str) -> NoReturn:
    """Print an error (text to stderr, or JSON to stdout) and exit with its code."""
    if output_format == "json":
        emit_json({"ok": False, **err.to_dict()})
    else:
        click.echo(f"error: {err.message}", err=True)
        if err.url or err.mode:
            bits = [f"url: {err.url}" if err.url else "", f"mode: {err.mode}" if err.mode else ""]
            click.echo("  " + ", ".join(b for b in bits if b), err=True)
        for k, v in (err.detail or {}).items():
            if k in ("skipped_endpoints",) and isinstance(v, list):
                for s in v:
                    click.echo(f"  tried {s.get('role')} {s.get('url')}: {s.get('error')}",
                               err=True)
        if err.fix:
            lines = err.fix.splitlines()
            click.echo(f"  fix: {lines[0]}", err=True)
            for line in lines[1:]:
                click.echo(f"       {line}", err=True)
    sys.exit(err.exit_code)


def handle_errors(f: F) -> F:
    """Turn crossfetch errors into messages and exit codes (never a traceback)."""

    @functools.wraps(f)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        fmt = kwargs.get("output_format", "text")
        try:
            return f(*args, **kwargs)
        except CrossfetchError as e:
            fail(e, fmt)
        except OSError as e:
            from ..errors import FetchError

            fail(FetchError(f"{e.strerror or e}: {e.filename or ''}".strip(": "),
                            cause="os-error"), fmt)

    return wrapper  # type: ignore[return-value]
