"""``pull --as-crossplane`` and doctor's Crossplane verdict against real registries.

The session's plain-HTTP ``docker-registry`` (bound on 127.0.0.1) is reached as ``localhost``
and ``127.0.0.1`` (go-containerregistry tries HTTPS, then HTTP, for both); a second instance on
the same storage, bound on 127.0.0.2 (loopback only, never 0.0.0.0), serves the same packages
as ``127.0.0.2`` (not in the rule: HTTPS only). Crossplane v2 refuses ``localhost:PORT/...``
outright (the CEL rule on ``spec.package`` wants a dot in the registry host), so the
``localhost`` case runs with the v1.20 profile and v2 is checked to refuse it.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from crossfetch.crossplane.profile import SUPPORTED
from tests.integration.conftest import PushedPackage
from tests.support.certs import PKI
from tests.support.cli import CliResult, invoke
from tests.support.registry import Registry

FN = "function_with_runtime"


@pytest.fixture(scope="module")
def second_loopback_registry(testbed_dir: Path, registry_storage: Path,
                             packages: dict[str, PushedPackage]) -> Iterator[Registry]:
    """Plain HTTP on 127.0.0.2, serving the session's packages."""
    with Registry(testbed_dir, host="127.0.0.2", storage=registry_storage) as reg:
        yield reg


def pull(ref: str, *args: str) -> tuple[CliResult, dict[str, Any]]:
    result = invoke(["pull", ref, "--no-node-config", "--retries", "0", "--timeout", "5",
                     "-O", "json", *args])
    assert result.stdout, result.output
    return result, json.loads(result.stdout)


def as_crossplane(ref: str, version: str, *args: str) -> tuple[CliResult, dict[str, Any]]:
    return pull(ref, "--as-crossplane", "--crossplane-version", version, *args)


def ref_at(host: str, reg: Registry, pkg: PushedPackage) -> str:
    return f"{host}:{reg.port}/{pkg.ref}"


def test_localhost_plain_http_v1_20_tries_https_then_pulls_over_http(
        http_registry: Registry, packages: dict[str, PushedPackage]) -> None:
    result, out = as_crossplane(ref_at("localhost", http_registry, packages[FN]), "v1.20")
    assert result.exit_code == 0, out
    assert out["digest"] == packages[FN].built.manifest_digest
    cp = out["asCrossplane"]
    assert cp["version"] == "v1.20.11"
    assert cp["scheme"] == "http" and cp["triedHttpsFirst"] is True
    assert cp["plainHttpRule"] == "localhost:PORT"
    assert out["endpoint"].startswith("https://localhost:")  # HTTPS was the first try


def test_localhost_is_refused_by_crossplane_v2(
        http_registry: Registry, packages: dict[str, PushedPackage]) -> None:
    result, out = as_crossplane(ref_at("localhost", http_registry, packages[FN]), "v2.3")
    assert result.exit_code == 1
    assert out["ok"] is False and out["cause"] == "not-fully-qualified"
    assert "v2.3.4" in out["message"]


def test_127_0_0_1_plain_http_v2_pulls_over_http(
        http_registry: Registry, packages: dict[str, PushedPackage]) -> None:
    result, out = as_crossplane(ref_at("127.0.0.1", http_registry, packages[FN]), "v2.3.4")
    assert result.exit_code == 0, out
    assert out["asCrossplane"]["scheme"] == "http"
    assert out["asCrossplane"]["plainHttpRule"] == "127.0.0.1"


@pytest.mark.parametrize("version", ["v1.18", "v2.0", "v2.3"])
def test_127_0_0_2_plain_http_is_refused(second_loopback_registry: Registry,
                                         packages: dict[str, PushedPackage],
                                         version: str) -> None:
    result, out = as_crossplane(ref_at("127.0.0.2", second_loopback_registry, packages[FN]),
                                version)
    assert result.exit_code == 1
    assert out["cause"] == "plain-http"
    # The message names go-containerregistry's rule for that release.
    assert "plain HTTP only for localhost:PORT" in out["message"]
    assert "RFC 1918" in out["message"]
    # crossfetch itself pulls it once policy allows plain HTTP for that host.


@pytest.fixture(scope="module")
def self_signed_registry(testbed_dir: Path, registry_storage: Path, pki: PKI,
                         packages: dict[str, PushedPackage]) -> Iterator[Registry]:
    """HTTPS with a certificate that signs itself (no CA), serving the session's packages."""
    with Registry(testbed_dir, tls=pki.self_signed, storage=registry_storage) as reg:
        yield reg


@pytest.mark.parametrize("version", ["v1.18", "v2.3"])
def test_self_signed_registry_needs_the_ca_bundle(
        self_signed_registry: Registry, packages: dict[str, PushedPackage], pki: PKI,
        version: str) -> None:
    ref = f"{self_signed_registry.host}/{packages[FN].ref}"
    result, out = as_crossplane(ref, version)
    assert result.exit_code == 1
    assert out["cause"] == "untrusted-certificate"
    assert "would not pull" in out["message"]
    assert "registryCaBundleConfig" in out["fix"]
    result, out = as_crossplane(ref, version, "--ca-bundle", str(pki.self_signed.cert))
    assert result.exit_code == 0, out
    assert out["asCrossplane"]["scheme"] == "https"


def test_untrusted_ca_needs_the_ca_bundle(
        untrusted_registry: Registry, packages: dict[str, PushedPackage], pki: PKI) -> None:
    ref = f"{untrusted_registry.host}/{packages[FN].ref}"
    result, out = as_crossplane(ref, "v2.3")
    assert result.exit_code == 1
    assert out["cause"] == "untrusted-certificate"
    assert "Crossplane v2.3.4 would not pull" in out["message"]
    result, out = as_crossplane(ref, "v2.3", "--ca-bundle", str(pki.other_ca_cert))
    assert result.exit_code == 0, out
    assert out["asCrossplane"]["scheme"] == "https"


def _tls_block_config(tmp_path: Path, registry: str, ca: Path) -> str:
    pem = "\n".join("    " + line for line in ca.read_text().strip().splitlines())
    path = tmp_path / "tls.yaml"
    path.write_text(
        "apiVersion: pkg.crossplane.io/v1beta1\nkind: ImageConfig\nmetadata:\n  name: tls\n"
        f"spec:\n  matchImages:\n  - prefix: {registry}/\n  registry:\n    tls:\n"
        "      mode: Strict\n      caBundleConfigMapRef:\n        name: ca\n        key: ca.crt\n"
        "---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ca\ndata:\n"
        f"  ca.crt: |\n{pem}\n")
    return str(path)


def test_tls_block_changes_crossfetch_never_crossplane(
        tmp_path: Path, untrusted_registry: Registry, packages: dict[str, PushedPackage],
        pki: PKI) -> None:
    ref = f"{untrusted_registry.host}/{packages[FN].ref}"
    config = _tls_block_config(tmp_path, untrusted_registry.host, pki.other_ca_cert)
    cache = ["--cache-dir", str(tmp_path / "cache")]
    result, out = pull(ref, *cache)
    assert result.exit_code == 1 and out["cause"] == "untrusted-certificate"
    result, out = pull(ref, "--config", config, *cache)
    assert result.exit_code == 0, out
    for version in ("v1.18", "v2.3"):
        result, out = as_crossplane(ref, version, "--config", config, *cache)
        assert result.exit_code == 1, out
        assert out["cause"] == "untrusted-certificate"


def test_explain_as_crossplane_names_what_it_ignores(tmp_path: Path, pki: PKI) -> None:
    config = _tls_block_config(tmp_path, "reg.example.com", pki.other_ca_cert)
    result = invoke(["policy", "explain", "reg.example.com/fns/f:v1", "--config", config,
                     "--as-crossplane", "--crossplane-version", "v2.2", "-O", "json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert any("tls.mode ignored" in n for n in out["notes"])
    assert any("tls.caBundleConfigMapRef ignored" in n for n in out["notes"])


# -- doctor: two verdicts ---------------------------------------------------------------------
def doctor(ref: str, *args: str) -> tuple[int, dict[str, Any]]:
    result = invoke(["doctor", ref, "--no-node-config", "--timeout", "5", "-O", "json", *args])
    assert result.stdout, result.output
    return result.exit_code, json.loads(result.stdout)


def stage(report: dict[str, Any], name: str) -> dict[str, Any]:
    return next(c for c in report["checks"] if c["name"] == name)


def _disabled(tmp_path: Path, registry: str) -> str:
    path = tmp_path / "http.yaml"
    path.write_text("apiVersion: pkg.crossplane.io/v1beta1\nkind: ImageConfig\nmetadata:\n"
                    f"  name: http\nspec:\n  matchImages:\n  - prefix: {registry}/\n"
                    "  registry:\n    tls:\n      mode: Disabled\n")
    return str(path)


def test_doctor_names_ggcr_rule_for_127_0_0_2(second_loopback_registry: Registry,
                                              packages: dict[str, PushedPackage]) -> None:
    code, report = doctor(ref_at("127.0.0.2", second_loopback_registry, packages[FN]))
    assert code == 1
    assert stage(report, "tls")["cause"] == "plain-http"
    cp = report["crossplane"]
    assert set(cp) >= {"version", "ok", "cause", "detail", "fix"}
    assert (cp["version"], cp["ok"], cp["cause"]) == ("v2.3.4", False, "plain-http")
    assert "go-containerregistry v0.21.6" in cp["detail"]
    assert "plain HTTP only for localhost:PORT, *.localhost, 127.0.0.1, ::1 and RFC 1918" \
        in cp["detail"]
    assert "pod itself" in cp["detail"]          # and 127.0.0.2 is loopback in the pod
    assert "<registry-service-cluster-ip>" in cp["fix"]
    assert "tls:" not in cp["fix"]               # never the crossfetch-only block
    # crossfetch's own tls stage names the rule too, instead of "no plain-HTTP option".
    assert "go-containerregistry v0.21.6" in stage(report, "tls")["fix"]


@pytest.mark.parametrize(("version", "service"), [("v2.3", "<registry-service-cluster-ip>"),
                                                  ("v2.0", ".svc.cluster.local")])
def test_doctor_loopback_fix_keeps_plain_http_working(
        tmp_path: Path, http_registry: Registry, packages: dict[str, PushedPackage],
        version: str, service: str) -> None:
    registry = f"127.0.0.1:{http_registry.port}"
    code, report = doctor(f"{registry}/{packages[FN].ref}", "--config",
                          _disabled(tmp_path, registry), "--crossplane-version", version)
    assert code == 0                              # crossfetch pulls (plain HTTP by policy)
    cp = report["crossplane"]
    assert (cp["ok"], cp["cause"]) == (False, "loopback-address")
    assert cp["data"]["plainHttp"] is True        # the release itself would use HTTP here
    # ggcr >= v0.21.6 (v2.3.4) dropped *.local: a Service DNS name would lose plain HTTP, so
    # the rewrite goes to the ClusterIP; v2.0.8's ggcr still has it.
    assert f"prefix: {service}" in cp["fix"] or f"{service}:" in cp["fix"]
    if version == "v2.3":
        assert ".svc.cluster.local:" not in cp["fix"]
        assert ".svc.cluster.local:" not in stage(report, "dns")["fix"]


def test_doctor_tls_block_changes_only_crossfetchs_verdict(
        tmp_path: Path, untrusted_registry: Registry, packages: dict[str, PushedPackage],
        pki: PKI) -> None:
    ref = f"{untrusted_registry.host}/{packages[FN].ref}"
    code, without = doctor(ref)
    assert code == 1 and stage(without, "tls")["cause"] == "untrusted-certificate"
    code, with_block = doctor(ref, "--config",
                              _tls_block_config(tmp_path, untrusted_registry.host,
                                                pki.other_ca_cert))
    assert code == 0 and with_block["ok"] is True
    for report in (without, with_block):
        assert report["crossplane"]["ok"] is False
        assert report["crossplane"]["cause"] == "untrusted-certificate"
    assert any("tls.caBundleConfigMapRef ignored" in n
               for n in with_block["crossplane"]["data"]["ignored"])
    # With the CA as Crossplane takes it (registryCaBundleConfig = --ca-bundle), only the
    # loopback address is left against it.
    code, report = doctor(ref, "--ca-bundle", str(pki.other_ca_cert))
    assert code == 0
    assert report["crossplane"]["cause"] == "loopback-address"


@pytest.mark.parametrize(("version", "cause"), [("v2.3", "not-fully-qualified"),
                                                ("v1.20", "loopback-address")])
def test_doctor_localhost_per_release(tmp_path: Path, http_registry: Registry,
                                      packages: dict[str, PushedPackage], version: str,
                                      cause: str) -> None:
    registry = f"localhost:{http_registry.port}"
    _, report = doctor(f"{registry}/{packages[FN].ref}", "--config", _disabled(tmp_path, registry),
                       "--crossplane-version", version)
    assert report["crossplane"]["cause"] == cause


def test_doctor_reports_each_check_as_it_completes_and_keeps_them_on_ctrl_c(
        https_registry: Registry, packages: dict[str, PushedPackage], pki: PKI) -> None:
    from crossfetch.doctor import Doctor
    from crossfetch.policy.resolver import Policy

    ref = f"{https_registry.host}/{packages[FN].ref}"
    seen: list[str] = []
    with Doctor(Policy.load(ca_bundle=pki.ca_cert, env={}), timeout=5) as doc:
        report = doc.run(ref, on_check=lambda c: seen.append(c.label))
    assert seen == [c.label for c in report.checks]
    assert report.crossplane is not None

    def stop_at_tls(check: Any) -> None:
        seen.append(check.label)
        if check.name == "tls":
            raise KeyboardInterrupt

    seen.clear()
    with Doctor(Policy.load(ca_bundle=pki.ca_cert, env={}), timeout=5) as doc:
        report = doc.run(ref, on_check=stop_at_tls)
    assert report.interrupted and report.crossplane is None
    assert seen == ["reference", "policy", "dns", "tcp", "tls"]
    statuses = {c.label: c.status.value for c in report.checks}
    assert statuses["tls"] == "pass" and statuses["package"] == "skip"
    assert report.to_dict()["interrupted"] is True


NETPOL = """\
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: default-deny-egress, namespace: crossplane-system}
spec:
  podSelector: {}
  policyTypes: [Egress]
"""


def test_doctor_network_policy_fails_the_crossplane_verdict(
        tmp_path: Path, https_registry: Registry, packages: dict[str, PushedPackage],
        pki: PKI) -> None:
    np = tmp_path / "np.yaml"
    np.write_text(NETPOL)
    _, report = doctor(f"{https_registry.host}/{packages[FN].ref}", "--ca-bundle",
                       str(pki.ca_cert), "--network-policies", str(np))
    assert stage(report, "networkpolicy")["cause"] == "egress-blocked"
    cp = report["crossplane"]
    assert (cp["ok"], cp["cause"]) == (False, "egress-blocked")
    assert "crossplane-system/default-deny-egress" in cp["detail"]
    assert "Also: 127.0.0.1 is a loopback address" in cp["detail"]


def test_plain_http_error_fix_says_what_crossplane_does_for_that_host(
        http_registry: Registry, second_loopback_registry: Registry,
        packages: dict[str, PushedPackage]) -> None:
    # 127.0.0.1 is in go-containerregistry's rule: Crossplane already falls back to HTTP there.
    _, out = pull(ref_at("127.0.0.1", http_registry, packages[FN]))
    assert out["cause"] == "plain-http"
    assert "talks plain HTTP to 127.0.0.1" in out["fix"] and "by itself" in out["fix"]
    # 127.0.0.2 is not: HTTPS only.
    _, out = pull(ref_at("127.0.0.2", second_loopback_registry, packages[FN]))
    assert out["cause"] == "plain-http"
    assert "by itself" not in out["fix"] and "no plain-HTTP option" in out["fix"]


def _pull_secret_config(tmp_path: Path, registry: str, user: str, password: str) -> str:
    auth = base64.b64encode(f"{user}:{password}".encode()).decode()
    dockerconfig = json.dumps({"auths": {registry: {"auth": auth}}})
    path = tmp_path / "auth.yaml"
    path.write_text(
        "apiVersion: pkg.crossplane.io/v1beta1\nkind: ImageConfig\nmetadata:\n  name: auth\n"
        f"spec:\n  matchImages:\n  - prefix: {registry}/\n  registry:\n    authentication:\n"
        "      pullSecretRef: {name: pull}\n---\napiVersion: v1\nkind: Secret\n"
        "metadata: {name: pull}\ntype: kubernetes.io/dockerconfigjson\n"
        f"stringData:\n  .dockerconfigjson: '{dockerconfig}'\n")
    return str(path)


def test_credentials_come_only_from_pull_secrets(
        tmp_path: Path, basic_auth_registry: Registry, packages: dict[str, PushedPackage],
        pki: PKI, registry_credentials: tuple[str, str]) -> None:
    ref = f"{basic_auth_registry.host}/{packages[FN].ref}"
    user, password = registry_credentials
    docker = tmp_path / "docker"
    docker.mkdir()
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    docker_auth = json.dumps({"auths": {basic_auth_registry.host: {"auth": token}}})
    (docker / "config.json").write_text(docker_auth)
    env = {"DOCKER_CONFIG": str(docker)}
    args = ["pull", ref, "--no-node-config", "--retries", "0", "-O", "json", "--ca-bundle",
            str(pki.ca_cert), "--cache-dir", str(tmp_path / "cache")]
    # crossfetch reads Docker's config.json; Crossplane never does.
    assert invoke(args, env=env).exit_code == 0
    result = invoke([*args, "--as-crossplane"], env=env)
    assert result.exit_code == 1 and json.loads(result.stdout)["cause"] == "unauthorized"
    # An ImageConfig pullSecretRef (v1.18+) is what Crossplane uses.
    config = _pull_secret_config(tmp_path, basic_auth_registry.host, user, password)
    for version in ("v1.18", "v2.3"):
        result = invoke([*args, "--as-crossplane", "--crossplane-version", version, "--config",
                         config], env=env)
        assert result.exit_code == 0, result.output


@pytest.mark.parametrize("version", SUPPORTED)
def test_crossplane_fix_names_only_what_the_release_has(
        second_loopback_registry: Registry, packages: dict[str, PushedPackage],
        version: str) -> None:
    from crossfetch.crossplane import get

    prof = get(version)
    _, report = doctor(ref_at("127.0.0.2", second_loopback_registry, packages[FN]),
                       "--crossplane-version", version)
    cp = report["crossplane"]
    assert (cp["version"], cp["cause"]) == (prof.version, "plain-http")
    fix = cp["fix"]
    assert "\n    tls:" not in fix and "mode: Disabled" not in fix  # never the tls block
    assert ("rewriteImage:" in fix) is prof.rewrite_image            # v1.20+ only
    assert "--registry" not in fix
