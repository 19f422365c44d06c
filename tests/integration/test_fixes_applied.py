"""Each fix crossfetch writes, applied as a user would apply it, makes the pull succeed:
as ``--config`` for crossfetch, as ``--ca-bundle`` / ``--as-crossplane`` for the emulated
Crossplane release the fix was written for, and as ``hosts.toml`` in a real containerd.

The fixes come from the very errors the pulls raise (:func:`crossfetch.fixes.for_error`) or from
the cause functions ``doctor`` calls, never from hand-written YAML.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest
import yaml

from crossfetch import Cache, Client, Policy
from crossfetch.crossplane import profile as profiles
from crossfetch.errors import CrossfetchError, PlainHTTPError, TLSError, TLSExpectedError
from crossfetch.fixes import CROSSFETCH_ONLY, Audience, Fix, causes, for_error
from crossfetch.fixes.configmap import ca_configmap_yaml
from crossfetch.fixes.hoststoml import for_registry
from crossfetch.trust import fetch_chain
from tests.integration.conftest import PushedPackage
from tests.support.certs import PKI
from tests.support.cli import invoke
from tests.support.registry import Registry

FN = "function_with_runtime"
NEWEST = profiles.get()


def pull_error(ref: str, tmp: Path, policy: Policy | None = None) -> CrossfetchError:
    with Client(policy, cache=Cache(tmp / "lib-cache"), retries=0) as c, \
            pytest.raises(CrossfetchError) as e:
        c.pull(ref)
    return e.value


def pull(ref: str, tmp: Path, *args: str) -> tuple[int, dict[str, object]]:
    r = invoke(["pull", ref, "--no-node-config", "--retries", "0", "--timeout", "5",
                "--cache-dir", str(tmp / "cli-cache"), "-O", "json", *args])
    return r.exit_code, json.loads(r.stdout)


def step(fix: Fix, audience: Audience, needle: str = "") -> str:
    [body] = [s.body for s in fix.steps if s.audience is audience and needle in s.body]
    return body


def test_plain_http_fix_as_config_pulls(tmp_path: Path, http_registry: Registry,
                                       packages: dict[str, PushedPackage]) -> None:
    ref = http_registry.ref(packages[FN].ref)
    err = pull_error(ref, tmp_path)
    assert isinstance(err, PlainHTTPError) and err.fix is None  # facts only
    fix = for_error(err, NEWEST)
    assert fix is not None
    cfg = tmp_path / "fix.yaml"
    cfg.write_text(step(fix, Audience.CROSSFETCH, "kind: ImageConfig"))
    code, out = pull(ref, tmp_path, "--config", str(cfg))
    assert code == 0, out
    assert out["digest"] == packages[FN].built.manifest_digest
    # The CLI prints the same fix, written at the edge.
    code, out = pull(ref, tmp_path / "again")
    assert code == 1 and out["fix"] == fix.text().rstrip("\n")
    assert out["fixSteps"] == fix.to_dict()
    assert [s["audience"] for s in fix.to_dict()] == ["crossfetch", "crossplane", "node"]


def test_plain_http_fix_tells_the_truth_about_the_emulated_crossplane(
        tmp_path: Path, http_registry: Registry, packages: dict[str, PushedPackage]) -> None:
    """127.0.0.1 is in go-containerregistry's plain-HTTP rule: the fix says Crossplane needs no
    change there, and the emulated Crossplane does pull."""
    ref = http_registry.ref(packages[FN].ref)
    registry = ref.split("/", 1)[0]
    for version in profiles.SUPPORTED:
        p = profiles.get(version)
        fix = for_error(pull_error(ref, tmp_path), p)
        assert fix is not None
        [cp] = fix.for_audience(Audience.CROSSPLANE)
        assert f"Crossplane {p.version} talks plain HTTP to {registry} by itself" in cp.title
        assert "inside the Crossplane pod" in cp.title  # 127.0.0.1 is the pod itself there
    code, out = pull(ref, tmp_path, "--as-crossplane", "--crossplane-version",
                     NEWEST.version)
    assert code == 0, out


def test_untrusted_certificate_fix_each_route_pulls(
        tmp_path: Path, untrusted_registry: Registry, packages: dict[str, PushedPackage],
        pki: PKI, monkeypatch: pytest.MonkeyPatch) -> None:
    ref = untrusted_registry.ref(packages[FN].ref)
    registry = ref.split("/", 1)[0]
    err = pull_error(ref, tmp_path)
    assert isinstance(err, TLSError) and err.cause == "untrusted-certificate"
    assert for_error(err, NEWEST) is not None
    # doctor's form of the fix pins the fingerprint it saw.
    chain = fetch_chain("127.0.0.1", untrusted_registry.port)
    fix = causes.trust(registry, chain, target=NEWEST)
    monkeypatch.chdir(tmp_path)
    # The server sends only its leaf, so the fix takes the CA from the Secret holding the
    # registry's TLS (here: a Secret with the test bed's untrusted CA, as kubectl would save it).
    lines = step(fix, Audience.CROSSFETCH, "crossfetch trust").splitlines()
    assert lines[0].startswith("kubectl get secret") and "--from-secret cert.yaml" in lines[1]
    (tmp_path / "cert.yaml").write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "idpbuilder-cert"},
        "type": "kubernetes.io/tls", "stringData": {"ca.crt": pki.other_ca_cert.read_text()}}))
    save = shlex.split(lines[1])
    assert save[0] == "crossfetch"
    r = invoke(save[1:])
    assert r.exit_code == 0, r.output
    ca = tmp_path / "ca.crt"
    # Crossplane's route (registryCaBundleConfig = --ca-bundle-path): the emulation pulls with
    # that bundle, and not without it.
    code, out = pull(ref, tmp_path, "--as-crossplane")
    assert code == 1 and out["cause"] == "untrusted-certificate"
    code, out = pull(ref, tmp_path, "--as-crossplane", "--ca-bundle", str(ca))
    assert code == 0, out
    # crossfetch's routes: --ca-bundle, or the crossfetch-only ImageConfig with its ConfigMap.
    code, out = pull(ref, tmp_path, "--ca-bundle", str(ca))
    assert code == 0, out
    [own] = [s for s in fix.for_audience(Audience.CROSSFETCH) if "kind: ImageConfig" in s.body]
    assert CROSSFETCH_ONLY in own.title
    ic = yaml.safe_load(own.body)
    ref_cm = ic["spec"]["registry"]["tls"]["caBundleConfigMapRef"]
    cfg = tmp_path / "fix.yaml"
    cfg.write_text(own.body + "---\n" + ca_configmap_yaml(ref_cm["name"], ca.read_text(),
                                                          key=ref_cm["key"]))
    code, out = pull(ref, tmp_path / "ic", "--config", str(cfg))
    assert code == 0, out


def test_tls_expected_fix_as_config_pulls(tmp_path: Path, https_registry: Registry,
                                         packages: dict[str, PushedPackage], pki: PKI) -> None:
    ref = https_registry.ref(packages[FN].ref)
    registry = ref.split("/", 1)[0]
    disabled = tmp_path / "disabled.yaml"
    disabled.write_text(f"apiVersion: pkg.crossplane.io/v1beta1\nkind: ImageConfig\n"
                        f"metadata: {{name: plain}}\nspec:\n  matchImages: "
                        f"[{{prefix: '{registry}/'}}]\n  registry: {{tls: {{mode: Disabled}}}}\n")
    err = pull_error(ref, tmp_path, Policy.load([disabled]))
    assert isinstance(err, TLSExpectedError)
    fix = for_error(err, NEWEST)
    assert fix is not None
    body = step(fix, Audience.CROSSFETCH, "kind: ImageConfig")
    ref_cm = yaml.safe_load(body)["spec"]["registry"]["tls"]["caBundleConfigMapRef"]
    cfg = tmp_path / "fix.yaml"
    cfg.write_text(body + "---\n" + ca_configmap_yaml(ref_cm["name"], pki.ca_cert.read_text()))
    code, out = pull(ref, tmp_path, "--config", str(cfg))
    assert code == 0, out


# -- the node's containerd -----------------------------------------------------------------------


@pytest.mark.containerd
@pytest.mark.parametrize("which", ["plain-http", "ca"])
def test_node_hosts_toml_fix_in_a_real_containerd(
        tmp_path: Path, which: str, http_registry: Registry, https_registry: Registry,
        packages: dict[str, PushedPackage], pki: PKI) -> None:
    from tests.support.containerd import Containerd, containerd_skip_reason

    if reason := containerd_skip_reason():
        pytest.skip(reason)
    reg = http_registry if which == "plain-http" else https_registry
    ref = reg.ref(packages[FN].ref)
    registry = ref.split("/", 1)[0]
    hosts = tmp_path / "certs.d"
    if which == "plain-http":
        fix = causes.plain_http(registry, target=NEWEST)
        text = step(fix, Audience.NODE)
        assert text == for_registry(registry, plain_http=True)
    else:
        text = for_registry(registry, ca=True, certs_d=str(hosts))
        assert text.replace(str(hosts), "/etc/containerd/certs.d") == step(
            causes.trust(registry, target=NEWEST), Audience.NODE)
        (hosts / registry).mkdir(parents=True)
        (hosts / registry / "ca.crt").write_bytes(pki.ca_cert.read_bytes())
    (hosts / registry).mkdir(parents=True, exist_ok=True)
    (hosts / registry / "hosts.toml").write_text(text)
    with Containerd(tmp_path / "ctd", hosts_dir=hosts) as ctd:
        code, out = pull(ref, tmp_path, "--via", "cri", "--runtime-endpoint", ctd.endpoint)
    assert code == 0, out
    assert out["digest"] == packages[FN].built.manifest_digest


@pytest.mark.containerd
def test_policy_export_hosts_toml_in_a_real_containerd(
        tmp_path: Path, https_registry: Registry, packages: dict[str, PushedPackage],
        pki: PKI) -> None:
    """What `policy export --format hosts-toml` writes from crossfetch's own policy (here a
    certs.d CA), containerd reads the same way: the node pulls."""
    from tests.support.containerd import Containerd, containerd_skip_reason

    if reason := containerd_skip_reason():
        pytest.skip(reason)
    ref = https_registry.ref(packages[FN].ref)
    registry = ref.split("/", 1)[0]
    certs = tmp_path / "certs" / registry
    certs.mkdir(parents=True)
    (certs / "ca.crt").write_bytes(pki.ca_cert.read_bytes())
    r = invoke(["policy", "export", f"{registry}/", "--certs-dir", str(certs.parent),
                "--no-node-config", "--format", "hosts-toml"])
    assert r.exit_code == 0, r.output
    hosts = tmp_path / "certs.d"
    (hosts / registry).mkdir(parents=True)
    (hosts / registry / "hosts.toml").write_text(r.stdout)
    with Containerd(tmp_path / "ctd", hosts_dir=hosts) as ctd:
        code, out = pull(ref, tmp_path, "--via", "cri", "--runtime-endpoint", ctd.endpoint)
    assert code == 0, (r.stdout, out)


def test_unauthorized_fix_for_crossplane_pulls_as_crossplane(
        tmp_path: Path, basic_auth_registry: Registry, packages: dict[str, PushedPackage],
        pki: PKI) -> None:
    """The pull secret plus the ImageConfig pullSecretRef the fix writes: the emulated
    Crossplane pulls with them (the Secret is what the fix's kubectl command creates)."""
    import base64

    from tests.integration.conftest import TEST_PASSWORD, TEST_USER

    ref = basic_auth_registry.ref(packages[FN].ref)
    registry = ref.split("/", 1)[0]
    code, out = pull(ref, tmp_path, "--as-crossplane", "--ca-bundle", str(pki.ca_cert))
    assert code == 1 and out["cause"] in ("unauthorized", "credentials-rejected"), out
    fix = causes.unauthorized(registry, target=NEWEST)
    command, ic = (s.body for s in fix.for_audience(Audience.CROSSPLANE))
    argv = shlex.split(command)
    assert argv[:6] == ["kubectl", "-n", "crossplane-system", "create", "secret",
                        "docker-registry"]
    name = argv[6]
    assert f"--docker-server={registry}" in argv
    auth = base64.b64encode(f"{TEST_USER}:{TEST_PASSWORD}".encode()).decode()
    config = json.dumps({"auths": {registry: {"username": TEST_USER, "password": TEST_PASSWORD,
                                              "auth": auth}}})
    secret = yaml.safe_dump({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": name, "namespace": "crossplane-system"},
        "type": "kubernetes.io/dockerconfigjson",
        "data": {".dockerconfigjson": base64.b64encode(config.encode()).decode()}})
    cfg = tmp_path / "fix.yaml"
    cfg.write_text(ic + "---\n" + secret)
    code, out = pull(ref, tmp_path, "--as-crossplane", "--ca-bundle", str(pki.ca_cert),
                     "--config", str(cfg))
    assert code == 0, out
