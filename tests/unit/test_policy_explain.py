"""``policy explain`` JSON pinned for each source, its text form, ``policy export`` round
trips, and malformed files failing with exit code 2, file, line and fix."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from crossfetch.policy.node import load_node_policy
from crossfetch.policy.resolver import Policy
from crossfetch.reference import Reference
from tests.support.certs import PKI, make_pki
from tests.support.cli import invoke

DATA = Path(__file__).parent / "data" / "node"
STRICT_DEFAULT = {"mode": "Strict", "caFiles": [], "caInline": 0, "clientCert": None,
                  "httpFallback": False}


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> PKI:
    return make_pki(tmp_path_factory.mktemp("pki"))


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def run(tmp_path: Path, *args: str) -> tuple[int, str]:
    env = {"DOCKER_CONFIG": str(tmp_path / "no-docker-config"), "HOME": str(tmp_path)}
    result = invoke([*args, "--no-node-config"], env=env,
                                catch_exceptions=False)
    return result.exit_code, result.output


def explain(tmp_path: Path, ref: str, *args: str) -> dict[str, Any]:
    code, out = run(tmp_path, "policy", "explain", ref, *args, "-O", "json")
    assert code == 0, out
    return json.loads(out.replace(str(tmp_path), "$TMP"))  # type: ignore[no-any-return]


def src(kind: str, name: str, line: int | None = None) -> dict[str, Any]:
    return {"kind": kind, "name": name} | ({"line": line} if line is not None else {})


def anonymous(registry: str) -> dict[str, Any]:
    return {"registry": registry, "source": None, "plainHTTPAllowed": False,
            "plainHTTPSource": None}


def test_default_when_nothing_is_configured(tmp_path: Path) -> None:
    assert explain(tmp_path, "reg.example/x:v1") == {
        "ok": True, "reference": "reg.example/x:v1", "resolved": "reg.example/x:v1",
        "rewrite": None, "blocked": None,
        "endpoints": [{"url": "https://reg.example", "role": "upstream",
                       "capabilities": ["pull", "push", "resolve"], "repository": None,
                       "tls": {**STRICT_DEFAULT, "source": src("default", "")},
                       "headers": [], "source": src("default", "")}],
        "credentials": anonymous("reg.example"), "notes": []}


def test_pinned_hosts_toml(tmp_path: Path) -> None:
    hosts = tmp_path / "hosts"
    f = write(hosts / "localhost:5001/hosts.toml",
              'server = "https://localhost:5001"\n\n[host."http://kind-registry:5000"]\n'
              '  capabilities = ["pull", "resolve"]\n  skip_verify = true\n'
              '  [host."http://kind-registry:5000".header]\n    authorization = "Bearer x"\n')
    name = str(f).replace(str(tmp_path), "$TMP")
    out = explain(tmp_path, "localhost:5001/fns/f:v1", "--hosts-dir", str(hosts))
    assert out["endpoints"] == [
        {"url": "https://kind-registry:5000", "role": "mirror",
         "capabilities": ["pull", "resolve"], "repository": None,
         "tls": {**STRICT_DEFAULT, "mode": "Insecure", "httpFallback": True,
                 "source": src("hosts.toml", name, 3)},
         "headers": ["authorization"],  # names only: values may be tokens
         "source": src("hosts.toml", name, 3)},
        {"url": "https://localhost:5001", "role": "upstream",
         "capabilities": ["pull", "push", "resolve"], "repository": None,
         "tls": {**STRICT_DEFAULT, "source": src("hosts.toml", name, 1)},
         "headers": [], "source": src("hosts.toml", name, 1)}]
    assert "Bearer x" not in json.dumps(out)


def test_pinned_certs_d(tmp_path: Path, pki: PKI) -> None:
    d = tmp_path / "certs" / "reg.example:5000"
    d.mkdir(parents=True)
    (d / "ca.crt").write_bytes(pki.ca_cert.read_bytes())
    (d / "client.cert").write_bytes(pki.client.cert.read_bytes())
    (d / "client.key").write_bytes(pki.client.key.read_bytes())
    out = explain(tmp_path, "reg.example:5000/x:v1", "--certs-dir", str(d.parent))
    assert out["endpoints"] == [
        {"url": "https://reg.example:5000", "role": "upstream",
         "capabilities": ["pull", "push", "resolve"], "repository": None,
         "tls": {**STRICT_DEFAULT, "caFiles": ["$TMP/certs/reg.example:5000/ca.crt"],
                 "clientCert": {"cert": "$TMP/certs/reg.example:5000/client.cert",
                                "key": "$TMP/certs/reg.example:5000/client.key",
                                "source": src("certs.d",
                                              "$TMP/certs/reg.example:5000/client.cert")},
                 "source": src("certs.d", "$TMP/certs/reg.example:5000")},
         "headers": [], "source": src("certs.d", "$TMP/certs/reg.example:5000")}]


def test_pinned_registries_conf_with_blocked_and_mirror(tmp_path: Path) -> None:
    conf = DATA / "registries" / "registries.conf"
    out = explain(tmp_path, "example.com/foo/pkg@sha256:" + "a" * 64,
                  "--registries-conf", str(conf))
    name = str(conf)
    assert [(e["url"], e["role"], e["capabilities"], e["repository"], e["tls"]["mode"],
             e["tls"]["httpFallback"], e["source"]) for e in out["endpoints"]] == [
        ("https://mirror-a.example.com:5000", "mirror", ["pull", "resolve"], "cache/pkg",
         "Strict", False, src("registries.conf", name, 10)),
        ("https://mirror-b.example.com", "mirror", ["pull"], "pkg", "Strict", False,
         src("registries.conf", name, 13)),
        ("https://internal.example.com", "upstream", ["pull", "push", "resolve"], "bar/pkg",
         "Insecure", True, src("registries.conf", name, 5))]
    assert out["blocked"] is None
    blocked = explain(tmp_path, "example.com/foo/blocked/x:v1", "--registries-conf", str(conf))
    assert blocked["blocked"] == src("registries.conf", name, 26)


def test_pinned_daemon_json(tmp_path: Path) -> None:
    dj = DATA / "daemon.json"
    out = explain(tmp_path, "10.0.0.9:5000/x:v1", "--daemon-json", str(dj))
    assert out["endpoints"] == [
        {"url": "https://10.0.0.9:5000", "role": "upstream",
         "capabilities": ["pull", "push", "resolve"], "repository": None,
         "tls": {**STRICT_DEFAULT, "mode": "Insecure", "httpFallback": True,
                 "source": src("daemon.json", str(dj), 4)},
         "headers": [], "source": src("daemon.json", str(dj), 4)}]


def _imageconfig_yaml(pki: PKI) -> str:
    def b64(p: Path) -> str:
        return base64.b64encode(p.read_bytes()).decode()

    ca = "".join(f"    {line}\n" for line in pki.ca_cert.read_text().splitlines())
    return f"""\
apiVersion: pkg.crossplane.io/v1beta1
kind: ImageConfig
metadata: {{name: tls}}
spec:
  matchImages: [{{type: Prefix, prefix: "mirror.internal/"}}]
  registry:
    tls:
      caBundleConfigMapRef: {{name: ca, key: ca.crt}}
      clientCertSecretRef: {{name: client}}
---
apiVersion: pkg.crossplane.io/v1beta1
kind: ImageConfig
metadata: {{name: rewrite}}
spec:
  matchImages: [{{type: Prefix, prefix: "reg.example/"}}]
  rewriteImage: {{prefix: "mirror.internal/reg/"}}
---
apiVersion: v1
kind: ConfigMap
metadata: {{name: ca}}
data:
  ca.crt: |
{ca}---
apiVersion: v1
kind: Secret
metadata: {{name: client}}
type: kubernetes.io/tls
data:
  tls.crt: {b64(pki.client.cert)}
  tls.key: {b64(pki.client.key)}
"""


def test_pinned_imageconfig_and_tls_secret(tmp_path: Path, pki: PKI) -> None:
    cfg = write(tmp_path / "ic.yaml", _imageconfig_yaml(pki))
    out = explain(tmp_path, "reg.example/x:v1", "--config", str(cfg))
    [ep] = out["endpoints"]
    client = ep["tls"].pop("clientCert")
    assert client["cert"].endswith("-tls.crt") and client["key"].endswith("-tls.key")
    secret_line = cfg.read_text().splitlines().index("kind: Secret")  # apiVersion's line
    assert client["source"] == src("secret", f"client ($TMP/ic.yaml:{secret_line})")
    assert out["resolved"] == "mirror.internal/reg/x:v1"
    assert out["rewrite"] == src("imageconfig", "rewrite ($TMP/ic.yaml:11)")
    assert ep == {"url": "https://mirror.internal", "role": "upstream",
                  "capabilities": ["pull", "push", "resolve"], "repository": None,
                  "tls": {"mode": "Strict", "caFiles": [], "caInline": 1,
                          "httpFallback": False,
                          "source": src("imageconfig", "tls ($TMP/ic.yaml:1)")},
                  "headers": [], "source": src("imageconfig", "tls ($TMP/ic.yaml:1)")}


def test_pinned_flags_outrank_and_credentials_source(tmp_path: Path, pki: PKI) -> None:
    secret = write(tmp_path / "pull.json",
                   json.dumps({"auths": {"reg.example": {"auth": "dTpw"}}}))
    out = explain(tmp_path, "reg.example/x:v1", "--ca-bundle", str(pki.ca_cert),
                  "--pull-secret", str(secret), "--allow-plain-http-credentials")
    assert out["endpoints"][0]["tls"]["caFiles"] == [str(pki.ca_cert)]
    cred = out["credentials"]
    assert cred["source"]["name"].startswith("$TMP/pull.json")
    assert cred["plainHTTPAllowed"] is True
    assert cred["plainHTTPSource"] == src("flag", "--allow-plain-http-credentials")
    assert "dTpw" not in json.dumps(out)


def test_imageconfig_over_node_is_shown_in_notes_and_text(tmp_path: Path) -> None:
    hosts = tmp_path / "hosts"
    write(hosts / "reg.example/hosts.toml", 'server = "http://reg.example"\n')
    cfg = write(tmp_path / "ic.yaml", "apiVersion: pkg.crossplane.io/v1beta1\n"
                "kind: ImageConfig\nmetadata: {name: strict}\nspec:\n"
                "  matchImages: [{prefix: reg.example/}]\n  registry: {tls: {mode: Strict}}\n")
    out = explain(tmp_path, "reg.example/x:v1", "--hosts-dir", str(hosts), "--config", str(cfg))
    [ep] = out["endpoints"]
    assert ep["url"] == "https://reg.example" and ep["tls"]["mode"] == "Strict"
    assert ep["source"]["kind"] == "hosts.toml" and ep["tls"]["source"]["kind"] == "imageconfig"
    assert out["notes"] == ["imageconfig strict ($TMP/ic.yaml:1) overrides mode of the "
                            "upstream's TLS from hosts.toml $TMP/hosts/reg.example/hosts.toml:1"]
    code, text = run(tmp_path, "policy", "explain", "reg.example/x:v1", "--hosts-dir",
                     str(hosts), "--config", str(cfg))
    assert code == 0
    assert "1. upstream https://reg.example  [pull, push, resolve]" in text
    assert "decided by imageconfig strict" in text
    assert "precedence   command-line flags > ImageConfig objects > node files" in text


# -- export --------------------------------------------------------------------------------


def decide(ref: str, **node: Any) -> list[tuple[str, str, list[str], str, bool, str | None]]:
    policy = Policy(node=load_node_policy(system=False, **node))
    return [(e.url, e.role, sorted(e.capabilities), e.tls.mode.value, e.tls.allow_http_fallback,
             e.repository) for e in policy.decide(Reference.parse(ref)).endpoints]


def test_export_hosts_toml_to_registries_conf_and_back(tmp_path: Path) -> None:
    hosts = tmp_path / "hosts"
    write(hosts / "reg.example:5000/hosts.toml",
          'server = "http://reg.example:5000"\nskip_verify = true\n\n'
          '[host."https://m1.example"]\n  capabilities = ["pull"]\n'
          '[host."https://m2.example"]\n  capabilities = ["pull", "resolve"]\n'
          '  skip_verify = true\n')
    ref = "reg.example:5000/team/x:v1"
    original = decide(ref, hosts_dirs=[str(hosts)])
    code, conf = run(tmp_path, "policy", "export", "reg.example:5000", "--hosts-dir", str(hosts),
                     "--format", "registries-conf")
    assert code == 0, conf
    conf_file = write(tmp_path / "r.conf", conf)
    via_conf = decide(ref, registries_conf=str(conf_file))
    # registries.conf has no "Insecure without fallback": m2 gains the (safe) fallback.
    assert [e[:4] for e in via_conf] == [e[:4] for e in original]
    code, toml = run(tmp_path, "policy", "export", "reg.example:5000", "--registries-conf",
                     str(conf_file), "--format", "hosts-toml")
    assert code == 0, toml
    back = tmp_path / "back"
    write(back / "reg.example:5000/hosts.toml", toml)
    assert decide(ref, hosts_dirs=[str(back)]) == via_conf


def test_export_imageconfig_is_loadable_and_equivalent(tmp_path: Path, pki: PKI) -> None:
    conf = write(tmp_path / "r.conf", '[[registry]]\nprefix = "reg.example/team"\n'
                 'location = "internal.example:5000/mirror/team"\n'
                 '[[registry.mirror]]\nlocation = "m.example"\n')
    certs = tmp_path / "certs" / "internal.example:5000"
    certs.mkdir(parents=True)
    (certs / "ca.crt").write_bytes(pki.ca_cert.read_bytes())
    code, out = run(tmp_path, "policy", "export", "reg.example/team/", "--registries-conf",
                    str(conf), "--certs-dir", str(certs.parent), "--format", "imageconfig")
    assert code == 0, out
    assert "# ImageConfig cannot express mirror https://m.example" in out
    ic = write(tmp_path / "ic.yaml", out)
    policy = Policy.load([ic])
    d = policy.decide(Reference.parse("reg.example/team/x:v1"))
    assert str(d.resolved) == "internal.example:5000/mirror/team/x:v1"
    [up] = d.endpoints
    assert up.tls.mode.value == "Strict" and up.tls.ca_pem == (pki.ca_cert.read_text(),)


# -- malformed files: exit code 2, file, line, fix ------------------------------------------------


@pytest.mark.parametrize("case", ["bad-toml", "missing-ca", "cert-without-key",
                                  "unknown-tls-mode", "bad-registries-conf"])
def test_malformed_files_exit_2_with_file_line_and_fix(tmp_path: Path, pki: PKI,
                                                       case: str) -> None:
    hosts = tmp_path / "hosts"
    f = hosts / "reg.example/hosts.toml"
    args = ["--hosts-dir", str(hosts)]
    if case == "bad-toml":
        write(f, 'server = "https://reg.example"\ncapabilities = [pull]\n')
        line, needle = 2, "invalid TOML"
    elif case == "missing-ca":
        write(f, '[host."https://m"]\n  ca = "missing.crt"\n')
        line, needle = 2, "missing.crt cannot be read"
    elif case == "cert-without-key":
        write(f, f'client = "{pki.client.cert}"\n')
        line, needle = 1, "has no key"
    elif case == "unknown-tls-mode":
        f = write(tmp_path / "ic.yaml", "apiVersion: pkg.crossplane.io/v1beta1\n"
                  "kind: ImageConfig\nmetadata: {name: x}\nspec:\n"
                  "  matchImages: [{prefix: reg.example/}]\n  registry:\n    tls:\n"
                  "      mode: Relaxed\n")
        args = ["--config", str(f)]
        line, needle = 8, 'spec.registry.tls.mode: Unsupported value: "Relaxed"'
    else:
        f = write(tmp_path / "r.conf", '[[registry]]\nlocation = "reg.example"\n'
                  '[[registry.mirror]]\nlocation = "m"\npull-from-mirror = "maybe"\n')
        args = ["--registries-conf", str(f)]
        line, needle = 5, "unknown pull-from-mirror"
    for cmd in (["policy", "explain", "reg.example/x:v1"], ["head", "reg.example/x:v1"]):
        code, out = run(tmp_path, *cmd, *args)
        assert code == 2, out
        assert f"error: {f}:{line}: " in out and needle in out, out
        assert "  fix: " in out, out
    code, out = run(tmp_path, "policy", "explain", "reg.example/x:v1", *args, "-O", "json")
    err = json.loads(out)
    assert code == 2 and err["ok"] is False and err["cause"] == "invalid-config"
    assert err["fix"] and f"{f}:{line}" in err["message"]


# -- export of a rewriteImage: nothing dropped silently (docs/policy.md) ---------------------------


REWRITE = ("apiVersion: pkg.crossplane.io/v1beta1\nkind: ImageConfig\nmetadata: {name: mirror}\n"
           "spec:\n  matchImages: [{prefix: xpkg.crossplane.io/crossplane-contrib/}]\n"
           "  rewriteImage: {prefix: mirror.internal:5000/contrib/}\n")


def test_export_hosts_toml_says_it_cannot_rewrite(tmp_path: Path) -> None:
    cfg = write(tmp_path / "ic.yaml", REWRITE)
    code, toml = run(tmp_path, "policy", "export", "xpkg.crossplane.io/crossplane-contrib/",
                     "--config", str(cfg), "--format", "hosts-toml")
    assert code == 0, toml
    comments = [line for line in toml.splitlines() if line.startswith("#")]
    # was: only "# mirror.internal:5000/hosts.toml (crossfetch policy export)"
    assert any("imageconfig mirror" in c and "rewrites xpkg.crossplane.io/crossplane-contrib/ "
               "to mirror.internal:5000/contrib/" in c and "cannot rewrite" in c
               for c in comments), toml
    assert 'server = "https://mirror.internal:5000"' in toml


def test_export_registries_conf_carries_the_rewrite_as_its_location(tmp_path: Path) -> None:
    cfg = write(tmp_path / "ic.yaml", REWRITE)
    code, conf = run(tmp_path, "policy", "export", "xpkg.crossplane.io/crossplane-contrib/",
                     "--config", str(cfg), "--format", "registries-conf")
    assert code == 0, conf
    assert "# location is the rewriteImage of imageconfig mirror" in conf
    conf_file = write(tmp_path / "r.conf", conf)
    ref = "xpkg.crossplane.io/crossplane-contrib/function-x:v1"
    [up] = Policy(node=load_node_policy(system=False, registries_conf=str(conf_file))).decide(
        Reference.parse(ref)).endpoints
    assert (up.host, up.repository) == ("mirror.internal:5000", "contrib/function-x")


def test_export_imageconfig_of_a_rewrite_is_plain_crossplane(tmp_path: Path) -> None:
    cfg = write(tmp_path / "ic.yaml", REWRITE)
    code, out = run(tmp_path, "policy", "export", "xpkg.crossplane.io/crossplane-contrib/",
                    "--config", str(cfg), "--format", "imageconfig")
    assert code == 0, out
    # Only fields Crossplane ships (v1.20+): no default-only crossfetch tls block to refuse.
    assert "tls" not in out and "crossfetch only" not in out
    [ic] = list(yaml.safe_load_all(out))
    assert ic["spec"] == {"matchImages": [{"type": "Prefix",
                                           "prefix": "xpkg.crossplane.io/crossplane-contrib/"}],
                          "rewriteImage": {"prefix": "mirror.internal:5000/contrib/"}}
