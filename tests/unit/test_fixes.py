"""Every fix crossfetch writes: each format has one writer whose output parses and loads back
through crossfetch's own readers, and each cause's fix, for every modelled Crossplane release,
names only what that release has (crossfetch's own ImageConfig fields are labelled so)."""

from __future__ import annotations

import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import trustme
import yaml

from crossfetch.crossplane import profile as profiles
from crossfetch.crossplane.profile import Profile
from crossfetch.errors import PlainHTTPError, TLSError, TLSExpectedError
from crossfetch.fixes import CROSSFETCH_ONLY, Audience, Fix, causes, for_error
from crossfetch.fixes.configmap import ca_configmap_yaml
from crossfetch.fixes.helm import ca_values
from crossfetch.fixes.hoststoml import Host, hosts_toml
from crossfetch.fixes.imageconfig import TLS, imageconfig_yaml
from crossfetch.fixes.registriesconf import Mirror, Registry, registries_conf
from crossfetch.policy.model import TLSMode
from crossfetch.policy.node.hoststoml import parse_hosts_toml
from crossfetch.policy.node.registriesconf import load_registries_conf
from crossfetch.policy.objects import ObjectSet
from crossfetch.reference import Reference
from crossfetch.trust import CertInfo, parse_pem_bundle

PROFILES = [profiles.get(v) for v in profiles.SUPPORTED]
REG = "reg.example:8443"


@pytest.fixture(scope="module")
def chain() -> list[CertInfo]:
    ca = trustme.CA(organization_name="fix CA")
    leaf = ca.issue_cert(REG.split(":")[0])
    return parse_pem_bundle(leaf.cert_chain_pems[0].bytes() + ca.cert_pem.bytes())


def load(text: str) -> ObjectSet:
    objs = ObjectSet()
    objs.add_text(text, "fix.yaml")
    assert objs.warnings == [], objs.warnings  # kubectl would warn about nothing either
    return objs


# --- one writer per format: output parses and loads back ----------------------------------------


def test_imageconfig_writer_loads_back_with_every_field() -> None:
    text = imageconfig_yaml("[::1]:5000/", name="ic", rewrite="mirror.example/team/",
                            pull_secret="pull", allow_plain_http_credentials=True,
                            tls=TLS(mode="Insecure", ca_configmap=("ca", "ca.crt"),
                                    client_cert_secret="client"))
    [ic] = load(text).image_configs
    assert ic.match_images[0].prefix == "[::1]:5000/"  # quoted: [ starts a YAML flow list
    assert (ic.rewrite_prefix, ic.pull_secret, ic.tls_mode, ic.ca_ref, ic.client_cert_secret,
            ic.allow_plain_http_credentials) == ("mirror.example/team/", "pull", TLSMode.INSECURE,
                                                 ("ca", "ca.crt"), "client", True)


def test_configmap_and_helm_values_writers(chain: list[CertInfo]) -> None:
    text = ca_configmap_yaml("reg-ca", chain[1].pem)
    objs = load(text)
    cm = objs.config_maps["reg-ca"]
    assert cm.namespace == "crossplane-system"
    assert parse_pem_bundle(cm.data["ca.crt"])[0].fingerprint == chain[1].fingerprint
    assert "|" in text  # the PEM stays readable: a literal block
    assert yaml.safe_load(ca_values("reg-ca")) == {
        "registryCaBundleConfig": {"name": "reg-ca", "key": "ca.crt"}}


def test_hosts_toml_writer_loads_back(tmp_path: Path, chain: list[CertInfo]) -> None:
    ca = tmp_path / "ca.crt"
    ca.write_text(chain[1].pem)
    text = hosts_toml(Host("https://reg.example:8443", capabilities=("pull", "resolve"),
                           ca=(str(ca),), skip_verify=False),
                      [Host("http://mirror.example:5000/v2/team", capabilities=("pull",),
                            override_path=True, headers=(("X-Team", "a"),))],
                      comments=["a comment"])
    f = tmp_path / "hosts.toml"
    f.write_text(text)
    tomllib.loads(text)
    mirror, up = parse_hosts_toml(f, REG)
    assert (mirror.url, mirror.role, sorted(mirror.capabilities), mirror.override_path,
            mirror.headers) == ("http://mirror.example:5000/v2/team", "mirror", ["pull"], True,
                                (("X-Team", "a"),))
    assert (up.url, up.tls.ca_files, sorted(up.capabilities)) == (
        "https://reg.example:8443", (ca,), ["pull", "resolve"])


def test_registries_conf_writer_loads_back(tmp_path: Path) -> None:
    text = registries_conf(Registry("reg.example/team", "internal.example:5000/mirror/team",
                                    insecure=True,
                                    mirrors=(Mirror("m.example", digest_only=True),)),
                           comments=["what the format cannot say"])
    f = tmp_path / "r.conf"
    f.write_text(text)
    eps = load_registries_conf(f).endpoints(Reference.parse("reg.example/team/x:v1"))
    assert [(e.host, e.role, e.repository) for e in eps] == [
        ("m.example", "mirror", "x"), ("internal.example:5000", "upstream", "mirror/team/x")]
    assert eps[1].tls.mode is not TLSMode.STRICT or eps[1].tls.allow_http_fallback


# --- every cause's fix, for every modelled Crossplane release -----------------------------------


def all_fixes(p: Profile, chain: list[CertInfo]) -> dict[str, Fix]:
    fixes: dict[str, Callable[[], Fix | None]] = {
        "loopback-ip": lambda: causes.loopback("127.0.0.1:5000", "127.0.0.1", is_ip=True,
                                               target=p),
        "loopback-ip-http": lambda: causes.loopback("127.0.0.1:5000", "127.0.0.1", is_ip=True,
                                                    plain_http=True, target=p),
        "loopback-ipv6": lambda: causes.loopback("[::1]:5000", "::1", is_ip=True, target=p),
        "loopback-name": lambda: causes.loopback("gitea.localtest.me:8443", "gitea.localtest.me",
                                                 is_ip=False, resolver_maps=False, target=p),
        "dns": lambda: causes.dns_failure("reg.internal", "reg.internal:5000", target=p),
        "dns-public": lambda: causes.dns_failure("xpkg.crossplane.io", public=True, target=p),
        "trust": lambda: causes.trust(REG, chain, target=p),
        "trust-leaf-only": lambda: causes.trust(REG, chain[:1], target=p),
        "trust-no-chain": lambda: causes.trust(REG, target=p),
        "hostname": lambda: causes.hostname("10.0.0.5", chain[0]),
        "expired": lambda: causes.expired(chain[0]),
        "plain-http": lambda: causes.plain_http(REG, target=p, crossplane_speaks_http=False),
        "plain-http-ok": lambda: causes.plain_http("10.0.0.5:5000", target=p,
                                                   crossplane_speaks_http=True),
        "tls-expected": lambda: causes.tls_expected(REG),
        "unauthorized": lambda: causes.unauthorized(REG, target=p),
        "client-cert": lambda: causes.client_certificate(REG, target=p),
        "error-plain-http": lambda: for_error(PlainHTTPError(
            "x", url=f"https://{REG}/v2/", host="reg.example", mode="Strict"), p),
        "error-untrusted": lambda: for_error(TLSError(
            "x", url=f"https://{REG}/v2/", host="reg.example", mode="Strict",
            cause="untrusted-certificate"), p),
        "error-tls-expected": lambda: for_error(TLSExpectedError(
            "x", url=f"http://{REG}/v2/", host="reg.example", mode="Disabled"), p),
    }
    out = {k: f() for k, f in fixes.items()}
    return {k: v for k, v in out.items() if v is not None}


def documents(body: str) -> list[tuple[str, Any]]:
    """The YAML objects or TOML table a step's body holds (a body is one format: commands, YAML
    or TOML)."""
    if "apiVersion:" in body:
        return [("yaml", d) for d in yaml.safe_load_all(body) if d is not None]
    if "server = " in body:
        return [("toml", tomllib.loads(body))]
    return []


@pytest.mark.parametrize("p", PROFILES, ids=[p.version for p in PROFILES])
def test_every_fix_parses_and_names_only_what_the_release_has(p: Profile,
                                                              chain: list[CertInfo]) -> None:
    for name, fix in all_fixes(p, chain).items():
        assert fix.text().endswith("\n") and fix.steps, name
        for step in fix.steps:
            docs = documents(step.body)
            for kind, doc in docs:
                if kind == "yaml" and doc.get("kind") == "ImageConfig":
                    load(yaml.safe_dump(doc))  # crossfetch's loader takes it, without warnings
            ics = [d for k, d in docs if k == "yaml" and d.get("kind") == "ImageConfig"]
            crossfetch_fields = any("tls" in d["spec"].get("registry", {})
                                    or "allowCredentialsOverPlainHTTP" in
                                    d["spec"].get("registry", {}).get("authentication", {})
                                    for d in ics)
            if crossfetch_fields:
                assert step.audience is Audience.CROSSFETCH and CROSSFETCH_ONLY in step.title, \
                    (name, step)
            if not docs:
                assert "apiVersion" not in step.body and "server =" not in step.body, name
            if step.audience is not Audience.CROSSPLANE:
                continue
            text = step.title + step.body
            assert p.version in step.title, (name, step.title)
            for never in ("tls:", "caBundleConfigMapRef", "mode: ", "clientCertSecretRef",
                          "insecureSkipVerify", "allowCredentialsOverPlainHTTP", "--ca-bundle ",
                          "hosts.toml"):
                assert never not in text, (p.version, name, never)
            if not p.image_config:
                assert "ImageConfig" not in step.body, (p.version, name)
            for d in ics:
                assert p.rewrite_image or "rewriteImage" not in d["spec"], (p.version, name)
                assert p.pull_secret_ref or "registry" not in d["spec"], (p.version, name)
            if not p.rewrite_image:
                assert "rewriteImage" not in text, (p.version, name)
            if not p.has_registry_flag:
                assert "--registry" not in text, (p.version, name)


@pytest.mark.parametrize("p", PROFILES, ids=[p.version for p in PROFILES])
def test_untrusted_certificate_fix_offers_crossplane_only_its_ca_bundle(
        p: Profile, chain: list[CertInfo]) -> None:
    """Issue 10: "or per registry, an ImageConfig tls block" was listed under Crossplane's
    package manager; Crossplane never shipped that block."""
    fix = causes.trust(REG, chain, target=p)
    [cp] = fix.for_audience(Audience.CROSSPLANE)
    assert "registryCaBundleConfig" in cp.title + cp.body and "--ca-bundle-path" in cp.title
    assert "ImageConfig" not in cp.title + cp.body
    [own] = [s for s in fix.for_audience(Audience.CROSSFETCH) if "caBundleConfigMapRef" in s.body]
    assert CROSSFETCH_ONLY in own.title
    [node] = fix.for_audience(Audience.NODE)
    node_toml = tomllib.loads(node.body)
    assert node_toml["host"][f"https://{REG}"]["ca"] == f"/etc/containerd/certs.d/{REG}/ca.crt"


def test_loopback_ip_fix_follows_the_plain_http_rule_of_the_release() -> None:
    """ggcr v0.21.6 dropped *.local from its plain-HTTP rule: a plain-HTTP registry rewritten to
    a Service DNS name would be tried over HTTPS only, so newer releases get the ClusterIP."""
    old, new = profiles.get("v2.0.8"), profiles.get("v2.3.4")
    assert old.plain_http_local_dot_local and not new.plain_http_local_dot_local
    def rewrite(p: Profile) -> str:
        [step] = causes.loopback("127.0.0.1:5000", "127.0.0.1", is_ip=True, plain_http=True,
                                 target=p).steps
        [ic] = yaml.safe_load_all(step.body)
        return str(ic["spec"]["rewriteImage"]["prefix"])
    assert rewrite(old) == "<registry-service>.<namespace>.svc.cluster.local:5000/"
    assert rewrite(new) == "<registry-service-cluster-ip>:5000/"
    no_rewrite = profiles.get("v1.19.3")
    [step] = causes.loopback("127.0.0.1:5000", "127.0.0.1", is_ip=True,
                             target=no_rewrite).steps
    assert "cannot rewrite a package reference" in step.title and not step.body


def test_plain_http_fix_says_when_crossplane_already_speaks_http() -> None:
    p = profiles.get("v2.3.4")
    err = PlainHTTPError("x", url="https://10.0.0.5:5000/v2/", host="10.0.0.5", mode="Strict")
    fix = for_error(err, p)
    assert fix is not None
    [cp] = fix.for_audience(Audience.CROSSPLANE)
    assert "talks plain HTTP to 10.0.0.5:5000 by itself" in cp.title
    assert "pod itself" not in cp.title  # an RFC 1918 address is no loopback
    far = for_error(PlainHTTPError("x", url="https://10.0.0.5.nip.io:5000/v2/", mode="Strict"), p)
    assert far is not None
    [cp] = far.for_audience(Audience.CROSSPLANE)
    assert "has no plain-HTTP option" in cp.title and "#6159" in cp.title
