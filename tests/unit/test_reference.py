"""Reference parsing: the distribution grammar, Docker's registry rule, Crossplane v2's
insistence on a registry."""

from __future__ import annotations

import pytest

from crossfetch.errors import InvalidReference
from crossfetch.reference import Reference

D = "sha256:" + "a" * 64


@pytest.mark.parametrize("text,registry,repo,tag,digest,host,port", [
    ("gitea.cnoe.localtest.me:8443/giteaadmin/function-foo:v0.1.0",
     "gitea.cnoe.localtest.me:8443", "giteaadmin/function-foo", "v0.1.0", None,
     "gitea.cnoe.localtest.me", 8443),
    ("10.0.0.5:5000/fns/function-bar:v1", "10.0.0.5:5000", "fns/function-bar", "v1", None,
     "10.0.0.5", 5000),
    ("localhost/x", "localhost", "x", "latest", None, "localhost", None),
    ("localhost:5000/a/b/c", "localhost:5000", "a/b/c", "latest", None, "localhost", 5000),
    (f"[::1]:5000/a/b@{D}", "[::1]:5000", "a/b", None, D, "::1", 5000),
    (f"xpkg.crossplane.io/crossplane-contrib/provider-kubernetes:v0.15.0@{D}",
     "xpkg.crossplane.io", "crossplane-contrib/provider-kubernetes", "v0.15.0", D,
     "xpkg.crossplane.io", None),
    ("reg.io/a__b/c-d.e_f:V1_x-y.z", "reg.io", "a__b/c-d.e_f", "V1_x-y.z", None, "reg.io", None),
    ("Registry/repo", "Registry", "repo", "latest", None, "Registry", None),
])
def test_valid(text: str, registry: str, repo: str, tag: str | None, digest: str | None,
               host: str, port: int | None) -> None:
    r = Reference.parse(text)
    assert (r.registry, r.repository, r.tag, r.digest) == (registry, repo, tag, digest)
    assert (r.host, r.port) == (host, port)
    assert Reference.parse(str(r)) == r


@pytest.mark.parametrize("text,needle", [
    ("function-foo:v1", "not fully qualified"),
    ("crossplane-contrib/function-foo:v1", "not fully qualified"),
    ("", "empty"),
    ("https://reg.io/a:v1", "scheme"),
    ("reg.io/UPPER", "repository path"),
    ("reg.io/a:b:c", "repository path"),
    ("reg.io:99999/a", "port"),
    ("reg.io:/a", "port"),
    ("reg.io/a@sha256:abc", "digest"),
    ("reg.io/a@sha256:" + "A" * 64, "digest"),
    ("reg.io/a:-bad", "tag"),
    ("[::1/a", "IPv6"),
    ("[zz::1]:5000/a", "IPv6"),
    ("reg..io/a", "host"),
    ("reg.io/" + "a" * 300, "255"),
    ("reg.io//a", "repository path"),
])
def test_invalid(text: str, needle: str) -> None:
    with pytest.raises(InvalidReference) as ei:
        Reference.parse(text)
    assert needle in str(ei.value)
    assert ei.value.exit_code == 2


def test_unqualified_name_cause_and_default_registry() -> None:
    with pytest.raises(InvalidReference) as ei:
        Reference.parse("crossplane-contrib/function-foo:v1")
    assert ei.value.cause == "not-fully-qualified"
    assert "--default-registry" in (ei.value.fix or "")
    r = Reference.parse("crossplane-contrib/function-foo:v1", default_registry="xpkg.io")
    assert r.name == "xpkg.io/crossplane-contrib/function-foo"


def test_docker_hub_api_host() -> None:
    assert Reference.parse("docker.io/library/x:v1").api_registry == "registry-1.docker.io"
    assert Reference.parse("ghcr.io/x/y:v1").api_registry == "ghcr.io"


def test_identifier_prefers_digest() -> None:
    assert Reference.parse(f"r.io/a:v1@{D}").identifier == D
    assert Reference.parse("r.io/a:v1").identifier == "v1"


@pytest.mark.parametrize("text", [
    "reg.io/a:\u00fcn\u00ef",          # \w took it; the request died
    "reg.io/a:v\uff11",                # full-width digit one
    "reg.io:6\u00b200/a:v1",           # 6²00: str.isdigit() is True, int() refuses
    "reg.io:\u0665\u0660\u0660\u0660/a",  # Arabic-Indic digits: int() would accept them
    "reg.io/a:v1\n",                   # $ matched before the newline
    "reg.io/a\n",
    "reg.io/a@sha256:" + "a" * 64 + "\n",
    " reg.io/a:v1",
    "reg.io/a:v1 ",
    "reg.io/a:v\t1",
    "reg.io/a:v1\x00",
    "r\u00e9g.io/a:v1",
])
def test_non_ascii_and_control_characters_are_invalid(text: str) -> None:
    with pytest.raises(InvalidReference) as ei:
        Reference.parse(text)
    assert ei.value.exit_code == 2 and ei.value.fix


def test_default_registry_with_a_newline_is_invalid() -> None:
    with pytest.raises(InvalidReference):
        Reference.parse("org/pkg:v1", default_registry="reg.io\n")
