"""ImageConfig loading and matching, exactly as Crossplane matches: raw string prefixes on
the reference as written, longest wins per setting, rewrite first; ties broken by name."""

from __future__ import annotations

from pathlib import Path

import pytest

from crossfetch.errors import ConfigError
from crossfetch.policy.model import TLSMode
from crossfetch.policy.objects import ObjectSet
from crossfetch.policy.resolver import Policy
from crossfetch.reference import Reference

CA = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"


def ic(name: str, prefix: str | list[str], registry: str = "", rewrite: str | None = None) -> str:
    prefixes = [prefix] if isinstance(prefix, str) else prefix
    matches = "".join(f"  - {{type: Prefix, prefix: '{p}'}}\n" for p in prefixes)
    doc = (f"apiVersion: pkg.crossplane.io/v1beta1\nkind: ImageConfig\nmetadata: {{name: {name}}}\n"
           f"spec:\n  matchImages:\n{matches}")
    if registry:
        doc += f"  registry:\n{registry}"
    if rewrite:
        doc += f"  rewriteImage: {{prefix: '{rewrite}'}}\n"
    return doc


def policy(*docs: str) -> Policy:
    objs = ObjectSet()
    objs.add_text("---\n".join(docs), "test.yaml")
    return Policy(objects=objs)


def decide(p: Policy, ref: str):  # type: ignore[no-untyped-def]
    return p.decide(Reference.parse(ref))


def test_default_is_strict_https_upstream() -> None:
    d = decide(Policy(), "reg.io:8443/a/b:v1")
    (ep,) = d.endpoints
    assert ep.url == "https://reg.io:8443" and ep.tls.mode is TLSMode.STRICT
    assert ep.role == "upstream"


def test_longest_prefix_wins_per_setting() -> None:
    p = policy(
        ic("short", "reg.io/", "    tls: {mode: Insecure}\n"),
        ic("long", "reg.io/team/", "    tls: {mode: Disabled}\n"),
    )
    assert decide(p, "reg.io/team/x:v1").endpoints[-1].tls.mode is TLSMode.DISABLED
    assert decide(p, "reg.io/team/x:v1").endpoints[-1].url == "http://reg.io"
    assert decide(p, "reg.io/other/x:v1").endpoints[-1].tls.mode is TLSMode.INSECURE


def test_ties_are_broken_by_name_deterministically() -> None:
    p = policy(ic("zeta", "reg.io/", "    tls: {mode: Disabled}\n"),
               ic("alpha", "reg.io/", "    tls: {mode: Insecure}\n"))
    tls = decide(p, "reg.io/x:v1").endpoints[-1].tls
    assert tls.mode is TLSMode.INSECURE and "alpha" in tls.source.name


def test_settings_match_independently() -> None:
    # One object supplies the rewrite, another (longer prefix, on the rewritten name) the TLS.
    p = policy(
        ic("rw", "gitea.local:8443/", rewrite="mirror.local:5000/cache/"),
        ic("tls", "mirror.local:5000/", "    tls: {mode: Disabled}\n"),
    )
    d = decide(p, "gitea.local:8443/org/fn:v1")
    assert str(d.resolved) == "mirror.local:5000/cache/org/fn:v1"
    assert d.rewrite_source is not None and "rw" in d.rewrite_source.name
    assert d.endpoints[-1].url == "http://mirror.local:5000"


def test_matching_is_a_raw_prefix_on_the_reference_as_written() -> None:
    p = policy(ic("x", "reg.io/team", "    tls: {mode: Disabled}\n"))
    # "reg.io/teamwork" starts with "reg.io/team": raw prefix, as Crossplane does.
    assert decide(p, "reg.io/teamwork/x:v1").endpoints[-1].tls.mode is TLSMode.DISABLED


def test_ca_bundle_from_configmap() -> None:
    cm = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: ca}\ndata:\n  ca.crt: |\n    " \
         + CA.replace("\n", "\n    ")
    ref = "    tls:\n      caBundleConfigMapRef: {name: ca, key: ca.crt}\n"
    p = policy(ic("x", "reg.io/", ref), cm)
    tls = decide(p, "reg.io/a:v1").endpoints[-1].tls
    assert tls.mode is TLSMode.STRICT and tls.ca_pem and "BEGIN CERTIFICATE" in tls.ca_pem[0]


@pytest.mark.parametrize("docs,needle", [
    ([ic("x", "reg.io/", "    tls:\n      caBundleConfigMapRef: {name: nope, key: ca.crt}\n")],
     "ConfigMap 'nope'"),
    ([ic("x", "reg.io/", "    tls:\n      caBundleConfigMapRef: {name: ca, key: other}\n"),
      "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: ca}\ndata: {ca.crt: x}\n"], "no key"),
    ([ic("x", "reg.io/", "    tls:\n      caBundleConfigMapRef: {name: ca, key: ca.crt}\n"),
      "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: ca}\ndata: {ca.crt: notpem}\n"],
     "no PEM"),
])
def test_bad_ca_references(docs: list[str], needle: str) -> None:
    with pytest.raises(ConfigError) as ei:
        decide(policy(*docs), "reg.io/a:v1")
    assert needle in str(ei.value) and ei.value.exit_code == 2


@pytest.mark.parametrize("text,needle,line", [
    (ic("x", "reg.io/", "    tls: {mode: Sometimes}\n"),
     'supported values: "Strict", "Insecure", "Disabled"', 8),
    ("apiVersion: pkg.crossplane.io/v1beta1\nkind: ImageConfig\nmetadata: {name: x}\nspec: {}\n",
     "no matchImages", 1),
    ("kind: Deployment\napiVersion: apps/v1\nmetadata: {name: x}\n", "unsupported object kind",
     1),
    ("a: [\n", "invalid YAML", 2),
    (ic("x", "reg.io/") + "---\n" + ic("x", "other/"), "defined twice", 8),
    ("apiVersion: v1\nkind: Secret\nmetadata: {name: s}\ndata: {k: '!!!'}\n", "base64", 1),
])
def test_malformed_config_names_file_and_line(text: str, needle: str, line: int) -> None:
    with pytest.raises(ConfigError) as ei:
        ObjectSet().add_text(text, "policy.yaml")
    msg = str(ei.value)
    assert needle in msg and f"policy.yaml:{line}" in msg, msg


def test_list_objects_are_unpacked() -> None:
    objs = ObjectSet()
    objs.add_text("apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: ConfigMap\n"
                  "  metadata: {name: a}\n  data: {k: v}\n")
    assert objs.config_maps["a"].data == {"k": "v"}


def test_ca_bundle_flag_must_hold_a_certificate(tmp_path: Path) -> None:
    bad = tmp_path / "bad.pem"
    bad.write_text("nothing here")
    with pytest.raises(ConfigError):
        Policy.load(ca_bundle=bad)
    good = tmp_path / "ca.pem"
    good.write_text(CA)
    p = Policy.load(ca_bundle=good)
    assert decide(p, "reg.io/a:v1").endpoints[-1].tls.ca_files == (good,)


def test_ca_bundle_env_is_crossplanes_name(tmp_path: Path) -> None:
    good = tmp_path / "ca.pem"
    good.write_text(CA)
    p = Policy.load(env={"CA_BUNDLE_PATH": str(good)})
    assert p.ca_bundles == (good,)


@pytest.mark.parametrize(("registry", "rest", "needle"), [
    ("  registry: foo\n", "", "spec.registry must be a map"),
    ("  registry: {tls: Strict}\n", "", "spec.registry.tls must be a map"),
    ("  registry: {authentication: [a]}\n", "", "spec.registry.authentication must be a map"),
    ("  registry: {authentication: {pullSecretRef: s}}\n", "",
     "pullSecretRef must be a map"),
    ("", "  rewriteImage: other.io/\n", "spec.rewriteImage must be a map"),
])
def test_a_scalar_where_a_map_belongs_is_a_config_error(registry: str, rest: str,
                                                         needle: str) -> None:
    with pytest.raises(ConfigError) as ei:
        ObjectSet().add_text(ic("x", "reg.io/") + registry + rest, "policy.yaml")
    assert needle in str(ei.value) and "policy.yaml:1" in str(ei.value)


@pytest.mark.parametrize("field", ["data: [a, b]", "stringData: plain"])
def test_secret_data_that_is_not_a_map_is_a_config_error(field: str) -> None:
    with pytest.raises(ConfigError, match="must be a map"):
        ObjectSet().add_text(f"apiVersion: v1\nkind: Secret\nmetadata: {{name: s}}\n{field}\n",
                             "policy.yaml")
