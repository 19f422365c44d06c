"""ImageConfig (and ConfigMap/Secret) objects checked as kubectl and the API server check them:
the served apiVersion only, case-sensitive enum values, unknown fields warned about in
kubectl's words, and a ``--config`` file that is not text refused with its name and a fix.

Schema source: crossplane ``cluster/crds/pkg.crossplane.io_imageconfigs.yaml`` (0cbbdef): one
version, v1beta1; ``matchImages[].type`` enum Prefix; ``verification.provider`` enum Cosign.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from crossfetch.errors import ConfigError
from crossfetch.policy.model import TLSMode
from crossfetch.policy.objects import ObjectSet

HEAD = "apiVersion: pkg.crossplane.io/v1beta1\nkind: ImageConfig\nmetadata: {name: x}\n"


def load(text: str) -> ObjectSet:
    objs = ObjectSet()
    objs.add_text(text, "cfg.yaml")
    return objs


def ic(spec: str, head: str = HEAD) -> str:
    return head + "spec:\n  matchImages: [{type: Prefix, prefix: reg.io/}]\n" + spec


@pytest.mark.parametrize("api", ["pkg.crossplane.io/v1", "pkg.crossplane.io/v1alpha1",
                                 "pkg.crossplane.io/v2", "pkg.crossplane.io/V1beta1", ""])
def test_imageconfig_exists_only_as_v1beta1(api: str) -> None:
    head = HEAD.replace("pkg.crossplane.io/v1beta1", api)
    with pytest.raises(ConfigError) as e:
        load(ic("", head))
    assert f'no matches for kind "ImageConfig" in version "{api}"' in e.value.message
    assert e.value.fix == "write apiVersion: pkg.crossplane.io/v1beta1"
    assert e.value.exit_code == 2 and e.value.line == 1


@pytest.mark.parametrize("kind", ["ConfigMap", "Secret"])
def test_core_objects_are_v1(kind: str) -> None:
    with pytest.raises(ConfigError) as e:
        load(f"apiVersion: core/v1\nkind: {kind}\nmetadata: {{name: c}}\n")
    assert e.value.fix == "write apiVersion: v1"


@pytest.mark.parametrize(("value", "fix"), [
    ("disabled", "write mode: Disabled (enum values are case-sensitive)"),
    ("STRICT", "write mode: Strict (enum values are case-sensitive)"),
    ("insecure", "write mode: Insecure (enum values are case-sensitive)"),
    ("Sometimes", 'use one of "Strict", "Insecure", "Disabled"'),
])
def test_tls_mode_is_case_sensitive(value: str, fix: str) -> None:
    with pytest.raises(ConfigError) as e:
        load(ic(f"  registry:\n    tls:\n      mode: {value}\n"))
    assert (f'spec.registry.tls.mode: Unsupported value: "{value}": supported values: '
            '"Strict", "Insecure", "Disabled"') in e.value.message
    assert e.value.fix == fix and e.value.line == 8  # the line of mode:


def test_match_type_and_verification_provider_are_enums() -> None:
    with pytest.raises(ConfigError) as e:
        load(HEAD + "spec:\n  matchImages: [{type: prefix, prefix: reg.io/}]\n")
    assert "spec.matchImages[0].type: Unsupported value" in e.value.message
    assert e.value.fix == "write type: Prefix (enum values are case-sensitive)"
    with pytest.raises(ConfigError) as e:
        load(ic("  verification: {provider: cosign}\n"))
    assert e.value.fix == "write provider: Cosign (enum values are case-sensitive)"


def test_exact_enum_values_load() -> None:
    for mode in ("Strict", "Insecure", "Disabled"):
        [got] = load(ic(f"  registry: {{tls: {{mode: {mode}}}}}\n")).image_configs
        assert got.tls_mode is TLSMode(mode)


def test_unknown_fields_are_warned_about_as_kubectl_does() -> None:
    objs = load(ic("  registry:\n    tls:\n      insecureSkipVerify: true\n"
                   "  rewriteImages: {prefix: m.io/}\n", HEAD.replace("{name: x}",
                                                                    "{name: x, labelz: {}}"))
                + "---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndatas: {}\n")
    assert [w.split(" (", 1)[0] for w in objs.warnings] == [
        'unknown field "metadata.labelz"', 'unknown field "spec.registry.tls.insecureSkipVerify"',
        'unknown field "spec.rewriteImages"', 'unknown field "datas"']
    skip = objs.warnings[1]
    assert "(ImageConfig x, cfg.yaml:8)" in skip  # the line of the map holding the field
    # tls: {insecureSkipVerify: true} is not silently ignored: the warning names the fix.
    assert skip.endswith("crossfetch ignores it; for TLS without certificate verification "
                         "write spec.registry.tls.mode: Insecure")
    [got] = objs.image_configs
    assert got.tls_mode is None  # ignored for the decision, as the API server would prune it


def test_known_upstream_fields_are_not_warned_about() -> None:
    objs = load(ic("  registry:\n    authentication: {pullSecretRef: {name: s}}\n"
                   "  rewriteImage: {prefix: m.io/}\n"
                   "  runtime: {configRef: {name: rc}}\n"
                   "  verification: {provider: Cosign, cosign: {authorities: []}}\n",
                   HEAD.replace("{name: x}", "{name: x, labels: {a: b}, annotations: {}}")))
    assert objs.warnings == []


def test_rewrite_image_needs_a_prefix() -> None:
    with pytest.raises(ConfigError) as e:
        load(ic("  rewriteImage: {}\n"))
    assert "spec.rewriteImage.prefix: Required value" in e.value.message


def test_a_config_file_that_is_not_utf8_is_a_config_error(tmp_path: Path) -> None:
    f = tmp_path / "ca.der"
    f.write_bytes(b"0\x82\x03\xff\xfe binary")
    with pytest.raises(ConfigError) as e:
        ObjectSet().add_file(f)
    assert e.value.file == str(f) and "not a UTF-8 text file" in e.value.message
    assert e.value.fix and "--config" in e.value.fix


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "crossfetch.cli.main", *args],
                          capture_output=True, text=True, timeout=60, check=False)


def test_cli_prints_warnings_on_stderr_and_in_json(tmp_path: Path) -> None:
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(ic("  registry:\n    tls:\n      insecureSkipVerify: true\n"))
    r = cli("policy", "explain", "reg.io/a:v1", "--config", str(cfg), "--no-node-config")
    assert r.returncode == 0, r.stderr
    assert r.stderr.startswith('Warning: unknown field "spec.registry.tls.insecureSkipVerify"')
    r = cli("policy", "explain", "reg.io/a:v1", "--config", str(cfg), "--no-node-config",
            "-O", "json")
    out = json.loads(r.stdout)
    assert out["ok"] is True
    assert out["warnings"][0].startswith('unknown field "spec.registry.tls.insecureSkipVerify"')
    assert "Warning: unknown field" in r.stderr


def test_cli_non_utf8_config_is_one_error_line(tmp_path: Path) -> None:
    cfg = tmp_path / "bin.yaml"
    cfg.write_bytes(b"\xff\xfe\x00k")
    r = cli("policy", "explain", "reg.io/a:v1", "--config", str(cfg), "--no-node-config")
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.startswith(f"error: {cfg}: not a UTF-8 text file") and "fix:" in r.stderr
