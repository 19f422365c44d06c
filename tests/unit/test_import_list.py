"""The modules a plain-HTTP ``crossfetch pull`` imports, pinned (issue 15).

Start-up is most of a small pull, and it is spent in imports. A real pull runs in a subprocess
against a throwaway stdlib HTTP server serving one built package, and the modules loaded at its
end are compared with the lists below, so a heavy import cannot creep onto the path unnoticed.
Not a timing assertion: when a change needs a new module here, add it on purpose (and measure it
with ``python -X importtime``; ``bench/startup.py``).

What stays, and why: ``ssl``, ``email`` and ``calendar`` arrive with ``http.client`` itself (the
transport is on the standard library's HTTP client); ``yaml`` reads the ``--config`` that makes
the registry plain HTTP (an ImageConfig with ``tls.mode: Disabled``); ``isal`` inflates.
"""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.support.httpserver import serve
from tests.support.packages import BuiltPackage, function_with_runtime

# Every crossfetch module a plain-HTTP pull with -o loads (--no-node-config, no cache).
PULL_MODULES = frozenset({
    "crossfetch", "crossfetch._inflate", "crossfetch.cache", "crossfetch.capped", "crossfetch.cli",
    "crossfetch.cli.common", "crossfetch.cli.fetch_cmds", "crossfetch.cli.main",
    "crossfetch.client", "crossfetch.crossplane", "crossfetch.crossplane.profile",
    "crossfetch.errors", "crossfetch.oci", "crossfetch.output", "crossfetch.policy",
    "crossfetch.policy.deferred", "crossfetch.policy.model", "crossfetch.policy.node",
    "crossfetch.policy.objects", "crossfetch.policy.resolver", "crossfetch.reference",
    "crossfetch.registry", "crossfetch.sources", "crossfetch.transport",
    "crossfetch.transport.deadline",
    "crossfetch.transport.deferred", "crossfetch.transport.session", "crossfetch.transport.retry",
    "crossfetch.transport.route",
    "crossfetch.transport.tls", "crossfetch.transport.tokens", "crossfetch.transport.connection",
    "crossfetch.xpkg", "crossfetch.xpkg.extract", "crossfetch.xpkg.layers", "crossfetch.xpkg.lint",
    "crossfetch.xpkg.meta", "crossfetch.xpkg.stream", "crossfetch.xpkg.tar",
})
# Distributions outside the standard library that may load (top-level names).
PULL_THIRD_PARTY = frozenset({"crossfetch", "yaml", "isal"})
# Heavy standard-library modules no pull needs (node files are off: tomllib reads
# registries.conf/hosts.toml only when they are read).
NEVER = ("asyncio", "tomllib", "logging", "subprocess", "concurrent", "multiprocessing",
         "xml", "sqlite3", "unittest", "pydoc", "decimal", "zoneinfo", "uuid", "ctypes",
         "urllib.request", "http.server", "http.cookiejar", "email.mime", "importlib.metadata",
         "gzip", "tarfile", "zipfile", "rich", "cryptography", "certifi", "grpc", "google",
         "httpx", "click", "pydantic", "aiohttp", "bcrypt", "prometheus_client")

# What a healthy plain-HTTP ``doctor`` loads beyond the pull's modules: its stages, the fix
# writers (a loopback address is a warning with a fix), Docker's config.json (the auth stage
# names the credential source) and Crossplane's decision mode (the second verdict). The
# certificate module (and its cryptography), the resolver thread and tempfile are for failing,
# TLS or rarer stages only; its records are plain classes and NamedTuples, as the pull's.
DOCTOR_EXTRA = frozenset({
    "crossfetch.cli.doctor_cmds", "crossfetch.crossplane.emulate", "crossfetch.doctor",
    "crossfetch.doctor.api", "crossfetch.doctor.checks", "crossfetch.doctor.crossplane",
    "crossfetch.doctor.net", "crossfetch.doctor.report", "crossfetch.fixes",
    "crossfetch.fixes.causes", "crossfetch.fixes.cluster", "crossfetch.fixes.configmap",
    "crossfetch.fixes.fix", "crossfetch.fixes.helm",
    "crossfetch.fixes.imageconfig", "crossfetch.fixes.names", "crossfetch.policy.credentials",
    "crossfetch.policy.credhelpers", "crossfetch.policy.dockerconfig", "crossfetch.policy.hosts",
})
DOCTOR_NEVER = ("tempfile", "queue", "tomllib", "crossfetch.trust", "crossfetch.doctor.netpol",
                "crossfetch.doctor.runtime", "crossfetch.cri", "crossfetch.transport.challenge")

# ``dataclasses`` (and the ``inspect``, ``ast`` and ``dis`` it imports) cost ~19 ms of CPU on the
# pull path: the pull path's records are NamedTuples.
PULL_NEVER = ("dataclasses", "inspect", "ast", "dis")

PROBE = """
import sys
from crossfetch.cli.main import main
try:
    code = main(sys.argv[1:])
except SystemExit as e:
    code = e.code
print("EXIT", code)
print(" ".join(sorted(sys.modules)))
"""


def _handler(pkg: BuiltPackage) -> type[BaseHTTPRequestHandler]:
    class Registry(BaseHTTPRequestHandler):
        """Just enough of the distribution API for an anonymous pull."""

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _answer(self, body: bool) -> None:
            path = self.path.split("?")[0]
            ref = path.rsplit("/", 1)[-1]
            if path == "/v2/":
                data, ctype, digest = b"{}", "application/json", ""
            elif "/manifests/" in path:
                data, ctype, digest = pkg.manifest, pkg.media_type, pkg.manifest_digest
            elif "/blobs/" in path and ref in pkg.blobs:
                data, ctype, digest = pkg.blobs[ref], "application/octet-stream", ref
            else:
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(200)
            self.send_header("Content-Type", ctype)
            if digest:
                self.send_header("Docker-Content-Digest", digest)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if body:
                self.wfile.write(data)

        def do_GET(self) -> None:
            self._answer(True)

        def do_HEAD(self) -> None:
            self._answer(False)

    return Registry


@pytest.fixture(scope="module")
def tls_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """The same registry over HTTPS, and the file of the CA that signed its certificate."""
    import ssl

    import trustme

    work = tmp_path_factory.mktemp("tls")
    pkg = function_with_runtime(work / "pkg", 1)
    ca = trustme.CA()
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ca.issue_cert("127.0.0.1").configure_cert(ctx)
    ca.cert_pem.write_to_path(str(work / "ca.crt"))
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(pkg))
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}", work / "ca.crt"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    pkg = function_with_runtime(tmp_path_factory.mktemp("pkg"), 1)
    with serve(_handler(pkg)) as s:
        yield s.host


def loaded(argv: list[str]) -> tuple[str, set[str]]:
    run = subprocess.run([sys.executable, "-c", PROBE, *argv], capture_output=True, text=True,
                         timeout=120, cwd=Path(__file__).resolve().parents[2])
    lines = run.stdout.splitlines()
    assert len(lines) >= 2 and lines[-2].startswith("EXIT"), run.stderr[-2000:]
    return lines[-2].split()[1], set(lines[-1].split())


def test_a_plain_http_pull_imports_only_the_pinned_modules(registry: str, tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        "apiVersion: pkg.crossplane.io/v1beta1\nkind: ImageConfig\nmetadata: {name: plain}\n"
        f"spec:\n  matchImages: [{{type: Prefix, prefix: '{registry}/'}}]\n"
        "  registry:\n    tls:\n      mode: Disabled\n")
    out = tmp_path / "package.yaml"
    code, mods = loaded(["pull", f"{registry}/fns/f:v1", "--config", str(policy), "-o", str(out),
                         "--no-cache", "--no-node-config"])
    assert code == "0" and out.read_bytes().startswith(b"---")  # it really pulled

    ours = {m for m in mods if m.split(".")[0] == "crossfetch"}
    assert ours - PULL_MODULES == set(), "new crossfetch modules on the pull path: import them " \
        "lazily, or add them to PULL_MODULES on purpose"
    assert PULL_MODULES - ours == set(), "modules left the pull path: drop them from PULL_MODULES"
    third = {m.split(".")[0] for m in mods} - set(sys.stdlib_module_names)
    third = {m for m in third if not m.startswith("_") and m != "cython_runtime"}
    assert third == PULL_THIRD_PARTY
    for heavy in (*NEVER, *PULL_NEVER):
        assert heavy not in mods, f"{heavy} imported by a plain-HTTP pull"


def test_help_imports_no_network_yaml_or_inflater() -> None:
    code, mods = loaded(["pull", "--help"])
    assert code == "0"
    assert not {m for m in mods if m.split(".")[0] == "crossfetch"} & {
        "crossfetch._inflate", "crossfetch.client", "crossfetch.transport", "crossfetch.xpkg"}
    for heavy in ("ssl", "http", "email", "yaml", "isal", "dataclasses", "inspect", *NEVER):
        assert heavy not in mods, f"{heavy} imported by crossfetch pull --help"


def test_a_healthy_plain_http_doctor_imports_no_more_than_pinned(registry: str,
                                                                  tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        "apiVersion: pkg.crossplane.io/v1beta1\nkind: ImageConfig\nmetadata: {name: plain}\n"
        f"spec:\n  matchImages: [{{type: Prefix, prefix: '{registry}/'}}]\n"
        "  registry:\n    tls:\n      mode: Disabled\n")
    code, mods = loaded(["doctor", f"{registry}/fns/f:v1", "--config", str(policy),
                         "--no-node-config", "-O", "json"])
    assert code == "0"  # every stage passed (the loopback address is a warning)

    ours = {m for m in mods if m.split(".")[0] == "crossfetch"}
    assert ours - PULL_MODULES - DOCTOR_EXTRA == set(), "new crossfetch modules on a healthy " \
        "doctor run: import them where a failing stage needs them, or add them to DOCTOR_EXTRA"
    third = {m.split(".")[0] for m in mods} - set(sys.stdlib_module_names)
    assert {m for m in third if not m.startswith("_") and m != "cython_runtime"} \
        == PULL_THIRD_PARTY  # no cryptography: a plain-HTTP run reads no certificate
    for heavy in (*NEVER, *PULL_NEVER, *DOCTOR_NEVER):
        assert heavy not in mods, f"{heavy} imported by a healthy plain-HTTP doctor"


def test_a_healthy_https_doctor_reads_the_certificate_but_imports_no_dataclasses(
        tls_registry: tuple[str, Path]) -> None:
    registry, ca = tls_registry
    code, mods = loaded(["doctor", f"{registry}/fns/f:v1", "--ca-bundle", str(ca),
                         "--no-node-config", "-O", "json"])
    assert code == "0"
    # The tls stage describes the certificate it verified: that is cryptography's work.
    assert "cryptography" in mods and "crossfetch.trust" in mods
    for heavy in (*PULL_NEVER, "tempfile", "queue", "tomllib", "certifi"):
        assert heavy not in mods, f"{heavy} imported by a healthy HTTPS doctor"
