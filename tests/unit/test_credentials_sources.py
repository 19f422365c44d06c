"""Credential sources: order, Docker-style host matching, pull secrets, Docker config, helpers
(the real test helper executable), describe() without side effects, and redaction."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

import pytest

from crossfetch.errors import AuthError, ConfigError
from crossfetch.policy.credentials import keychain_provider, redact
from crossfetch.policy.credhelpers import run_helper
from crossfetch.policy.dockerconfig import load_pull_secret_file, match_auths
from crossfetch.policy.hosts import normalize_host
from crossfetch.policy.model import Credential, Keychain
from crossfetch.policy.objects import ObjectSet
from crossfetch.policy.resolver import Policy
from crossfetch.reference import Reference

HELPER_DIR = Path(__file__).resolve().parents[1] / "support" / "bin"
REG = "registry.example:5000"


def b64(s: str) -> str:
    return base64.b64encode(s.encode()).decode()


def auths(host: str, user: str = "u", pw: str = "p", **extra: str) -> dict[str, object]:
    return {"auths": {host: {"auth": b64(f"{user}:{pw}"), **extra}}}


def secret_yaml(name: str, doc: dict[str, object]) -> str:
    return (f"apiVersion: v1\nkind: Secret\nmetadata: {{name: {name}}}\n"
            f"type: kubernetes.io/dockerconfigjson\n"
            f"data:\n  .dockerconfigjson: {b64(json.dumps(doc))}\n")


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    d = tmp_path / "docker"
    d.mkdir()
    return {"DOCKER_CONFIG": str(d), "PATH": f"{HELPER_DIR}{os.pathsep}{os.defpath}",
            "CROSSFETCH_TEST_HELPER_LOG": str(tmp_path / "helper.log"),
            "CROSSFETCH_TEST_HELPER_DB": str(tmp_path / "db.json")}


def docker_config(env: dict[str, str], doc: dict[str, object]) -> None:
    (Path(env["DOCKER_CONFIG"]) / "config.json").write_text(json.dumps(doc))


def keychain(objects: ObjectSet | None = None, ref: str = f"{REG}/team/app:v1", *,
             files: tuple[str, ...] = (), user: str | None = None, pw: str | None = None,
             env: dict[str, str]) -> Keychain:
    policy = Policy(objects=objects or ObjectSet())
    policy.keychains = keychain_provider(policy.objects, pull_secret_files=files, username=user,
                                         password=pw, env=env)
    kc = policy.decide(Reference.parse(ref)).auth.keychain
    assert kc is not None
    return kc


# -- host matching ----------------------------------------------------------------------------


@pytest.mark.parametrize("key", [REG, f"https://{REG}", f"http://{REG}/v1/", f"{REG}/v2/",
                                 f"HTTPS://{REG.upper()}"])
def test_docker_style_keys_match_the_host(key: str) -> None:
    assert normalize_host(key) == REG.lower()
    assert match_auths({key: {}}, REG) == key


def test_host_without_port_does_not_match_host_with_port() -> None:
    assert match_auths({"registry.example": {}}, REG) is None


def test_docker_hub_aliases() -> None:
    key = "https://index.docker.io/v1/"
    for host in ("docker.io", "index.docker.io", "registry-1.docker.io"):
        assert match_auths({key: {}}, host) == key


def test_kubelet_style_wildcards_and_paths_for_pull_secrets() -> None:
    keys: dict[str, object] = {"*.example.com": {}, "reg.example.com/team": {},
                               "reg.example.com": {}}
    assert match_auths(keys, "reg.example.com", "team/app", kubelet=True) == \
        "reg.example.com/team"
    assert match_auths(keys, "reg.example.com", "other/app", kubelet=True) == "reg.example.com"
    assert match_auths(keys, "x.example.com", "a", kubelet=True) == "*.example.com"
    assert match_auths(keys, "a.b.example.com", "a", kubelet=True) is None
    assert match_auths(keys, "x.example.com", "a") is None  # Docker config: no wildcards


# -- order of sources -------------------------------------------------------------------------


def test_order_flag_then_imageconfig_secret_then_files_then_docker(tmp_path: Path,
                                                                   env: dict[str, str]) -> None:
    docker_config(env, auths(REG, "docker"))
    f = tmp_path / "file.json"
    f.write_text(json.dumps(auths(REG, "file")))
    objects = ObjectSet()
    objects.add_text(
        "apiVersion: pkg.crossplane.io/v1beta1\nkind: ImageConfig\nmetadata: {name: ic}\n"
        f"spec:\n  matchImages: [{{prefix: '{REG}/'}}]\n"
        "  registry: {authentication: {pullSecretRef: {name: s}}}\n---\n"
        + secret_yaml("s", auths(REG, "secret")))

    def who(**kw: object) -> str | None:
        cred = keychain(env=env, **kw).resolve(REG)  # type: ignore[arg-type]
        return cred.username if cred else None

    assert who(objects=objects, files=(str(f),), user="flag", pw="x") == "flag"
    assert who(objects=objects, files=(str(f),)) == "secret"
    assert who(files=(str(f),)) == "file"
    assert who() == "docker"
    kc = keychain(objects=objects, env=env)
    src = kc.describe(REG)
    assert src is not None and src.kind == "secret" and "ImageConfig ic" in src.name


def test_flag_credentials_only_for_the_references_registry(env: dict[str, str]) -> None:
    kc = keychain(user="alice", pw="pw", env=env)
    assert kc.resolve(REG) is not None
    assert kc.resolve("mirror.example") is None
    assert kc.describe("mirror.example") is None


def test_pull_secret_is_matched_against_the_rewritten_reference(env: dict[str, str]) -> None:
    objects = ObjectSet()
    objects.add_text(
        "apiVersion: pkg.crossplane.io/v1beta1\nkind: ImageConfig\nmetadata: {name: rw}\n"
        "spec:\n  matchImages: [{prefix: 'xpkg.upbound.io/'}]\n"
        f"  rewriteImage: {{prefix: '{REG}/mirror/'}}\n---\n"
        "apiVersion: pkg.crossplane.io/v1beta1\nkind: ImageConfig\nmetadata: {name: auth}\n"
        f"spec:\n  matchImages: [{{prefix: '{REG}/mirror/'}}]\n"
        "  registry: {authentication: {pullSecretRef: {name: s}}}\n---\n"
        + secret_yaml("s", auths(REG, "mirror-user")))
    kc = keychain(objects, "xpkg.upbound.io/team/app:v1", env=env)
    cred = kc.resolve(REG)
    assert cred is not None and cred.username == "mirror-user"


def test_missing_pull_secret_is_a_config_error(env: dict[str, str]) -> None:
    objects = ObjectSet()
    objects.add_text(
        "apiVersion: pkg.crossplane.io/v1beta1\nkind: ImageConfig\nmetadata: {name: ic}\n"
        f"spec:\n  matchImages: [{{prefix: '{REG}/'}}]\n"
        "  registry: {authentication: {pullSecretRef: {name: nope}}}\n")
    with pytest.raises(ConfigError) as info:
        keychain(objects, env=env)
    assert "nope" in str(info.value) and "kubectl create secret docker-registry" in str(info.value)


def test_anonymous_when_nothing_is_configured(env: dict[str, str]) -> None:
    kc = keychain(env=env)
    assert kc.resolve(REG) is None and kc.describe(REG) is None


def test_an_oversized_docker_config_is_refused_not_read(env: dict[str, str]) -> None:
    big = {"auths": {REG: {"auth": b64("alice:pw")}}, "pad": "x" * (5 * 1024 * 1024)}
    docker_config(env, big)
    with pytest.raises(ConfigError) as info:
        keychain(env=env).resolve(REG)
    assert "larger than 4 MiB" in str(info.value) and info.value.fix


# -- pull secret files ------------------------------------------------------------------------


def test_pull_secret_file_forms(tmp_path: Path) -> None:
    y = tmp_path / "s.yaml"
    y.write_text(secret_yaml("regcred", auths(REG, "y")))
    j = tmp_path / "config.json"
    j.write_text(json.dumps(auths(REG, "j", identitytoken="idt")))
    cy = load_pull_secret_file(y).resolve(REG, "")
    cj = load_pull_secret_file(j).resolve(REG, "")
    assert cy is not None and cy.username == "y" and cy.source.kind == "pull-secret"
    assert cj is not None and cj.identity_token == "idt"


@pytest.mark.parametrize("content,expect", [
    ("{not json", "invalid JSON"),
    ("apiVersion: v1\nkind: Secret\nmetadata: {name: s}\ntype: Opaque\n", "kubernetes.io/"),
    ('{"auths": {"h": {"auth": "!!!"}}}', None),
    ("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n", "exactly one Secret"),
])
def test_bad_pull_secret_files_are_config_errors(tmp_path: Path, content: str,
                                                 expect: str | None) -> None:
    p = tmp_path / "bad"
    p.write_text(content)
    with pytest.raises(ConfigError) as info:
        load_pull_secret_file(p).resolve("h", "")
    if expect:
        assert expect in str(info.value)


def test_bad_auth_field_error_shows_no_value(tmp_path: Path) -> None:
    p = tmp_path / "c.json"
    p.write_text(json.dumps({"auths": {"h": {"auth": b64("no-colon-secret")}}}))
    with pytest.raises(ConfigError) as info:
        load_pull_secret_file(p).resolve("h", "")
    assert "no-colon-secret" not in str(info.value)


def test_missing_pull_secret_file_fails_early(tmp_path: Path, env: dict[str, str]) -> None:
    with pytest.raises(ConfigError):
        keychain_provider(ObjectSet(), pull_secret_files=[str(tmp_path / "missing")], env=env)


# -- Docker config and helpers ----------------------------------------------------------------


def test_docker_config_identity_token_and_empty_markers(env: dict[str, str]) -> None:
    docker_config(env, {"auths": {REG: {"identitytoken": "idt-1"}, "empty.example": {}}})
    kc = keychain(env=env)
    cred = kc.resolve(REG)
    assert cred is not None and cred.identity_token == "idt-1" and cred.password is None
    assert kc.resolve("empty.example") is None


def test_cred_helpers_beat_creds_store_and_describe_runs_nothing(tmp_path: Path,
                                                                 env: dict[str, str]) -> None:
    Path(env["CROSSFETCH_TEST_HELPER_DB"]).write_text(json.dumps(
        {REG: {"Username": "helper-user", "Secret": "helper-pw"},
         "other.example": {"Username": "<token>", "Secret": "refresh-tok"}}))
    docker_config(env, {"auths": {REG: {"auth": b64("file:pw")}},
                        "credsStore": "crossfetch-test",
                        "credHelpers": {REG: "crossfetch-test"}})
    kc = keychain(env=env)
    src = kc.describe(REG)
    assert src is not None and src.kind == "credential-helper"
    assert "credHelpers" in src.name
    assert not (tmp_path / "helper.log").exists()  # describe ran no helper
    cred = kc.resolve(REG)
    assert cred is not None and cred.username == "helper-user" and cred.password == "helper-pw"
    tok = kc.resolve("other.example")  # via credsStore; "<token>" means an identity token
    assert tok is not None and tok.identity_token == "refresh-tok" and tok.username is None
    kc.resolve(REG)
    assert (tmp_path / "helper.log").read_text().splitlines() == [
        f"get {REG}", "get other.example"]  # each asked once


def test_helper_not_found_answer_means_no_credentials(env: dict[str, str]) -> None:
    Path(env["CROSSFETCH_TEST_HELPER_DB"]).write_text("{}")
    assert run_helper("crossfetch-test", REG, env=env) is None


def test_docker_hub_helper_gets_the_index_url(tmp_path: Path, env: dict[str, str]) -> None:
    Path(env["CROSSFETCH_TEST_HELPER_DB"]).write_text(json.dumps(
        {"https://index.docker.io/v1/": {"Username": "hub", "Secret": "x"}}))
    cred = run_helper("crossfetch-test", "registry-1.docker.io", env=env)
    assert cred is not None and cred.username == "hub"


def test_missing_and_failing_helpers_are_auth_errors(env: dict[str, str]) -> None:
    with pytest.raises(AuthError) as missing:
        run_helper("no-such-helper", REG, env=env)
    assert missing.value.cause == "credential-helper-missing"
    assert "docker-credential-no-such-helper" in str(missing.value)
    with pytest.raises(AuthError) as failing:
        run_helper("crossfetch-test", REG, env={**env, "CROSSFETCH_TEST_HELPER_FAIL": "1"})
    assert failing.value.cause == "credential-helper-failed"
    assert "keyring is locked" in str(failing.value)
    with pytest.raises(AuthError):
        run_helper("../../bin/sh", REG, env=env)


def test_unreadable_docker_config_only_matters_when_asked(env: dict[str, str]) -> None:
    (Path(env["DOCKER_CONFIG"]) / "config.json").write_text("{broken")
    kc = keychain(env=env)  # building the keychain reads nothing
    with pytest.raises(ConfigError):
        kc.resolve(REG)


# -- redaction --------------------------------------------------------------------------------


def test_redact_replaces_secrets_and_their_base64() -> None:
    text = f"got pw=hunter22 and header Basic {b64('alice:hunter22')} and {b64('hunter22')}"
    out = redact(text, ["hunter22", b64("alice:hunter22"), None, ""])
    assert "hunter22" not in out and b64("alice:hunter22") not in out
    assert b64("hunter22").rstrip("=") not in out
    assert out.count("***") == 3


def test_credential_repr_never_shows_values() -> None:
    c = Credential(username="u", password="pw-123", identity_token="idt-456",
                   registry_token="rt-789")
    for text in (repr(c), str(c), f"{c!r}"):
        assert "pw-123" not in text and "idt-456" not in text and "rt-789" not in text


@pytest.mark.parametrize("name", ["pass\n", "../evil", "a b", "", "-x"])
def test_a_helper_name_must_be_a_plain_name(name: str) -> None:
    from crossfetch.errors import AuthError

    with pytest.raises(AuthError, match="not a plain name"):
        run_helper(name, REG, env={})
