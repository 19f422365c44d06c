"""Policy decisions as a Crossplane release makes them (``--as-crossplane``), and ImageConfig
prefixes matched against the reference as written (no default registry), as Crossplane does
(crossplane internal/xpkg/config.go bestMatch on ``pkg.GetSource()``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from crossfetch.crossplane import get
from crossfetch.crossplane.emulate import default_registry, emulation_policy, in_crossplane_terms
from crossfetch.errors import PlainHTTPError, PolicyRefused
from crossfetch.policy.model import TLSMode
from crossfetch.policy.resolver import Policy
from crossfetch.reference import Reference

CONFIG = """\
apiVersion: pkg.crossplane.io/v1beta1
kind: ImageConfig
metadata: {name: rewrite}
spec:
  matchImages: [{prefix: "reg.example.com/"}]
  rewriteImage: {prefix: "10.0.0.5:5000/mirror/"}
---
apiVersion: pkg.crossplane.io/v1beta1
kind: ImageConfig
metadata: {name: tls}
spec:
  matchImages: [{prefix: "10.0.0.5:5000/"}]
  registry:
    tls: {mode: Disabled}
---
apiVersion: pkg.crossplane.io/v1beta1
kind: ImageConfig
metadata: {name: auth}
spec:
  matchImages: [{prefix: "10.0.0.5:5000/"}]
  registry:
    authentication: {pullSecretRef: {name: pull}}
---
apiVersion: v1
kind: Secret
metadata: {name: pull}
type: kubernetes.io/dockerconfigjson
stringData:
  .dockerconfigjson: '{"auths": {"10.0.0.5:5000": {"auth": "dTpw"}}}'
"""


@pytest.fixture
def policy(tmp_path: Path) -> Policy:
    path = tmp_path / "ic.yaml"
    path.write_text(CONFIG)
    return Policy.load([path], env={})


def test_prefixes_match_the_reference_as_written_not_the_default_registry(
        tmp_path: Path) -> None:
    path = tmp_path / "ic.yaml"
    path.write_text(CONFIG.split("---")[0])
    policy = Policy.load([path], env={})
    short = "org/pkg:v1"
    ref = Reference.parse(short, default_registry="reg.example.com")
    # As written, "org/pkg:v1" does not start with "reg.example.com/": no rewrite.
    assert policy.decide(ref, short).resolved == ref
    # Written in full, it does.
    full = "reg.example.com/org/pkg:v1"
    assert str(policy.decide(Reference.parse(full), full).resolved) == \
        "10.0.0.5:5000/mirror/org/pkg:v1"


def test_crossfetch_decision_uses_the_tls_block(policy: Policy) -> None:
    d = policy.decide(Reference.parse("reg.example.com/org/pkg:v1"))
    assert d.endpoints[-1].tls.mode is TLSMode.DISABLED


@pytest.mark.parametrize("version", ["v2.3.4", "v2.0", "v1.20"])
def test_crossplane_rewrites_ignores_tls_and_keeps_http_for_rfc1918(
        policy: Policy, version: str) -> None:
    prof = get(version)
    d = emulation_policy(policy, prof).decide(Reference.parse("reg.example.com/org/pkg:v1"))
    assert str(d.resolved) == "10.0.0.5:5000/mirror/org/pkg:v1"
    (ep,) = d.endpoints
    assert ep.url == "https://10.0.0.5:5000"
    assert ep.tls.mode is TLSMode.STRICT and ep.tls.allow_http_fallback  # RFC 1918
    assert ep.tls.client is None and ep.tls.ca_pem == ()
    assert any("tls.mode ignored" in n for n in d.notes)
    kc = d.auth.keychain
    assert kc is not None and kc.describe("10.0.0.5:5000") is not None  # pullSecretRef


def test_crossplane_v1_18_has_no_rewrite(policy: Policy) -> None:
    d = emulation_policy(policy, get("v1.18")).decide(
        Reference.parse("reg.example.com/org/pkg:v1"))
    assert str(d.resolved) == "reg.example.com/org/pkg:v1"
    assert not d.endpoints[0].tls.allow_http_fallback
    assert any("rewriteImage ignored" in n and "v1.20.0" in n for n in d.notes)


def test_crossplane_never_reads_docker_config(policy: Policy, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "docker"
    cfg.mkdir()
    (cfg / "config.json").write_text('{"auths": {"reg.example.com": {"auth": "dTpw"}}}')
    monkeypatch.setenv("DOCKER_CONFIG", str(cfg))
    d = emulation_policy(policy, get("v1.18")).decide(
        Reference.parse("reg.example.com/org/pkg:v1"))
    assert d.auth.keychain is None


@pytest.mark.parametrize(("version", "ok"), [("v1.20", True), ("v2.0.0", False)])
def test_v2_refuses_a_registry_host_without_a_dot(policy: Policy, version: str,
                                                  ok: bool) -> None:
    p = emulation_policy(policy, get(version))
    written = "localhost:5000/org/pkg:v1"
    if ok:
        assert p.decide(Reference.parse(written), written).endpoints[0].tls.allow_http_fallback
    else:
        with pytest.raises(PolicyRefused) as info:
            p.decide(Reference.parse(written), written)
        assert info.value.cause == "not-fully-qualified"


@pytest.mark.parametrize(("host", "v2_0", "v2_3"), [
    ("registry.svc.cluster.local:5000", True, False),  # ggcr v0.21.6 dropped *.local
    ("gitea.localhost:5000", True, True),
    ("127.0.0.2:5000", False, False),
])
def test_http_fallback_follows_the_ggcr_of_each_release(policy: Policy, host: str, v2_0: bool,
                                                        v2_3: bool) -> None:
    ref = Reference.parse(f"{host}/org/pkg:v1")
    for version, expected in (("v2.0.0", v2_0), ("v2.3.4", v2_3)):
        ep = emulation_policy(policy, get(version)).decide(ref).endpoints[0]
        assert ep.tls.allow_http_fallback is expected, (version, host)


def test_default_registry_per_release() -> None:
    assert default_registry(get("v1.18"), None) == "xpkg.upbound.io"
    assert default_registry(get("v1.20"), None) == "xpkg.crossplane.io"
    assert default_registry(get("v1.20"), "my.reg") == "my.reg"
    assert default_registry(get("v2.0"), "my.reg") is None


def test_errors_are_restated_for_the_release_with_a_fix_it_can_use() -> None:
    err = PlainHTTPError("127.0.0.2:5000 answered the TLS handshake in plain HTTP",
                         url="https://127.0.0.2:5000/v2/", host="127.0.0.2", mode="Strict",
                         fix="an ImageConfig tls block")
    for version, has_rewrite in (("v1.18", False), ("v2.3", True)):
        out = in_crossplane_terms(err, get(version))
        assert isinstance(out, PlainHTTPError) and out.cause == "plain-http"
        assert out.message.startswith(f"Crossplane {get(version).version} would not pull")
        assert "RFC 1918" in out.message
        assert out.fix is not None and "tls" not in out.fix.replace("TLS", "")
        assert ("\n  rewriteImage:\n" in out.fix) is has_rewrite
        assert ("prefix: 127.0.0.2:5000/" in out.fix) is has_rewrite


def test_plain_http_route_of_a_v6_registry_without_a_port() -> None:
    """``[fd00::5]`` names no port: the route says <port>, not the address's tail ``5]``."""
    err = PlainHTTPError("plain HTTP", url="https://[fd00::5]/v2/", host="fd00::5",
                         mode="Strict")
    fix = in_crossplane_terms(err, get("v2.3")).fix
    assert fix is not None and "<registry-service-cluster-ip>:<port>/" in fix
    assert "cluster-ip>:5]" not in fix


def test_errors_copy_with_all_their_attributes() -> None:
    # registry.head_fallback_error copies the GET's error: a 401 on HEAD and GET crashed with
    # "HTTPStatusError.__init__() missing ... 'status'" before CrossfetchError.__copy__.
    import copy

    from crossfetch.errors import Unauthorized

    err = Unauthorized("GET manifest answered 401", status=401, url="https://r.example/v2/",
                       fix="give credentials")
    dup = copy.copy(err)
    assert type(dup) is Unauthorized and dup is not err
    assert (dup.status, dup.url, dup.fix, dup.message, dup.args) == \
        (401, err.url, err.fix, err.message, err.args)
    assert in_crossplane_terms(err, get("v2.3")).status == 401  # type: ignore[attr-defined]
