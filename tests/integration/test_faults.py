"""Network faults between crossfetch and a real registry (docker-registry), injected by the
FaultProxy (tests/support/proxy.py), one per test.

Each test drives the CLI in-process (tests/support/cli.py) and checks what a user sees: exit
0 and the right package.yaml after a retry, or exit 1 with one ``error:`` line (cause and fix)
and no traceback, or one JSON object with ``"ok": false`` under ``-O json``. After every fault
the cache is checked: no entry unless the pull succeeded (and then a valid one), no leftover
temporary directories, no output file after a failure. docs/reliability.md tabulates them.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from crossfetch.cache import Cache
from tests.integration.conftest import PushedPackage
from tests.integration.test_pull import imageconfig, policy_file
from tests.support.cli import CliResult, invoke
from tests.support.proxy import Fault, FaultProxy
from tests.support.registry import Registry

FAST = ["--no-node-config"]


def _pull(tmp_path: Path, proxy: FaultProxy, p: PushedPackage, *extra: str,
          json_out: bool = False, retries: int = 2, ref: str | None = None) -> CliResult:
    cfg = policy_file(tmp_path, imageconfig(f"{proxy.host}/", mode="Disabled"))
    args = ["pull", ref or f"{proxy.host}/{p.ref}", "--config", str(cfg), "--cache-dir",
            str(tmp_path / "cache"), "-o", str(tmp_path / "out.yaml"), "--retries",
            str(retries), *FAST, *extra]
    if json_out:
        args += ["-O", "json"]
    return invoke(args, env={"CROSSFETCH_NO_PROGRESS": "1"})


def _cache_entries(tmp_path: Path) -> list[Path]:
    root = tmp_path / "cache" / "packages"
    return sorted(root.rglob("package.yaml")) if root.exists() else []


def _leftovers(tmp_path: Path) -> list[Path]:
    tmp = tmp_path / "cache" / "tmp"
    stray = [x for x in tmp.iterdir()] if tmp.exists() else []
    return stray + [x for x in tmp_path.iterdir() if x.name.startswith(".out")]


def assert_ok(res: CliResult, tmp_path: Path, p: PushedPackage) -> None:
    """Success after retries: the right bytes, one valid cache entry, no leftovers."""
    assert res.exception is None, res.exception
    assert res.exit_code == 0, res.output
    assert (tmp_path / "out.yaml").read_bytes() == p.built.package_yaml
    entries = _cache_entries(tmp_path)
    assert len(entries) == 1 and entries[0].read_bytes() == p.built.package_yaml
    assert Cache(tmp_path / "cache").lookup(p.built.manifest_digest) is not None
    assert _leftovers(tmp_path) == []


def assert_failed(res: CliResult, tmp_path: Path, *, says: tuple[str, ...] = (),
                  never: tuple[str, ...] = ()) -> str:
    """One error line with a fix, exit 1, nothing stored, no leftovers; returns the text."""
    assert res.exception is None, repr(res.exception)
    assert "Traceback" not in res.output, res.output
    assert res.exit_code == 1, res.output
    text = res.stderr
    errors = [line for line in text.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, text
    assert "fix:" in text, text
    for s in says:
        assert s in text, (s, text)
    for s in never:
        assert s not in text, (s, text)
    assert_nothing_stored(tmp_path)
    return text


def assert_failed_json(res: CliResult, tmp_path: Path, cause: str) -> dict[str, object]:
    assert res.exception is None, repr(res.exception)
    assert res.exit_code == 1, res.output
    doc = json.loads(res.stdout)
    assert doc["ok"] is False and doc["cause"] == cause and doc.get("fix"), doc
    assert "Traceback" not in res.output
    assert_nothing_stored(tmp_path)
    return dict(doc)


def assert_nothing_stored(tmp_path: Path) -> None:
    assert _cache_entries(tmp_path) == []
    assert _leftovers(tmp_path) == []
    assert not (tmp_path / "out.yaml").exists()


def _blob_gets(proxy: FaultProxy) -> list[tuple[str, int]]:
    return [(r.headers.get("range", ""), r.status) for r in proxy.requests_for("GET", blobs=True)]


# --- resets ---------------------------------------------------------------------------------


def test_reset_before_headers_once_is_retried(tmp_path: Path, fault_proxy: FaultProxy,
                                              packages: dict[str, PushedPackage]) -> None:
    p = packages["configuration"]
    [f] = fault_proxy.inject(Fault("reset", where="manifest"))
    assert_ok(_pull(tmp_path, fault_proxy, p), tmp_path, p)
    assert f.hits == 1


def test_reset_before_headers_always(tmp_path: Path, fault_proxy: FaultProxy,
                                     packages: dict[str, PushedPackage]) -> None:
    p = packages["configuration"]
    [f] = fault_proxy.inject(Fault("reset", where="blob", times=None))
    assert_failed(_pull(tmp_path, fault_proxy, p), tmp_path, never=("firewall",))
    assert f.hits == 4  # the pool's one retry of a kept-alive connection, then --retries 2
    assert_failed_json(_pull(tmp_path, fault_proxy, p, json_out=True), tmp_path,
                       "connection-reset")


def test_reset_mid_blob_is_resumed_with_range(tmp_path: Path, fault_proxy: FaultProxy,
                                              big_package: PushedPackage) -> None:
    p = big_package  # a 15 MB base layer: the break comes after data was handed on
    fault_proxy.inject(Fault("reset-body", where="blob", path=p.built.base_layer_digest or ""))
    assert_ok(_pull(tmp_path, fault_proxy, p), tmp_path, p)
    gets = [g for g in _blob_gets(fault_proxy) if g[0]]
    assert len(gets) == 1 and gets[0][0].startswith("bytes=") and gets[0][1] == 206, \
        _blob_gets(fault_proxy)


def test_reset_mid_blob_always(tmp_path: Path, fault_proxy: FaultProxy,
                               packages: dict[str, PushedPackage]) -> None:
    p = packages["provider_kubernetes"]
    [f] = fault_proxy.inject(Fault("reset-body", where="blob", times=None))
    text = assert_failed(_pull(tmp_path, fault_proxy, p), tmp_path,
                         says=("broke off", "nothing was kept"), never=("firewall",))
    assert "connection-reset" in text
    assert f.hits == 3  # the first try and two resumes
    assert_failed_json(_pull(tmp_path, fault_proxy, p, json_out=True), tmp_path,
                       "connection-reset")


def test_reset_mid_manifest_once_is_retried(tmp_path: Path, fault_proxy: FaultProxy,
                                            packages: dict[str, PushedPackage]) -> None:
    p = packages["configuration"]
    [f] = fault_proxy.inject(Fault("reset-body", where="manifest"))
    assert_ok(_pull(tmp_path, fault_proxy, p), tmp_path, p)
    assert f.hits == 1


# --- statuses -------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [500, 502, 503])
def test_5xx_once_is_retried(status: int, tmp_path: Path, fault_proxy: FaultProxy,
                             packages: dict[str, PushedPackage]) -> None:
    p = packages["configuration"]
    fault_proxy.inject(Fault("status", where="blob", status=status))
    assert_ok(_pull(tmp_path, fault_proxy, p), tmp_path, p)


@pytest.mark.parametrize("status", [500, 502, 503])
def test_5xx_always(status: int, tmp_path: Path, fault_proxy: FaultProxy,
                    packages: dict[str, PushedPackage]) -> None:
    p = packages["configuration"]
    [f] = fault_proxy.inject(Fault("status", where="blob", status=status, times=None))
    assert_failed(_pull(tmp_path, fault_proxy, p), tmp_path, says=(f"answered {status}",))
    assert f.hits == 3


def test_429_with_small_retry_after_is_honoured(tmp_path: Path, fault_proxy: FaultProxy,
                                                packages: dict[str, PushedPackage]) -> None:
    p = packages["configuration"]
    [f] = fault_proxy.inject(Fault("status", where="manifest", status=429, retry_after="1",
                                   methods=("GET", "HEAD")))
    assert_ok(_pull(tmp_path, fault_proxy, p), tmp_path, p)
    assert f.hits == 1


def test_429_with_huge_retry_after_is_not_slept(tmp_path: Path, fault_proxy: FaultProxy,
                                                packages: dict[str, PushedPackage]) -> None:
    p = packages["configuration"]
    [f] = fault_proxy.inject(Fault("status", where="blob", status=429, retry_after="3600",
                                   times=None))
    start = time.monotonic()
    res = _pull(tmp_path, fault_proxy, p)
    took = time.monotonic() - start
    assert_failed(res, tmp_path,
                  says=("3600 s", "above the 30 s crossfetch waits", "try again in 3600 s"))
    assert f.hits == 1 and took < 30  # asked once, never slept the hour


# --- truncation and lengths -------------------------------------------------------------------


def test_truncated_blob_once_is_resumed(tmp_path: Path, fault_proxy: FaultProxy,
                                        big_package: PushedPackage) -> None:
    p = big_package  # a 15 MB base layer: the break comes after data was handed on
    fault_proxy.inject(Fault("truncate", where="blob", path=p.built.base_layer_digest or ""))
    assert_ok(_pull(tmp_path, fault_proxy, p), tmp_path, p)
    assert [s for r, s in _blob_gets(fault_proxy) if r] == [206]


def test_truncated_blob_without_range_support_restarts(
        tmp_path: Path, fault_proxy: FaultProxy, big_package: PushedPackage) -> None:
    p = big_package  # a 15 MB base layer: the break comes after data was handed on
    fault_proxy.inject(Fault("truncate", where="blob", path=p.built.base_layer_digest or ""),
                       Fault("no-range", where="blob", times=None))
    assert_ok(_pull(tmp_path, fault_proxy, p), tmp_path, p)
    assert [s for r, s in _blob_gets(fault_proxy) if r] == [200]  # asked for a range, got all


def test_resume_answered_with_the_wrong_range_restarts(
        tmp_path: Path, fault_proxy: FaultProxy, big_package: PushedPackage) -> None:
    """A 206 whose Content-Range is not the one asked for is not appended: the blob is taken
    whole instead."""
    p = big_package
    fault_proxy.inject(Fault("truncate", where="blob", path=p.built.base_layer_digest or ""),
                       Fault("range-off", where="blob", times=None))
    assert_ok(_pull(tmp_path, fault_proxy, p), tmp_path, p)
    gets = _blob_gets(fault_proxy)
    assert [s for r, s in gets if r] == [206] and gets[-1] == ("", 200), gets


def test_truncated_blob_always_says_cut_short(tmp_path: Path, fault_proxy: FaultProxy,
                                              packages: dict[str, PushedPackage]) -> None:
    p = packages["provider_kubernetes"]
    fault_proxy.inject(Fault("truncate", where="blob", times=None))
    assert_failed(_pull(tmp_path, fault_proxy, p), tmp_path,
                  says=("cut short",), never=("altered", "firewall"))
    assert_failed_json(_pull(tmp_path, fault_proxy, p, json_out=True), tmp_path, "truncated")


def test_content_length_above_the_body(tmp_path: Path, fault_proxy: FaultProxy,
                                       packages: dict[str, PushedPackage]) -> None:
    """The whole blob arrived (its descriptor's size and digest match): the lying header
    does not matter."""
    p = packages["configuration"]
    fault_proxy.inject(Fault("length", where="blob", delta=100, times=None))
    assert_ok(_pull(tmp_path, fault_proxy, p), tmp_path, p)


def test_content_length_below_the_body(tmp_path: Path, fault_proxy: FaultProxy,
                                       packages: dict[str, PushedPackage]) -> None:
    p = packages["configuration"]
    fault_proxy.inject(Fault("length", where="blob", delta=-10, times=None))
    assert_failed(_pull(tmp_path, fault_proxy, p), tmp_path,
                  says=("cut short",))


def test_non_ascii_content_length_on_head_falls_back_to_get(
        tmp_path: Path, fault_proxy: FaultProxy, packages: dict[str, PushedPackage]) -> None:
    p = packages["configuration"]
    fault_proxy.inject(Fault("length", where="manifest", methods=("HEAD",), value="²"))
    assert_ok(_pull(tmp_path, fault_proxy, p), tmp_path, p)


# --- slow and stuck servers ---------------------------------------------------------------------


def test_drip_headers_ends_at_the_deadline(tmp_path: Path, fault_proxy: FaultProxy,
                                           packages: dict[str, PushedPackage]) -> None:
    p = packages["configuration"]
    fault_proxy.inject(Fault("drip-headers", where="manifest", rate=20, times=None,
                             methods=("GET", "HEAD")))
    start = time.monotonic()
    res = _pull(tmp_path, fault_proxy, p, "--deadline", "2")
    took = time.monotonic() - start
    assert_failed(res, tmp_path,
                  says=("TCP connected", "within 2 s", "--deadline"), never=("firewall",))
    assert took < 20, took  # a hang guard, not a benchmark: ~2 s, not retried


def test_drip_blob_body_is_cut_at_the_floor(tmp_path: Path, fault_proxy: FaultProxy,
                                            packages: dict[str, PushedPackage]) -> None:
    p = packages["configuration"]
    fault_proxy.inject(Fault("drip-body", where="blob", rate=50, times=None))
    res = _pull(tmp_path, fault_proxy, p, "--min-rate", "1000", "--rate-window", "1")
    assert_failed(res, tmp_path, says=("below the floor of 1000 B/s",
                                                        "--min-rate"), never=("firewall",))


def test_drip_manifest_body_ends_at_the_deadline(tmp_path: Path, fault_proxy: FaultProxy,
                                                 packages: dict[str, PushedPackage]) -> None:
    p = packages["configuration"]
    fault_proxy.inject(Fault("drip-body", where="manifest", rate=50, times=None))
    res = _pull(tmp_path, fault_proxy, p, "--deadline", "2", json_out=True)
    doc = assert_failed_json(res, tmp_path, "stalled")
    assert "firewall" not in str(doc["fix"]) and "TCP connected" in str(doc["message"])


def test_server_that_accepts_and_never_answers(tmp_path: Path, fault_proxy: FaultProxy,
                                               packages: dict[str, PushedPackage]) -> None:
    p = packages["configuration"]
    [f] = fault_proxy.inject(Fault("stall", where="manifest", methods=("HEAD", "GET"),
                                   times=None))
    res = _pull(tmp_path, fault_proxy, p, "--deadline", "2")
    assert_failed(res, tmp_path,
                  says=("accepted the connection (TCP connected), then stalled",),
                  never=("firewall",))
    assert f.hits == 1  # a stall already cost a deadline: not retried


# --- redirects, digests, sizes, missing content ---------------------------------------------------


def test_redirect_loop(tmp_path: Path, fault_proxy: FaultProxy,
                       packages: dict[str, PushedPackage]) -> None:
    p = packages["configuration"]
    fault_proxy.inject(Fault("loop", where="blob", times=None))
    assert_failed(_pull(tmp_path, fault_proxy, p), tmp_path)


def test_wrong_docker_content_digest_on_get(tmp_path: Path, fault_proxy: FaultProxy,
                                            packages: dict[str, PushedPackage]) -> None:
    p = packages["configuration"]
    fault_proxy.reject_head = True  # the tag resolves through GET, which checks the header
    wrong = "sha256:" + "0" * 64
    [f] = fault_proxy.inject(Fault("digest", where="manifest", value=wrong, times=None))
    assert_failed(_pull(tmp_path, fault_proxy, p), tmp_path,
                  says=(wrong,))
    assert f.hits == 2  # tried once more, then reported


def test_wrong_docker_content_digest_on_head(tmp_path: Path, fault_proxy: FaultProxy,
                                             packages: dict[str, PushedPackage]) -> None:
    p = packages["configuration"]
    wrong = "sha256:" + "0" * 64
    fault_proxy.inject(Fault("digest", where="manifest", methods=("HEAD",), value=wrong,
                             times=None))
    assert_failed(_pull(tmp_path, fault_proxy, p), tmp_path, says=(wrong[:19], "404"))


@pytest.mark.parametrize("value", ["", "nolength"])
def test_oversized_manifest(value: str, tmp_path: Path, fault_proxy: FaultProxy,
                            packages: dict[str, PushedPackage]) -> None:
    p = packages["configuration"]
    fault_proxy.inject(Fault("oversize", where="manifest", value=value, times=None))
    assert_failed(_pull(tmp_path, fault_proxy, p), tmp_path,
                  says=("cap",))


def test_index_pointing_at_a_missing_manifest(tmp_path: Path, fault_proxy: FaultProxy,
                                              packages: dict[str, PushedPackage]) -> None:
    p = packages["two_platform_index"]
    child = p.built.platforms["linux/amd64"].manifest_digest
    fault_proxy.inject(Fault("missing", where="manifest", path=child, times=None))
    assert_failed(_pull(tmp_path, fault_proxy, p), tmp_path,
                  says=(child[:19],))
    assert_failed_json(_pull(tmp_path, fault_proxy, p, json_out=True), tmp_path, "not-found")


def test_corrupt_blob_once_is_fetched_again(tmp_path: Path, fault_proxy: FaultProxy,
                                            packages: dict[str, PushedPackage]) -> None:
    p = packages["provider_kubernetes"]
    [f] = fault_proxy.inject(Fault("corrupt", where="blob",
                                   path=p.built.base_layer_digest or ""))
    assert_ok(_pull(tmp_path, fault_proxy, p), tmp_path, p)
    assert f.hits == 1


def test_corrupt_blob_always(tmp_path: Path, fault_proxy: FaultProxy,
                             packages: dict[str, PushedPackage]) -> None:
    p = packages["provider_kubernetes"]
    [f] = fault_proxy.inject(Fault("corrupt", where="blob",
                                   path=p.built.base_layer_digest or "", times=None))
    assert_failed(_pull(tmp_path, fault_proxy, p), tmp_path,
                  says=("altered",), never=("cut short",))
    assert f.hits == 2  # once more from the start, then reported
    assert_failed_json(_pull(tmp_path, fault_proxy, p, json_out=True), tmp_path,
                       "digest-mismatch")


def test_corrupt_big_blob_always(tmp_path: Path, fault_proxy: FaultProxy,
                                 big_package: PushedPackage) -> None:
    """A 15 MB layer is hashed on a second thread (registry._Digester): a corrupted byte is
    still found, after the whole blob, and nothing is kept."""
    p = big_package
    [f] = fault_proxy.inject(Fault("corrupt", where="blob",
                                   path=p.built.base_layer_digest or "", times=None))
    assert_failed(_pull(tmp_path, fault_proxy, p), tmp_path,
                  says=("altered",), never=("cut short",))
    assert f.hits == 2


def test_corrupt_blob_from_a_mirror_is_fetched_from_the_upstream(
        tmp_path: Path, fault_proxy: FaultProxy, http_registry: Registry,
        packages: dict[str, PushedPackage]) -> None:
    """The retry after a digest mismatch goes to another source first: here the upstream,
    after a hosts.toml mirror (the FaultProxy) served a corrupt blob."""
    p = packages["provider_kubernetes"]
    hosts = tmp_path / "hosts" / http_registry.host
    hosts.mkdir(parents=True)
    (hosts / "hosts.toml").write_text(
        f'server = "http://{http_registry.host}"\n\n[host."http://{fault_proxy.host}"]\n'
        '  capabilities = ["pull", "resolve"]\n')
    [f] = fault_proxy.inject(Fault("corrupt", where="blob",
                                   path=p.built.base_layer_digest or "", times=None))
    res = _pull(tmp_path, fault_proxy, p, "--hosts-dir", str(tmp_path / "hosts"),
                ref=f"{http_registry.host}/{p.ref}")
    assert_ok(res, tmp_path, p)
    assert f.hits == 1  # the mirror once; the second fetch went to the upstream


def test_corrupt_manifest_by_digest(tmp_path: Path, fault_proxy: FaultProxy,
                                    packages: dict[str, PushedPackage]) -> None:
    p = packages["configuration"]
    [f] = fault_proxy.inject(Fault("corrupt", where="manifest", times=None))
    ref = f"{fault_proxy.host}/{p.repo}@{p.built.manifest_digest}"
    assert_failed(_pull(tmp_path, fault_proxy, p, ref=ref), tmp_path)
    assert f.hits == 2


# --- the documented bounds, with the default settings (slow: CROSSFETCH_SLOW_TESTS=1) ---------

slow = pytest.mark.skipif(not os.environ.get("CROSSFETCH_SLOW_TESTS"),
                          reason="default bounds take ~30 s each; set CROSSFETCH_SLOW_TESTS=1")


@slow
@pytest.mark.parametrize("fault", [
    Fault("stall", where="manifest", methods=("HEAD", "GET"), times=None),
    Fault("drip-headers", where="manifest", methods=("HEAD", "GET"), rate=1, times=None),
    Fault("drip-body", where="manifest", rate=1, times=None),
    Fault("drip-headers", where="blob", rate=1, times=None),
    Fault("drip-body", where="blob", rate=1, times=None),
], ids=["stall", "drip-manifest-headers", "drip-manifest-body", "drip-blob-headers",
        "drip-blob-body"])
def test_default_bounds(fault: Fault, tmp_path: Path, fault_proxy: FaultProxy,
                        packages: dict[str, PushedPackage]) -> None:
    """Each hang ends within the default deadline (30 s) or floor window (30 s), plus the
    time to get there; prints the measured time for docs/reliability.md."""
    p = packages["configuration"]
    fault_proxy.inject(fault)
    start = time.monotonic()
    res = _pull(tmp_path, fault_proxy, p, retries=3)
    took = time.monotonic() - start
    print(f"\n{fault.kind} {fault.where}: {took:.1f} s")
    assert_failed(res, tmp_path, says=("stalled",), never=("firewall",))
    assert took < 40, took
