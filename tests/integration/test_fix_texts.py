"""The fix texts issue 10 lists as misleading, each reproduced as a new user met it, and the
text that replaced it. Each test fails on the text it replaces."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.integration.conftest import TEST_PASSWORD, TEST_USER, PushedPackage
from tests.support.certs import PKI
from tests.support.cli import CliResult, invoke
from tests.support.registry import Registry

FN = "function_with_runtime"


def run(*args: str, input: str | None = None, env: dict[str, str] | None = None) -> CliResult:
    return invoke([*args, "--no-node-config", "--retries", "0", "--timeout", "5"], input=input,
                  env=env)


def error(r: CliResult) -> dict[str, object]:
    out: dict[str, object] = json.loads(r.stdout)
    assert out["ok"] is False
    return out


# -- a reference that is not one ----------------------------------------------------------------


@pytest.mark.parametrize("ref", [":", "/tmp/x.yaml", "./fn.xpkg", "pkg.yaml"])
def test_a_non_reference_is_not_glued_to_a_registry(ref: str) -> None:
    for cmd in ("pull", "doctor"):
        r = run(cmd, ref, "-O", "json")
        text = json.dumps(json.loads(r.stdout))
        # was: "write the registry host, e.g. xpkg.crossplane.io/:" (or //tmp/x.yaml)
        assert f"xpkg.crossplane.io/{ref}" not in text, (cmd, text)
        assert "registry.example.com/org/pkg:v1.0.0" in text or "crossfetch push" in text


def test_a_file_path_is_named_as_one() -> None:
    r = run("pull", "/tmp/x.yaml", "-O", "json")
    fix = str(error(r)["fix"])
    assert "looks like a file" in fix and "crossfetch push -f /tmp/x.yaml" in fix


def test_a_short_name_still_gets_the_qualified_suggestion() -> None:
    fix = str(error(run("pull", "org/fn:v1", "-O", "json"))["fix"])
    assert "xpkg.crossplane.io/org/fn:v1" in fix


@pytest.mark.parametrize("ref", [":", "https://reg.example/x:v1", "reg.example/UPPER:v1"])
def test_an_invalid_reference_exits_2_from_pull_and_doctor(ref: str) -> None:
    # was: pull 2, doctor 1
    assert run("pull", ref).exit_code == 2
    assert run("doctor", ref).exit_code == 2
    assert run("doctor", ref, "-O", "json").exit_code == 2


# -- 404s ----------------------------------------------------------------------------------------


def test_tags_of_a_missing_repository_does_not_suggest_tags(
        https_registry: Registry, pki: PKI, packages: dict[str, PushedPackage]) -> None:
    r = run("tags", https_registry.ref("nope/missing"), "--ca-bundle", str(pki.ca_cert),
            "-O", "json")
    err = error(r)
    assert r.exit_code == 1 and err["cause"] == "not-found"
    # was: "check the repository and tag (crossfetch tags REF lists tags)"
    assert "crossfetch tags" not in str(err["fix"])
    assert "nope/missing" in str(err["fix"])


def test_a_missing_tag_names_the_command_with_the_real_repository(
        https_registry: Registry, pki: PKI, packages: dict[str, PushedPackage]) -> None:
    repo = packages[FN].ref.split(":")[0]
    r = run("pull", https_registry.ref(f"{repo}:v9.9.9"), "--ca-bundle", str(pki.ca_cert),
            "-O", "json")
    err = error(r)
    assert err["cause"] == "not-found"
    assert f"crossfetch tags {https_registry.host}/{repo}" in str(err["fix"])


def test_doctor_does_not_suggest_tags_on_a_repository_it_found_missing(
        https_registry: Registry, pki: PKI, packages: dict[str, PushedPackage]) -> None:
    r = run("doctor", https_registry.ref("nope/missing:v1"), "--ca-bundle", str(pki.ca_cert),
            "-O", "json")
    report = json.loads(r.stdout)
    [head] = [c for c in report["checks"] if c["name"] == "manifest" and c["method"] == "HEAD"]
    assert head["cause"] == "not-found" and "is not there either" in head["fix"]
    assert "crossfetch tags" not in head["fix"]


# -- credentials ---------------------------------------------------------------------------------


def test_a_wrong_password_on_stdin_is_not_blamed_on_docker_login(
        basic_auth_registry: Registry, pki: PKI, packages: dict[str, PushedPackage],
        tmp_path: Path) -> None:
    r = run("pull", basic_auth_registry.ref(packages[FN].ref), "--ca-bundle", str(pki.ca_cert),
            "--cache-dir", str(tmp_path), "--username", TEST_USER, "--password-stdin",
            "-O", "json", input=TEST_PASSWORD + "-wrong\n")
    err = error(r)
    assert err["cause"] == "credentials-rejected"
    # was: "check the user name and password (docker login again if they changed)"
    assert "docker login" not in str(err["fix"])
    assert "--password-stdin" in str(err["fix"]) and TEST_USER in str(err["fix"])


# -- CA_BUNDLE_PATH -------------------------------------------------------------------------------


def test_a_bad_ca_bundle_path_is_blamed_on_the_variable(tmp_path: Path) -> None:
    missing = tmp_path / "nope.crt"
    r = invoke(["policy", "explain", "reg.example/x:v1", "-O", "json"],
               env={"CA_BUNDLE_PATH": str(missing)})
    err = error(r)
    assert r.exit_code == 2 and str(missing) in str(err["message"])
    # was: "check the path given by flag --ca-bundle"
    assert "CA_BUNDLE_PATH" in str(err["fix"]) and "--ca-bundle" not in str(err["fix"])
    r = invoke(["policy", "explain", "reg.example/x:v1", "--ca-bundle", str(missing), "-O",
                "json"], env={"CA_BUNDLE_PATH": str(missing)})
    assert "--ca-bundle" in str(error(r)["fix"])  # the flag wins, and is named


# -- trust on a plain-HTTP port ------------------------------------------------------------------


def test_trust_on_a_plain_http_port_says_it_speaks_http(http_registry: Registry) -> None:
    r = invoke(["trust", http_registry.host, "-O", "json"])
    err = error(r)
    # was: "TLS handshake with 127.0.0.1:PORT failed: WRONG_VERSION_NUMBER"
    assert "WRONG_VERSION_NUMBER" not in str(err["message"])
    assert err["cause"] == "plain-http" and "plain HTTP" in str(err["message"])
    assert "mode: Disabled" in str(err["fix"])  # what a plain-HTTP registry needs instead
