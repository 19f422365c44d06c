"""``crossfetch serve`` pieces without a network: routes, sizes, htpasswd, log redaction,
emitted objects, and the deploy/ manifests (validated offline with kubernetes-validate)."""

from __future__ import annotations

import base64
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from crossfetch.errors import ConfigError, UsageError
from crossfetch.serve.config import Route, ServeConfig, parse_duration, parse_listen, parse_size

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"


# -- routes and settings --------------------------------------------------------------------


def test_route_maps_prefix_to_upstream_prefix() -> None:
    r = Route.parse("gitea/=gitea.cnoe.localtest.me:8443/giteaadmin/")
    assert (r.prefix, r.registry, r.path) == ("gitea/", "gitea.cnoe.localtest.me:8443",
                                              "giteaadmin/")
    assert r.upstream_name("function-foo") == \
        "gitea.cnoe.localtest.me:8443/giteaadmin/function-foo"
    root = Route.parse("local=10.0.0.5:5000")
    assert (root.prefix, root.path) == ("local/", "")


@pytest.mark.parametrize("bad", ["", "a", "=reg/", "a/=", "A/=reg/", "../=reg/", "a/=https://reg/",
                                 "a b/=reg/", "a/=reg/../x/", "a/=reg/UP/"])
def test_bad_routes_are_usage_errors(bad: str) -> None:
    with pytest.raises(UsageError):
        Route.parse(bad)


def test_longest_route_prefix_wins_and_needs_a_rest() -> None:
    cfg = ServeConfig(routes=[Route.parse("a/=r1.test/"), Route.parse("a/b/=r2.test/x/")])
    assert cfg.match("a/b/c") == (cfg.routes[1], "c")
    assert cfg.match("a/c") == (cfg.routes[0], "c")
    assert cfg.match("a/b") == (cfg.routes[0], "b")
    assert cfg.match("a") is None and cfg.match("ab/c") is None


def test_sizes_durations_and_listen_addresses() -> None:
    assert parse_size("20GiB") == 20 * 1024**3
    assert parse_size("500M") == 500 * 1000**2
    assert parse_size("1000") == 1000
    assert parse_duration("1h30m") == 5400 and parse_duration("0") == 0
    assert parse_duration("90s") == 90
    assert parse_listen("[::1]:5443") == ("::1", 5443)
    assert parse_listen(":443") == ("0.0.0.0", 443)
    for bad_size in ("", "10XB", "-1"):
        with pytest.raises(UsageError):
            parse_size(bad_size)
    for bad_d in ("5", "5 m", "1h-3m", "m"):
        with pytest.raises(UsageError):
            parse_duration(bad_d)
    with pytest.raises(UsageError):
        parse_listen("host:99999")


# -- htpasswd --------------------------------------------------------------------------------


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_htpasswd_bcrypt_only(tmp_path: Path) -> None:
    import bcrypt

    from crossfetch.serve.htpasswd import Htpasswd

    f = tmp_path / "htpasswd"
    hashed = bcrypt.hashpw(b"pw", bcrypt.gensalt(4)).decode().replace("$2b$", "$2y$")
    f.write_text(f"# users\ncarol:{hashed}\n")
    h = Htpasswd(f)
    assert h.check(basic("carol", "pw")) == "carol"
    assert h.check(basic("carol", "pw")) == "carol"  # remembered
    assert h.check(basic("carol", "nope")) is None
    assert h.check(basic("mallory", "pw")) is None
    assert h.check("Bearer abc") is None and h.check(None) is None
    assert h.check("Basic !!!") is None
    f.write_text("dave:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=\n")
    with pytest.raises(ConfigError, match="bcrypt"):
        Htpasswd(f)
    f.write_text("")
    with pytest.raises(ConfigError, match="no users"):
        Htpasswd(f)


# -- logs ------------------------------------------------------------------------------------


def test_request_targets_are_redacted_for_logs() -> None:
    from crossfetch.serve.app import redact_target

    assert redact_target("/v2/x/manifests/v1?token=abc&n=2") == \
        "/v2/x/manifests/v1?token=REDACTED&n=2"
    assert "s3cret" not in redact_target("http://alice:s3cret@host/v2/?X-Amz-Signature=zzz")
    assert "zzz" not in redact_target("/v2/?X-Amz-Signature=zzz")


# -- emitted configuration -------------------------------------------------------------------


def test_emitted_crossplane_objects_are_valid_and_one_imageconfig_per_route() -> None:
    import kubernetes_validate

    from crossfetch.serve import emit

    routes = [Route.parse("gitea/=gitea.test:8443/giteaadmin/"), Route.parse("hub/=docker.io/")]
    text = emit.crossplane("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
                           routes, "bridge.crossplane-system.svc", htpasswd=True)
    docs = [d for d in yaml.safe_load_all(text) if d]
    kinds = [d["kind"] for d in docs]
    assert kinds == ["ConfigMap", "ImageConfig", "ImageConfig", "ImageConfig"]
    kubernetes_validate.validate(docs[0], "1.30", strict=True)
    rewrites = [(d["spec"]["matchImages"][0]["prefix"], d["spec"]["rewriteImage"]["prefix"])
                for d in docs[1:3]]
    assert rewrites == [("gitea.test:8443/giteaadmin/", "bridge.crossplane-system.svc/gitea/"),
                        ("docker.io/", "bridge.crossplane-system.svc/hub/")]
    auth = docs[3]["spec"]
    assert auth["matchImages"][0]["prefix"] == "bridge.crossplane-system.svc/"
    assert auth["registry"]["authentication"]["pullSecretRef"]["name"] == emit.PULL_SECRET
    assert "registryCaBundleConfig" in text


def test_hosts_toml_only_for_whole_registry_routes() -> None:
    from crossfetch.serve import emit

    files = emit.hosts_toml([Route.parse("a/=reg.test:5000/"), Route.parse("b/=reg.test:5000/x/")],
                            "bridge:5443", "/etc/containerd/certs.d/reg.test:5000/ca.crt")
    assert list(files) == ["reg.test:5000"]
    toml = files["reg.test:5000"]
    assert '[host."https://bridge:5443/v2/a"]' in toml and "override_path = true" in toml
    for bad in ("..", "a/b", ".hidden", ""):
        with pytest.raises(UsageError):
            emit.host_dir_name(bad)


# -- deploy/ ---------------------------------------------------------------------------------


def deploy_docs() -> list[dict[str, Any]]:
    out = []
    for path in sorted(DEPLOY.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        out += [d for d in yaml.safe_load_all(path.read_text()) if d]
    return out


@pytest.mark.parametrize("version", ["1.27", "1.30"])
def test_deploy_manifests_validate_offline(version: str) -> None:
    import kubernetes_validate

    docs = deploy_docs()
    assert {d["kind"] for d in docs} == {"ConfigMap", "Secret", "Deployment", "Service",
                                         "NetworkPolicy"}
    for doc in docs:
        kubernetes_validate.validate(doc, version, strict=True)


def test_deployment_is_hardened_and_its_args_parse() -> None:
    from crossfetch.cli.serve_cmds import serve_parser

    docs = {d["kind"]: d for d in deploy_docs()}
    pod = docs["Deployment"]["spec"]["template"]["spec"]
    (c,) = pod["containers"]
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    assert c["securityContext"]["allowPrivilegeEscalation"] is False
    assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert c["resources"]["requests"] and c["resources"]["limits"]["memory"]
    ns = serve_parser("crossfetch serve").parse_args(c["args"][1:])
    assert ns.routes_file and ns.config_files and ns.tls_cert and ns.htpasswd
    assert parse_duration(ns.shutdown_timeout) < pod["terminationGracePeriodSeconds"]
    # Every path the args name is mounted.
    mounts = [m["mountPath"] for m in c["volumeMounts"]]
    for path in (ns.routes_file, ns.config_files[0], ns.tls_cert, ns.cache_dir):
        assert any(path.startswith(m) for m in mounts), path
    routes = yaml.safe_load(
        (DEPLOY / "configmap.yaml").read_text())["data"]["routes"].splitlines()
    for r in routes:
        Route.parse(r)
    rule = docs["NetworkPolicy"]["spec"]["ingress"][0]["from"][0]["namespaceSelector"]
    assert rule["matchLabels"] == {"kubernetes.io/metadata.name": "crossplane-system"}


def test_serve_without_routes_is_a_usage_error() -> None:
    import sys

    r = subprocess.run([sys.executable, "-m", "crossfetch.cli.main", "serve", "--no-node-config"],
                       capture_output=True, text=True, timeout=60, check=False)
    assert r.returncode == 2 and r.stderr.startswith("error:") and "--route" in r.stderr


@pytest.mark.parametrize(("option", "value"), [("--upstream-threads", "0"), ("--workers", "65")])
def test_serve_counts_out_of_range_are_usage_errors(option: str, value: str,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    """``--upstream-threads 0`` used to reach ThreadPoolExecutor and end in a traceback."""
    from crossfetch.cli.main import main

    assert main(["serve", "--route", "a/=reg.example/x/", option, value]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and f"{option}: {value} is not in 1.." in err


PROBE = """
import contextlib, io, sys
from crossfetch.cli.main import main
with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
    try:
        main({argv!r})
    except SystemExit:
        pass
print(" ".join(sorted({{m.split(".")[0] for m in sys.modules}})))
"""


def test_serve_extra_is_imported_only_by_serve() -> None:
    import sys

    for argv in (["serve", "--help"], ["pull", "--help"], ["--help"]):
        out = subprocess.run([sys.executable, "-c", PROBE.format(argv=argv)],
                             capture_output=True, text=True, timeout=60, check=True).stdout
        mods = set(out.split())
        assert "crossfetch" in mods
        for heavy in ("aiohttp", "prometheus_client", "bcrypt", "multidict", "yarl"):
            assert heavy not in mods, f"{heavy} imported by crossfetch {' '.join(argv)}"
