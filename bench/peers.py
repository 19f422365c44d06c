"""The peers a benchmark compares crossfetch with, found or installed on demand.

oras-py and python-dxf go into a throwaway venv under /tmp, never into crossfetch's own
environment: they are yardsticks, not dependencies.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

PEER_PACKAGES = ("oras", "python-dxf")
DEFAULT_PEER_VENV = Path("/tmp/crossfetch-bench-peers")


def need(binary: str, apt: str) -> str:
    """The path of ``binary``, or exit with the command that installs it."""
    path = shutil.which(binary)
    if path is None:
        sys.exit(f"bench: {binary} is missing; install it with `apt-get install -y {apt}`")
    return path


def peer_python(venv: Path, extra: tuple[str, ...] = ()) -> Path:
    """The interpreter of the peer venv, creating it and installing the peers if needed."""
    python = venv / "bin" / "python"
    wanted = (*PEER_PACKAGES, *extra)
    if python.exists() and _has(python, wanted):
        return python
    if not python.exists():
        # The system interpreter, not crossfetch's venv: nothing of ours leaks into the peers.
        base = shutil.which("python3") or sys.executable
        subprocess.run([base, "-m", "venv", str(venv)], check=True)
    print(f"bench: installing {', '.join(wanted)} into {venv} (throwaway)", file=sys.stderr)
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *wanted],
        check=True,
    )
    return python


def _has(python: Path, packages: tuple[str, ...]) -> bool:
    modules = {"oras": "oras", "python-dxf": "dxf", "py-spy": None}
    imports = [m for p in packages if (m := modules.get(p, p.replace("-", "_")))]
    probe = subprocess.run(
        [str(python), "-c", "import " + ", ".join(imports)], capture_output=True, check=False
    )
    if probe.returncode != 0:
        return False
    return "py-spy" not in packages or (python.parent / "py-spy").exists()


def versions(python: Path) -> dict[str, str]:
    """Installed versions of the peer packages (for the report)."""
    code = (
        "import importlib.metadata as m, json; "
        f"print(json.dumps({{p: m.version(p) for p in {list(PEER_PACKAGES)!r}}}))"
    )
    out = subprocess.run([str(python), "-c", code], capture_output=True, text=True, check=True)
    import json

    result: dict[str, str] = json.loads(out.stdout)
    return result
