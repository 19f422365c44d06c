"""Each credential source against the real registry with htpasswd auth, over HTTPS and plain HTTP.

Runs ``crossfetch pull`` end to end (a real subprocess, a real credential helper on PATH) and
checks that secrets never show up in what the CLI prints.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.conftest import TEST_PASSWORD, TEST_USER, PushedPackage
from tests.support.certs import PKI
from tests.support.registry import Registry

CLI = [sys.executable, "-m", "crossfetch.cli.main"]
HELPER_DIR = Path(__file__).resolve().parents[1] / "support" / "bin"
HELPER = "crossfetch-test"
WRONG_PASSWORD = "wr0ng-pa55word-XYZ"


def run(*args: str, env: dict[str, str], stdin: str | None = None,
        cache: Path | None = None) -> subprocess.CompletedProcess[str]:
    extra = ["--cache-dir", str(cache)] if cache and args[0] in ("pull", "inspect") else []
    return subprocess.run([*CLI, *args, *extra, "--no-node-config", "--retries", "0"],
                          capture_output=True, text=True, input=stdin, env=env, timeout=120,
                          check=False)


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def dockerconfig(host: str, user: str = TEST_USER, password: str = TEST_PASSWORD) -> str:
    return json.dumps({"auths": {host: {"auth": b64(f"{user}:{password}")}}})


def secret_yaml(name: str, host: str, password: str = TEST_PASSWORD) -> str:
    return ("apiVersion: v1\nkind: Secret\n"
            f"metadata: {{name: {name}, namespace: crossplane-system}}\n"
            "type: kubernetes.io/dockerconfigjson\n"
            f"data:\n  .dockerconfigjson: {b64(dockerconfig(host, password=password))}\n")


def imageconfig(prefix: str, *, pull_secret: str | None = None, mode: str | None = None,
                allow_http_credentials: bool = False, name: str = "auth-test") -> str:
    reg = "  registry:\n"
    if pull_secret or allow_http_credentials:
        reg += "    authentication:\n"
        if pull_secret:
            reg += f"      pullSecretRef: {{name: {pull_secret}}}\n"
        if allow_http_credentials:
            reg += "      allowCredentialsOverPlainHTTP: true\n"
    if mode:
        reg += f"    tls: {{mode: {mode}}}\n"
    return ("apiVersion: pkg.crossplane.io/v1beta1\nkind: ImageConfig\n"
            f"metadata: {{name: {name}}}\n"
            f"spec:\n  matchImages: [{{type: Prefix, prefix: '{prefix}'}}]\n{reg}")


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """A clean environment: an empty Docker config dir and the test helper on PATH."""
    docker = tmp_path / "docker"
    docker.mkdir()
    out = {k: v for k, v in os.environ.items() if not k.startswith(("DOCKER_", "CROSSFETCH_"))}
    out.update({"DOCKER_CONFIG": str(docker), "CROSSFETCH_NO_PROGRESS": "1",
                "PATH": f"{HELPER_DIR}{os.pathsep}{os.environ.get('PATH', '')}",
                "CROSSFETCH_TEST_HELPER_LOG": str(tmp_path / "helper.log")})
    return out


def helper_db(tmp_path: Path, env: dict[str, str], entries: dict[str, tuple[str, str]]) -> Path:
    db = tmp_path / "helper-db.json"
    db.write_text(json.dumps({k: {"Username": u, "Secret": s} for k, (u, s) in entries.items()}))
    env["CROSSFETCH_TEST_HELPER_DB"] = str(db)
    return db


def helper_calls(tmp_path: Path) -> list[str]:
    log = tmp_path / "helper.log"
    return log.read_text().splitlines() if log.exists() else []


def assert_no_secret(r: subprocess.CompletedProcess[str], *secrets: str) -> None:
    for s in secrets:
        for text in (r.stdout, r.stderr):
            assert s not in text
            assert b64(f"{TEST_USER}:{s}") not in text


@pytest.fixture(scope="module")
def plain_basic_registry(testbed_dir: Path, registry_storage: Path) -> Iterator[Registry]:
    """Plain HTTP with htpasswd auth (the conftest has only the HTTPS one)."""
    with Registry(testbed_dir, htpasswd={TEST_USER: TEST_PASSWORD},
                  storage=registry_storage) as reg:
        yield reg


@pytest.fixture
def pkg(packages: dict[str, PushedPackage]) -> PushedPackage:
    return packages["configuration"]


# -- htpasswd over HTTPS, every source --------------------------------------------------------


SOURCES = ["flags", "imageconfig-pull-secret", "pull-secret-yaml", "pull-secret-json",
           "docker-config-auths", "docker-config-credhelpers", "docker-config-credsstore"]


@pytest.mark.parametrize("source", SOURCES)
def test_htpasswd_https_each_source(source: str, tmp_path: Path, env: dict[str, str],
                                    basic_auth_registry: Registry, pki: PKI,
                                    pkg: PushedPackage) -> None:
    host = basic_auth_registry.host
    ref = basic_auth_registry.ref(pkg.ref)
    args = ["pull", ref, "--ca-bundle", str(pki.ca_cert), "-o", str(tmp_path / "p.yaml"),
            "-O", "json"]
    stdin = None
    if source == "flags":
        args += ["--username", TEST_USER, "--password-stdin"]
        stdin = TEST_PASSWORD + "\n"
    elif source == "imageconfig-pull-secret":
        cfg = tmp_path / "policy.yaml"
        cfg.write_text(imageconfig(f"{host}/", pull_secret="regcred") + "---\n"
                       + secret_yaml("regcred", host))
        args += ["--config", str(cfg)]
    elif source == "pull-secret-yaml":
        (tmp_path / "secret.yaml").write_text(secret_yaml("regcred", f"https://{host}"))
        args += ["--pull-secret", str(tmp_path / "secret.yaml")]
    elif source == "pull-secret-json":
        (tmp_path / "dockerconfig.json").write_text(dockerconfig(host))
        # an unrelated file first: the files are searched in order
        (tmp_path / "other.json").write_text(dockerconfig("other.example:5000"))
        args += ["--pull-secret", str(tmp_path / "other.json"),
                 "--pull-secret", str(tmp_path / "dockerconfig.json")]
    else:
        cfg_path = Path(env["DOCKER_CONFIG"]) / "config.json"
        if source == "docker-config-auths":
            cfg_path.write_text(dockerconfig(f"https://{host}/v1/"))
        else:
            helper_db(tmp_path, env, {host: (TEST_USER, TEST_PASSWORD)})
            key = "credHelpers" if source == "docker-config-credhelpers" else "credsStore"
            value: object = {host: HELPER} if key == "credHelpers" else HELPER
            cfg_path.write_text(json.dumps({"auths": {}, key: value}))
    r = run(*args, env=env, stdin=stdin, cache=tmp_path / "cache")
    assert r.returncode == 0, r.stderr + r.stdout
    assert (tmp_path / "p.yaml").read_bytes() == pkg.built.package_yaml
    assert json.loads(r.stdout)["digest"] == pkg.built.manifest_digest
    if source.startswith("docker-config-cred"):
        assert helper_calls(tmp_path) == [f"get {host}"]  # run once, then remembered
    assert_no_secret(r, TEST_PASSWORD)


def test_htpasswd_without_credentials_says_how_to_give_them(
        tmp_path: Path, env: dict[str, str], basic_auth_registry: Registry, pki: PKI,
        pkg: PushedPackage) -> None:
    r = run("head", basic_auth_registry.ref(pkg.ref), "--ca-bundle", str(pki.ca_cert),
            "-O", "json", env=env)
    assert r.returncode == 1
    err = json.loads(r.stdout)
    assert err["error"] == "Unauthorized"
    assert "--pull-secret" in err["fix"] and "docker login" in err["fix"]


@pytest.mark.parametrize("output", ["text", "json"])
def test_wrong_password_names_the_source_and_never_shows_it(
        output: str, tmp_path: Path, env: dict[str, str], basic_auth_registry: Registry,
        pki: PKI, pkg: PushedPackage) -> None:
    (tmp_path / "s.yaml").write_text(secret_yaml("badcred", basic_auth_registry.host,
                                                 WRONG_PASSWORD))
    r = run("pull", basic_auth_registry.ref(pkg.ref), "--ca-bundle", str(pki.ca_cert),
            "--pull-secret", str(tmp_path / "s.yaml"), "-O", output, env=env,
            cache=tmp_path / "c")
    assert r.returncode == 1
    text = r.stdout + r.stderr
    assert "rejected" in text and "s.yaml" in text
    assert "Traceback" not in text
    assert_no_secret(r, WRONG_PASSWORD)


# -- htpasswd over plain HTTP: refused unless opted in -------------------------------------------


def test_plain_http_credentials_refused_by_default(
        tmp_path: Path, env: dict[str, str], plain_basic_registry: Registry,
        pkg: PushedPackage) -> None:
    host = plain_basic_registry.host
    cfg = tmp_path / "policy.yaml"
    cfg.write_text(imageconfig(f"{host}/", mode="Disabled"))
    mark = plain_basic_registry.mark()
    r = run("pull", plain_basic_registry.ref(pkg.ref), "--config", str(cfg), "--username",
            TEST_USER, "--password-stdin", "-O", "json", env=env, stdin=TEST_PASSWORD,
            cache=tmp_path / "c")
    assert r.returncode == 1, r.stdout
    err = json.loads(r.stdout)
    assert err["error"] == "PolicyRefused" and err["cause"] == "plain-http-credentials"
    assert "--allow-plain-http-credentials" in err["fix"]
    assert "allowCredentialsOverPlainHTTP: true" in err["fix"]
    assert_no_secret(r, TEST_PASSWORD)
    # Only the anonymous attempt reached the registry: it was answered 401 and nothing
    # carrying credentials followed.
    assert {e.status for e in plain_basic_registry.requests(since=mark)} == {401}


@pytest.mark.parametrize("opt_in", ["flag", "imageconfig"])
def test_plain_http_credentials_with_opt_in(
        opt_in: str, tmp_path: Path, env: dict[str, str], plain_basic_registry: Registry,
        pkg: PushedPackage) -> None:
    host = plain_basic_registry.host
    cfg = tmp_path / "policy.yaml"
    cfg.write_text(imageconfig(f"{host}/", mode="Disabled",
                               allow_http_credentials=opt_in == "imageconfig"))
    extra = ["--allow-plain-http-credentials"] if opt_in == "flag" else []
    out = tmp_path / "p.yaml"
    r = run("pull", plain_basic_registry.ref(pkg.ref), "--config", str(cfg), *extra,
            "--username", TEST_USER, "--password-stdin", "-o", str(out), env=env,
            stdin=TEST_PASSWORD, cache=tmp_path / "c")
    assert r.returncode == 0, r.stderr
    assert out.read_bytes() == pkg.built.package_yaml


# -- credential helpers -------------------------------------------------------------------------


def test_missing_helper_is_a_clear_error_not_anonymous(
        tmp_path: Path, env: dict[str, str], basic_auth_registry: Registry, pki: PKI,
        pkg: PushedPackage) -> None:
    (Path(env["DOCKER_CONFIG"]) / "config.json").write_text(
        json.dumps({"credsStore": "does-not-exist"}))
    r = run("head", basic_auth_registry.ref(pkg.ref), "--ca-bundle", str(pki.ca_cert),
            "-O", "json", env=env)
    assert r.returncode == 1
    err = json.loads(r.stdout)
    assert err["error"] == "AuthError" and err["cause"] == "credential-helper-missing"
    assert "docker-credential-does-not-exist" in err["message"]
    assert "PATH" in err["fix"]


def test_failing_helper_is_a_clear_error(tmp_path: Path, env: dict[str, str],
                                         basic_auth_registry: Registry, pki: PKI,
                                         pkg: PushedPackage) -> None:
    helper_db(tmp_path, env, {})
    env["CROSSFETCH_TEST_HELPER_FAIL"] = "1"
    (Path(env["DOCKER_CONFIG"]) / "config.json").write_text(
        json.dumps({"credHelpers": {basic_auth_registry.host: HELPER}}))
    r = run("head", basic_auth_registry.ref(pkg.ref), "--ca-bundle", str(pki.ca_cert),
            env=env)
    assert r.returncode == 1
    assert "docker-credential-crossfetch-test failed" in r.stderr
    assert "keyring is locked" in r.stderr


def test_helper_without_entry_means_anonymous_and_registry_says_401(
        tmp_path: Path, env: dict[str, str], basic_auth_registry: Registry, pki: PKI,
        pkg: PushedPackage) -> None:
    helper_db(tmp_path, env, {"elsewhere.example": (TEST_USER, TEST_PASSWORD)})
    (Path(env["DOCKER_CONFIG"]) / "config.json").write_text(json.dumps({"credsStore": HELPER}))
    r = run("head", basic_auth_registry.ref(pkg.ref), "--ca-bundle", str(pki.ca_cert),
            "-O", "json", env=env)
    assert r.returncode == 1
    assert json.loads(r.stdout)["error"] == "Unauthorized"


def test_anonymous_registry_never_runs_a_helper(
        tmp_path: Path, env: dict[str, str], https_registry: Registry, pki: PKI,
        pkg: PushedPackage) -> None:
    """A broken credsStore does not matter where no registry asks for credentials."""
    (Path(env["DOCKER_CONFIG"]) / "config.json").write_text(
        json.dumps({"credsStore": "does-not-exist"}))
    out = tmp_path / "p.yaml"
    r = run("pull", https_registry.ref(pkg.ref), "--ca-bundle", str(pki.ca_cert), "-o",
            str(out), env=env, cache=tmp_path / "c")
    assert r.returncode == 0, r.stderr
    assert out.read_bytes() == pkg.built.package_yaml
