"""MkDocs hook: render the CLI reference from the argparse parsers themselves.

The page ``reference/cli.md`` holds a marker; at build time it is replaced by every command's
``--help`` text, so the reference cannot drift from the code.
"""

from __future__ import annotations

import argparse
import importlib
import os
from typing import Any

MARKER = "<!-- cli-reference -->"


def _subparsers(parser: argparse.ArgumentParser) -> list[tuple[str, argparse.ArgumentParser]]:
    found: list[tuple[str, argparse.ArgumentParser]] = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            found.extend(action.choices.items())
    return found


def _section(level: int, title: str, parser: argparse.ArgumentParser) -> list[str]:
    out = [f"{'#' * level} `{title}`", "", "```text", parser.format_help().rstrip(), "```", ""]
    for name, sub in _subparsers(parser):
        out += _section(level + 1, f"{title} {name}", sub)
    return out


def render() -> str:
    """Markdown for every command, in the order `crossfetch --help` lists them."""
    from crossfetch.cli import main as cli

    os.environ["COLUMNS"] = "100"  # argparse wraps to the terminal: pin it for stable output
    out = ["## `crossfetch`", "", "```text", cli._help().rstrip(), "```", ""]
    for name, (module_name, _summary) in cli.COMMANDS.items():
        module = importlib.import_module(module_name)
        out += _section(2, f"crossfetch {name}", module.PARSERS[name](f"crossfetch {name}"))
    return "\n".join(out)


def on_page_markdown(markdown: str, page: Any, **_: Any) -> str:
    if MARKER in markdown:
        return markdown.replace(MARKER, render())
    return markdown
