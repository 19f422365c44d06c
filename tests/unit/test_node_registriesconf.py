"""containers registries.conf: prefixes, locations, mirrors, pull-from-mirror, blocked."""

from __future__ import annotations

from pathlib import Path

import pytest

from crossfetch.errors import ConfigError
from crossfetch.policy.model import TLSMode
from crossfetch.policy.node.registriesconf import RegistriesConf, load_registries_conf
from crossfetch.reference import Reference

DATA = Path(__file__).parent / "data" / "node" / "registries"


@pytest.fixture(scope="module")
def conf() -> RegistriesConf:
    return load_registries_conf(DATA / "registries.conf")


def ref(s: str) -> Reference:
    return Reference.parse(s)


def summary(conf: RegistriesConf, r: str) -> list[tuple[str, str, list[str], str | None]]:
    return [(e.url, e.role, sorted(e.capabilities), e.repository)
            for e in conf.endpoints(ref(r))]


def test_longest_prefix_with_location_and_mirrors(conf: RegistriesConf) -> None:
    assert summary(conf, "example.com/foo/pkg:v1") == [
        ("https://mirror-a.example.com:5000", "mirror", ["pull", "resolve"], "cache/pkg"),
        # a location replaces the whole prefix, path included
        ("https://mirror-b.example.com", "mirror", ["pull"], "pkg"),
        ("https://mirror-c.example.com", "mirror", ["pull", "resolve"], "pkg"),
        ("https://internal.example.com", "upstream", ["pull", "push", "resolve"], "bar/pkg"),
    ]
    eps = conf.endpoints(ref("example.com/foo/pkg:v1"))
    assert [e.source.line for e in eps] == [10, 13, 17, 5]
    assert eps[-1].tls.mode is TLSMode.INSECURE and eps[-1].tls.allow_http_fallback
    assert eps[2].tls.allow_http_fallback and not eps[0].tls.allow_http_fallback


def test_tag_only_mirror_is_left_out_for_digest_references(conf: RegistriesConf) -> None:
    digest = "sha256:" + "a" * 64
    urls = [e.url for e in conf.endpoints(ref(f"example.com/foo/pkg@{digest}"))]
    assert "https://mirror-c.example.com" not in urls
    assert "https://mirror-b.example.com" in urls


def test_prefix_matches_at_path_boundaries_only(conf: RegistriesConf) -> None:
    # example.com/foobar is not under example.com/foo: the shorter example.com entry wins.
    assert summary(conf, "example.com/foobar/x:v1") == [
        ("https://example.com", "upstream", ["pull", "push", "resolve"], None)]
    assert conf.endpoints(ref("example.community/x:v1")) == []


def test_wildcard_prefix_and_legacy_digest_only(conf: RegistriesConf) -> None:
    assert summary(conf, "a.corp.example/team/x:v1") == [
        ("https://corp-mirror.example", "mirror", ["pull"], None),
        ("https://a.corp.example", "upstream", ["pull", "push", "resolve"], None)]
    assert conf.endpoints(ref("corp.example/x:v1")) == []


def test_blocked(conf: RegistriesConf) -> None:
    src = conf.blocked(ref("example.com/foo/blocked/x:v1"))
    assert src is not None and (src.kind, src.line) == ("registries.conf", 26)
    assert conf.blocked(ref("example.com/foo/x:v1")) is None


def test_docker_hub_location_uses_the_api_host(tmp_path: Path) -> None:
    p = tmp_path / "r.conf"
    p.write_text('[[registry]]\nprefix = "docker.io/library"\nlocation = "docker.io/library"\n'
                 '[[registry.mirror]]\nlocation = "mirror.local:5000/hub/library"\n')
    c = load_registries_conf(p)
    assert summary(c, "docker.io/library/nginx:1") == [
        ("https://mirror.local:5000", "mirror", ["pull", "resolve"], "hub/library/nginx"),
        ("https://registry-1.docker.io", "upstream", ["pull", "push", "resolve"], None)]


def test_v1_insecure_and_block_lists() -> None:
    c = load_registries_conf(DATA / "v1.conf")
    [up] = c.endpoints(ref("old.example.com:5000/x:v1"))
    assert up.tls.allow_http_fallback and up.source.line == 4
    assert c.blocked(ref("bad.example.com/x:v1")) is not None


def test_drop_in_replaces_same_prefix(tmp_path: Path, conf: RegistriesConf) -> None:
    p = tmp_path / "50-override.conf"
    p.write_text('[[registry]]\nprefix = "example.com/foo"\nlocation = "other.example.com"\n')
    merged = RegistriesConf(list(conf.entries))
    merged.merge(load_registries_conf(p))
    assert summary(merged, "example.com/foo/pkg:v1") == [
        ("https://other.example.com", "upstream", ["pull", "push", "resolve"], "pkg")]


@pytest.mark.parametrize(("text", "line", "needle"), [
    ('[[registry]]\nlocation = "https://reg"\n', 2, "must not have a scheme"),
    ('[[registry]]\nlocation = "reg"\n[[registry.mirror]]\nlocation = "m"\n'
     'pull-from-mirror = "sometimes"\n', 5, "unknown pull-from-mirror"),
    ('[[registry]]\nlocation = "reg"\ninsecure = "yes"\n', 3, "insecure must be true or false"),
    ('[[registry]]\ninsecure = true\n', 1, "needs a prefix or a location"),
    ('[[registry]\nlocation = "reg"\n', 1, "invalid TOML"),
    ('[[registry]]\nlocation = "reg"\n[[registry.mirror]]\ninsecure = true\n', 3,
     "needs a location"),
])
def test_malformed(tmp_path: Path, text: str, line: int, needle: str) -> None:
    p = tmp_path / "registries.conf"
    p.write_text(text)
    with pytest.raises(ConfigError, match=needle) as e:
        load_registries_conf(p)
    assert e.value.file == str(p) and e.value.line == line and e.value.fix is not None
