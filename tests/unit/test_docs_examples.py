"""Every example in the README and docs/ is checked against the code, so the docs cannot
drift: each `crossfetch ...` command line is parsed by the real command's parser (an option
that does not exist fails here), and each Kubernetes object in a YAML example is loaded by the
policy loader (ImageConfig, ConfigMap, Secret) or at least parses as YAML."""

from __future__ import annotations

import importlib
import re
import shlex
from pathlib import Path

import pytest
import yaml

from crossfetch.cli.main import COMMANDS, _hoist_globals
from crossfetch.errors import CrossfetchError

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("**/*.md"))]
FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```", re.S | re.M)


def _blocks(lang: set[str]) -> list[tuple[str, str]]:
    out = []
    for page in PAGES:
        text = page.read_text()
        for m in FENCE.finditer(text):
            if m.group(1) in lang:
                line = text.count("\n", 0, m.start()) + 1
                out.append((f"{page.relative_to(ROOT)}:{line}", m.group(2)))
    return out


def _command_lines() -> list[tuple[str, str]]:
    lines = []
    for where, body in _blocks({"sh", "bash", "console", "shell", ""}):
        joined = re.sub(r"\\\n\s*", " ", body)
        for line in joined.splitlines():
            line = line.strip().removeprefix("$ ")
            if "|" in line:  # `echo x | crossfetch ...`: the crossfetch side of the pipe
                line = next((p.strip() for p in line.split("|") if "crossfetch " in p), line)
            if line.startswith(("crossfetch ", ".venv/bin/crossfetch ")):
                lines.append((where, line.split("  #")[0].split(" # ")[0].strip()))
    return lines


COMMAND_LINES = _command_lines()


def test_the_docs_have_examples() -> None:
    assert len(COMMAND_LINES) >= 20


@pytest.mark.parametrize(("where", "line"), COMMAND_LINES,
                         ids=[f"{w}" for w, _ in COMMAND_LINES])
def test_command_line_example_parses(where: str, line: str) -> None:
    line = re.sub(r"\[[^\]]*\]", "", line)  # a synopsis: [optional parts] left out
    try:
        words = shlex.split(line)[1:]
    except ValueError:
        pytest.skip(f"{where}: not a single shell line")
    argv: list[str] = []
    skip = False
    for word in words:  # shell redirections are not arguments
        if skip:
            skip = False
        elif word in ("<", ">", ">>", "2>", "2>&1"):
            skip = word != "2>&1"
        elif not word.startswith(("<", ">", "2>")):
            argv.append(word)
    argv = _hoist_globals(argv)
    if not argv or argv[0] in ("-h", "--help", "--version"):
        return
    assert argv[0] in COMMANDS, f"{where}: unknown command in {line!r}"
    module = importlib.import_module(COMMANDS[argv[0]][0])
    parser = module.PARSERS[argv[0]](f"crossfetch {argv[0]}")
    if "--help" in argv or "-h" in argv:
        return
    try:
        parser.parse_args(argv[1:])
    except CrossfetchError as e:
        pytest.fail(f"{where}: {line!r} does not parse: {e.message}")


# An abbreviated excerpt of a real run ("…") is not a document to load.
YAML_BLOCKS = [(w, b) for w, b in _blocks({"yaml", "yml"}) if "…" not in b and "..." not in b]


@pytest.mark.parametrize(("where", "body"), YAML_BLOCKS, ids=[w for w, _ in YAML_BLOCKS])
def test_yaml_example_loads(where: str, body: str) -> None:
    docs = [d for d in yaml.safe_load_all(body) if d is not None]
    kinds = {d.get("kind") for d in docs if isinstance(d, dict)}
    if kinds & {"ImageConfig", "ConfigMap", "Secret"} and not kinds - {
            "ImageConfig", "ConfigMap", "Secret"}:
        from crossfetch.policy.objects import ObjectSet

        objects = ObjectSet()
        objects.add_text(body, where)
        assert objects.warnings == [], f"{where}: {objects.warnings}"
