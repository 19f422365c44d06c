"""containerd hosts.toml directories: lookup order, parsing, real-world layouts, errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from crossfetch.errors import ConfigError
from crossfetch.policy.model import TLSMode
from crossfetch.policy.node.hoststoml import (
    find_host_dir,
    host_dir_names,
    parse_hosts_toml,
    read_host_dir,
)
from tests.support.certs import PKI, make_pki

DATA = Path(__file__).parent / "data" / "node"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> PKI:
    return make_pki(tmp_path_factory.mktemp("pki"))


def hosts(tmp_path: Path, text: str, host: str = "reg.local:5000") -> Path:
    d = tmp_path / host
    d.mkdir(parents=True, exist_ok=True)
    p = d / "hosts.toml"
    p.write_text(text)
    return p


def test_directory_names_in_containerd_order() -> None:
    assert host_dir_names("reg.local:5000") == ["reg.local_5000_", "reg.local:5000"]
    assert host_dir_names("reg.local") == ["reg.local"]
    assert host_dir_names("[::1]") == ["[::1]"]
    assert host_dir_names("[::1]:5000") == ["[::1]_5000_", "[::1]:5000"]


def test_underscore_port_directory_wins_over_colon_directory() -> None:
    d = find_host_dir([DATA / "ports"], "reg.local:5000")
    assert d is not None and d.name == "reg.local_5000_"


def test_default_directory_catches_other_hosts_but_never_shadows_a_specific_one() -> None:
    assert find_host_dir([DATA / "k3s"], "quay.io") == DATA / "k3s" / "_default"
    eps = read_host_dir(DATA / "k3s" / "_default", "quay.io")
    assert [(e.url, e.role) for e in eps] == [
        ("https://catch-all-mirror.example.com", "mirror"), ("https://quay.io", "upstream")]
    # A _default in the first root does not hide a specific directory in the second.
    assert find_host_dir([DATA / "k3s", DATA / "ports"], "reg.local:5000") == \
        DATA / "ports" / "reg.local_5000_"


def test_kind_local_registry_recipe() -> None:
    """kind's recipe: certs.d/localhost:5001/hosts.toml with one [host."http://..."]."""
    d = find_host_dir([DATA / "kind"], "localhost:5001")
    assert d is not None
    mirror, upstream = read_host_dir(d, "localhost:5001")
    assert mirror.url == "http://kind-registry:5000"
    assert mirror.role == "mirror"
    assert mirror.tls.mode is TLSMode.DISABLED and not mirror.tls.allow_http_fallback
    assert mirror.capabilities == {"pull", "resolve"}  # push stripped: mirrors only pull
    assert mirror.source.line == 1
    assert upstream.url == "https://localhost:5001" and upstream.role == "upstream"


def test_k3s_style_mirrors_with_v2_paths_and_override_path() -> None:
    eps = read_host_dir(DATA / "k3s" / "docker.io", "registry-1.docker.io")
    assert [(e.url, e.override_path, sorted(e.capabilities), e.tls.mode.value) for e in eps] == [
        ("https://mirror.example.com:5000/v2", True, ["pull", "resolve"], "Strict"),
        ("http://10.0.0.5:5000/v2", True, ["pull", "resolve"], "Disabled"),
        # server's /v2 is dropped: containerd adds it back without override_path
        ("https://registry-1.docker.io", False, ["pull", "resolve"], "Strict"),
    ]
    assert [e.source.line for e in eps] == [6, 10, 2]
    eps = read_host_dir(DATA / "k3s" / "registry.example.com", "registry.example.com")
    assert eps[0].headers == (("X-Mirror-Token", "not-a-secret-in-tests"),)


def test_server_with_same_host_table_configures_the_upstream(tmp_path: Path) -> None:
    p = hosts(tmp_path, 'server = "https://reg.local:5000"\n\n[host."https://reg.local:5000"]\n'
              '  capabilities = ["pull", "resolve"]\n  skip_verify = true\n')
    [ep] = parse_hosts_toml(p, "reg.local:5000")
    assert ep.role == "upstream" and ep.capabilities == {"pull", "resolve"}
    assert ep.tls.mode is TLSMode.INSECURE and ep.source.line == 3


def test_http_host_with_tls_settings_tries_https_first(tmp_path: Path, pki: PKI) -> None:
    p = hosts(tmp_path, f'server = "http://reg.local:5000"\nca = "{pki.ca_cert}"\n')
    [ep] = parse_hosts_toml(p, "reg.local:5000")
    assert ep.url == "https://reg.local:5000"
    assert ep.tls.allow_http_fallback and ep.tls.mode is TLSMode.STRICT
    assert ep.tls.ca_files == (pki.ca_cert,)


def test_relative_ca_and_client_forms(tmp_path: Path, pki: PKI) -> None:
    d = tmp_path / "reg.local:5000"
    d.mkdir()
    (d / "ca.crt").write_bytes(pki.ca_cert.read_bytes())
    (d / "c.cert").write_bytes(pki.client.cert.read_bytes())
    (d / "c.key").write_bytes(pki.client.key.read_bytes())
    (d / "combined.pem").write_bytes(pki.client.cert.read_bytes() + pki.client.key.read_bytes())
    p = hosts(tmp_path, 'ca = ["ca.crt"]\nclient = [["c.cert", "c.key"]]\n\n'
              '[host."https://m1"]\n  client = "combined.pem"\n'
              '[host."https://m2"]\n  client = ["combined.pem"]\n')
    m1, m2, up = parse_hosts_toml(p, "reg.local:5000")
    assert up.tls.ca_files == (d / "ca.crt",)
    assert up.tls.client is not None and up.tls.client.key == d / "c.key"
    assert up.tls.client.source.line == 2
    for m in (m1, m2):
        assert m.tls.client is not None and m.tls.client.cert == m.tls.client.key == \
            d / "combined.pem"


def test_directory_with_only_certificate_files(tmp_path: Path, pki: PKI) -> None:
    d = tmp_path / "reg.local:5000"
    d.mkdir()
    (d / "ca.crt").write_bytes(pki.ca_cert.read_bytes())
    (d / "client.cert").write_bytes(pki.client.cert.read_bytes())
    (d / "client.key").write_bytes(pki.client.key.read_bytes())
    assert find_host_dir([tmp_path], "reg.local:5000") == d
    [ep] = read_host_dir(d, "reg.local:5000")
    assert ep.url == "https://reg.local:5000"
    assert ep.tls.ca_files == (d / "ca.crt",)
    assert ep.tls.client is not None and ep.tls.client.cert == d / "client.cert"
    assert ep.source.kind == "hosts.toml" and ep.source.name == str(d)


# -- malformed files ---------------------------------------------------------------------------


def test_bad_toml_names_file_and_line(tmp_path: Path) -> None:
    p = hosts(tmp_path, 'server = "https://x"\n[host."https://m"\ncapabilities = ["pull"]\n')
    with pytest.raises(ConfigError) as e:
        parse_hosts_toml(p, "x")
    assert e.value.file == str(p) and e.value.line == 2
    assert e.value.exit_code == 2 and e.value.fix
    assert f"{p}:2: invalid TOML" in str(e.value)


def test_missing_ca_file_names_the_key_line(tmp_path: Path) -> None:
    p = hosts(tmp_path, '[host."https://m"]\n  capabilities = ["pull"]\n  ca = "nope.crt"\n')
    with pytest.raises(ConfigError) as e:
        parse_hosts_toml(p, "x")
    assert e.value.line == 3 and "nope.crt" in e.value.message
    assert "relative to the hosts.toml" in (e.value.fix or "")


def test_client_certificate_without_key(tmp_path: Path, pki: PKI) -> None:
    p = hosts(tmp_path, f'client = "{pki.client.cert}"\n')
    with pytest.raises(ConfigError, match="has no key") as e:
        parse_hosts_toml(p, "x")
    assert e.value.line == 1 and "client = [[" in (e.value.fix or "")
    p = hosts(tmp_path, f'client = [["{pki.client.cert}", "{tmp_path}/gone.key"]]\n')
    with pytest.raises(ConfigError, match=r"gone\.key does not exist"):
        parse_hosts_toml(p, "x")


@pytest.mark.parametrize(("text", "line", "needle"), [
    ('[host."https://m"]\n  capabilities = ["pull", "fetch"]\n', 2, "unknown capabilities"),
    ('skip_verify = "yes"\n', 1, "skip_verify must be true or false"),
    ('[host."ftp://m"]\n', 1, r"not an http\(s\) URL"),
    ('server = 5\n', 1, "server must be a string"),
    ('[host."https://m"]\n  header = "x"\n', 2, "header must be a table"),
])
def test_invalid_values(tmp_path: Path, text: str, line: int, needle: str) -> None:
    p = hosts(tmp_path, text)
    with pytest.raises(ConfigError, match=needle) as e:
        parse_hosts_toml(p, "x")
    assert e.value.line == line
