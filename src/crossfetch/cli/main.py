"""``crossfetch`` command group. Subcommands are imported only when invoked, so
``crossfetch --help`` and a pull pay no start-up cost for commands they do not run."""

from __future__ import annotations

import importlib
import importlib.util
import sys
from typing import Any

import click

from .. import __version__

COMMANDS: dict[str, tuple[str, str]] = {
    # name: (module, attribute)
    "pull": ("crossfetch.cli.fetch_cmds", "pull"),
    "head": ("crossfetch.cli.fetch_cmds", "head"),
    "tags": ("crossfetch.cli.fetch_cmds", "tags"),
    "inspect": ("crossfetch.cli.fetch_cmds", "inspect"),
    "policy": ("crossfetch.cli.policy_cmds", "policy"),
    "doctor": ("crossfetch.cli.doctor_cmds", "doctor"),
    "trust": ("crossfetch.cli.trust_cmds", "trust"),
}

SUMMARIES = {
    "pull": "Fetch a package and write its package.yaml.",
    "head": "Resolve a reference to its digest, media type and size.",
    "tags": "List a repository's tags.",
    "inspect": "Show a package's kind, name, constraints, dependencies and objects.",
    "policy": "Explain and export the effective registry policy.",
    "doctor": "Diagnose why a package cannot be pulled, stage by stage.",
    "trust": "Read a registry's certificate chain and emit trust configuration.",
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return [n for n in COMMANDS if self._available(n)]

    @staticmethod
    def _available(name: str) -> bool:
        mod = COMMANDS[name][0]
        return importlib.util.find_spec(mod) is not None

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS or not self._available(name):
            return None
        module, attr = COMMANDS[name]
        cmd: click.Command = getattr(importlib.import_module(module), attr)
        return cmd

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(n, SUMMARIES.get(n, "")) for n in self.list_commands(ctx)]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"],
                                              "max_content_width": 100})
@click.version_option(__version__, prog_name="crossfetch")
def cli() -> None:
    """Fetch, inspect and diagnose Crossplane packages from any OCI registry.

    Every registry gets an explicit policy, written in the YAML Crossplane uses:
    ImageConfig objects (plus the spec.registry.tls block), ConfigMaps and Secrets,
    passed with --config. Public, private, self-signed, plain-HTTP registries on any
    port all work, and nothing is ever downgraded behind your back.

    \b
    Examples:
      crossfetch pull reg.example:8443/fns/function-foo:v0.1.0 --ca-bundle ca.crt -o package.yaml
      crossfetch pull 10.0.0.5:5000/fns/function-bar:v1 --config local.yaml
      crossfetch inspect xpkg.crossplane.io/crossplane-contrib/provider-kubernetes:v0.15.0
      crossfetch doctor gitea.cnoe.localtest.me:8443/giteaadmin/function-foo:v0.1.0

    Exit codes: 0 ok, 1 the fetch failed, 2 bad usage or bad configuration.
    """


def main(argv: list[str] | None = None) -> Any:
    try:
        return cli.main(args=argv, prog_name="crossfetch")
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)


if __name__ == "__main__":
    main()
