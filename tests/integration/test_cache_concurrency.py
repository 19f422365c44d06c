"""Many processes and threads pulling through one cache, against the real registry: zero
failures, every returned path valid until its client closes, no leftovers. Also read-only
caches (``readOnlyRootFilesystem``) and ``--no-cache``."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from crossfetch import Cache, Client, Policy
from crossfetch.client import PullResult
from tests.integration.conftest import PushedPackage
from tests.support.certs import PKI
from tests.support.registry import Registry

CLI = [sys.executable, "-m", "crossfetch.cli.main"]


def tmp_leftovers(cache: Path) -> list[str]:
    return sorted(os.listdir(cache / "tmp")) if (cache / "tmp").exists() else []


def test_8_processes_x_10_rounds_into_an_empty_cache(
        tmp_path: Path, https_registry: Registry, pki: PKI,
        packages: dict[str, PushedPackage]) -> None:
    p = packages["provider_kubernetes"]
    ref = https_registry.ref(p.ref)
    ok, failures = 0, []
    for rnd in range(10):
        cache = tmp_path / f"cache{rnd}"
        out = tmp_path / f"package{rnd}.yaml"  # all eight write the same -o file, too
        procs = [subprocess.Popen(
            [*CLI, "pull", ref, "--ca-bundle", str(pki.ca_cert), "--cache-dir", str(cache),
             "-o", str(out), "--no-node-config"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(8)]
        for proc in procs:
            _, err = proc.communicate(timeout=300)
            if proc.returncode == 0:
                ok += 1
            else:
                failures.append(err)
        assert out.read_bytes() == p.built.package_yaml
        assert tmp_leftovers(cache) == []
        assert [e.digest for e in Cache(cache).entries()] == [p.built.manifest_digest]
        assert not [n for n in os.listdir(tmp_path) if n.startswith(".")]
    assert (ok, failures[:3]) == (80, [])


@pytest.fixture
def policy(pki: PKI) -> Policy:
    return Policy.load([], ca_bundle=str(pki.ca_cert), env={})


@pytest.mark.parametrize("pull_policy", ["IfNotPresent", "Always"])
def test_150_threads_450_pulls_on_one_client(
        tmp_path: Path, https_registry: Registry, policy: Policy,
        packages: dict[str, PushedPackage], pull_policy: str) -> None:
    p = packages["configuration"]
    ref = https_registry.ref(p.ref)
    with Client(policy, cache=tmp_path / "cache", pull_policy=pull_policy) as client:
        def pull(i: int) -> PullResult | BaseException:
            try:
                return client.pull(ref)
            except BaseException as e:  # every failure counts; none may escape unseen
                return e

        with ThreadPoolExecutor(150) as pool:  # 450 pulls, as in the reproduction
            results = list(pool.map(pull, range(450)))
        failures = [r for r in results if isinstance(r, BaseException)]
        assert (len(results) - len(failures), failures[:3]) == (450, [])
        assert all(isinstance(r, PullResult) and r.path.read_bytes() == p.built.package_yaml
                   for r in results)
    assert tmp_leftovers(tmp_path / "cache") == []


def test_separate_clients_always_with_a_concurrent_prune(
        tmp_path: Path, https_registry: Registry, policy: Policy,
        packages: dict[str, PushedPackage]) -> None:
    p = packages["configuration"]
    ref = https_registry.ref(p.ref)
    root = tmp_path / "cache"
    stop = threading.Event()
    pruned = 0

    def pruner() -> None:  # `crossfetch cache prune --max-size 0`, over and over
        nonlocal pruned
        while not stop.is_set():
            pruned += len(Cache(root).prune(0).removed)

    clients = [Client(policy, cache=Cache(root), pull_policy="Always") for _ in range(12)]
    results: list[PullResult] = []
    failures: list[BaseException] = []
    lock = threading.Lock()

    def work(client: Client) -> None:
        for _ in range(5):
            try:
                r = client.pull(ref)
                assert r.path.read_bytes() == p.built.package_yaml
            except BaseException as e:  # collected for the assertion
                with lock:
                    failures.append(e)
                return
            with lock:
                results.append(r)

    t = threading.Thread(target=pruner)
    t.start()
    try:
        with ThreadPoolExecutor(12) as pool:
            list(pool.map(work, clients))
        # Every path handed out is still there while its client is open.
        assert (len(results), failures[:3]) == (60, [])
        assert all(r.path.read_bytes() == p.built.package_yaml for r in results)
    finally:
        stop.set()
        t.join()
        for c in clients:
            c.close()
    Cache(root).prune(0)  # released: now they go
    assert Cache(root).entries() == [] and tmp_leftovers(root) == []


# -- read-only caches and --no-cache ---------------------------------------------------------


def in_readonly_mount(src: Path, ro: Path, argv: list[str], env: dict[str, str] | None = None
                      ) -> subprocess.CompletedProcess[bytes]:
    """Run ``argv`` in a private mount namespace where ``ro`` is ``src`` mounted read-only."""
    script = ('mount --bind "$1" "$2" && mount -o remount,ro,bind "$2" && shift 2 && '
              'exec "$@"')
    return subprocess.run(["unshare", "-m", "sh", "-c", script, "sh", str(src), str(ro), *argv],
                          capture_output=True, timeout=180, check=False, env=env)


@pytest.fixture
def readonly_ok(tmp_path: Path) -> None:
    probe = tmp_path / "probe"
    probe.mkdir()
    r = in_readonly_mount(probe, probe, ["sh", "-c", f"! touch {probe}/x 2>/dev/null"])
    if r.returncode != 0:
        pytest.skip(f"no read-only bind mounts here: {r.stderr.decode().strip()}")


@pytest.mark.usefixtures("readonly_ok")
def test_readonly_cache_always_to_stdout(tmp_path: Path, https_registry: Registry, pki: PKI,
                                         packages: dict[str, PushedPackage]) -> None:
    p = packages["configuration"]
    src, ro = tmp_path / "src", tmp_path / "ro"
    src.mkdir()
    ro.mkdir()
    pull = [*CLI, "pull", https_registry.ref(p.ref), "--ca-bundle", str(pki.ca_cert),
            "--cache-dir", str(ro), "--no-node-config"]
    r = in_readonly_mount(src, ro, [*pull, "--pull-policy", "Always", "-o", "-"])
    assert r.returncode == 0, r.stderr.decode()
    assert r.stdout == p.built.package_yaml
    warnings = [line for line in r.stderr.decode().splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "not writable" in warnings[0] and str(ro) in warnings[0]
    assert os.listdir(src) == []
    # A read-only cache that holds the package serves it, with no warning (nothing to write).
    ok = subprocess.run([*pull, "--cache-dir", str(src)], capture_output=True, check=False)
    assert ok.returncode == 0, ok.stderr
    r = in_readonly_mount(src, ro, [*pull, "-O", "json"])
    assert r.returncode == 0, r.stderr.decode()
    assert b'"cached": true' in r.stdout and b"warning" not in r.stderr


def test_no_cache_leaves_nothing(tmp_path: Path, https_registry: Registry, pki: PKI,
                                 packages: dict[str, PushedPackage]) -> None:
    p = packages["configuration"]
    tmpdir = tmp_path / "tmpdir"
    tmpdir.mkdir()
    env = {**os.environ, "TMPDIR": str(tmpdir), "XDG_CACHE_HOME": str(tmp_path / "xdg")}
    r = subprocess.run([*CLI, "pull", https_registry.ref(p.ref), "--ca-bundle",
                        str(pki.ca_cert), "--no-cache", "-o", "-", "--no-node-config"],
                       capture_output=True, timeout=120, check=False, env=env)
    assert r.returncode == 0, r.stderr
    assert r.stdout == p.built.package_yaml and b"warning" not in r.stderr
    assert os.listdir(tmpdir) == [] and not (tmp_path / "xdg").exists()


def test_inspect_validate_with_no_cache(tmp_path: Path, https_registry: Registry, pki: PKI,
                                        packages: dict[str, PushedPackage]) -> None:
    # --validate reads the package file: it must do so before the private cache goes away.
    p = packages["provider_kubernetes"]
    r = subprocess.run([*CLI, "inspect", https_registry.ref(p.ref), "--ca-bundle",
                        str(pki.ca_cert), "--no-cache", "--validate", "-O", "json",
                        "--no-node-config"], capture_output=True, text=True, timeout=120,
                       check=False)
    assert r.returncode == 0, r.stderr
    assert '"validated": true' in r.stdout and '"CustomResourceDefinition"' in r.stdout
