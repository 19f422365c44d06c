"""load_node_policy: system paths, explicit paths first, how the files combine, and how
ImageConfig TLS and flags rank above them in Policy.decide."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from crossfetch.errors import ConfigError
from crossfetch.policy.model import TLSMode
from crossfetch.policy.node import NodeConfig, SystemPaths, load_node_policy
from crossfetch.policy.resolver import Policy
from crossfetch.policy.tlssecret import SecretClientCerts, client_cert_loader
from crossfetch.reference import Reference
from tests.support.certs import PKI, make_pki

DATA = Path(__file__).parent / "data" / "node"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> PKI:
    return make_pki(tmp_path_factory.mktemp("pki"))


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def ref(s: str) -> Reference:
    return Reference.parse(s)


def node(**kw: object) -> NodeConfig:
    n = load_node_policy(system=False, **kw)  # type: ignore[arg-type]
    assert isinstance(n, NodeConfig)
    return n


# -- system paths ------------------------------------------------------------------------------


def fake_root(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    write(root / "etc/containerd/certs.d/sys.example/hosts.toml",
          '[host."https://sys-mirror.example"]\n')
    write(root / "etc/containers/registries.conf",
          '[[registry]]\nprefix = "rc.example"\nblocked = true\n')
    write(root / "etc/containers/registries.conf.d/50-more.conf",
          '[[registry]]\nprefix = "rc2.example"\nblocked = true\n')
    write(root / "etc/docker/daemon.json", '{"insecure-registries": ["10.0.0.0/8"]}')
    return root


def test_system_paths_are_read_from_the_root(tmp_path: Path) -> None:
    n = load_node_policy(system_root=fake_root(tmp_path))
    assert isinstance(n, NodeConfig)
    assert [e.url for e in n.endpoints(ref("sys.example/x:v1"))] == [
        "https://sys-mirror.example", "https://sys.example"]
    assert n.blocked(ref("rc.example/x:v1")) is not None
    assert n.blocked(ref("rc2.example/x:v1")) is not None  # drop-ins too
    [ep] = n.endpoints(ref("10.1.1.1:5000/x:v1"))
    assert ep.tls.allow_http_fallback and ep.source.kind == "daemon.json"


def test_no_system_files_means_no_node_policy(tmp_path: Path) -> None:
    assert load_node_policy(system_root=tmp_path) is None
    assert load_node_policy(system=False, system_root=fake_root(tmp_path)) is None


def test_default_system_paths_are_explicit() -> None:
    paths = SystemPaths()
    assert "etc/containerd/certs.d" in paths.hosts_dirs
    assert ("etc/docker/certs.d", "certs.d") in paths.certs_dirs
    assert paths.registries_conf == "etc/containers/registries.conf"
    assert paths.daemon_json == "etc/docker/daemon.json"


def test_explicit_files_come_before_system_ones(tmp_path: Path) -> None:
    root = fake_root(tmp_path)
    mine = tmp_path / "mine"
    write(mine / "sys.example/hosts.toml", 'server = "https://elsewhere.example"\n')
    conf = write(tmp_path / "r.conf", '[[registry]]\nprefix = "other.example"\nblocked = true\n')
    n = load_node_policy(hosts_dirs=[str(mine)], registries_conf=str(conf), system_root=root)
    assert isinstance(n, NodeConfig)
    assert [e.url for e in n.endpoints(ref("sys.example/x:v1"))] == ["https://elsewhere.example"]
    # An explicit registries.conf replaces the system one.
    assert n.blocked(ref("rc.example/x:v1")) is None
    assert n.blocked(ref("other.example/x:v1")) is not None


def test_missing_explicit_directory_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="--hosts-dir") as e:
        load_node_policy(hosts_dirs=[str(tmp_path / "nope")], system=False)
    assert e.value.exit_code == 2


# -- how node files combine ----------------------------------------------------------------------


def test_hosts_toml_outranks_registries_conf_but_blocked_still_applies(tmp_path: Path) -> None:
    write(tmp_path / "h/reg.example/hosts.toml", 'server = "https://from-hosts.example"\n')
    conf = write(tmp_path / "r.conf", '[[registry]]\nlocation = "reg.example"\n'
                 'blocked = true\n[[registry.mirror]]\nlocation = "m.example"\n')
    n = node(hosts_dirs=[str(tmp_path / "h")], registries_conf=str(conf))
    assert [e.url for e in n.endpoints(ref("reg.example/x:v1"))] == ["https://from-hosts.example"]
    blocked = n.blocked(ref("reg.example/x:v1"))
    assert blocked is not None and blocked.line == 1


def test_certs_d_adds_ca_and_client_to_every_matching_host(tmp_path: Path, pki: PKI) -> None:
    certs = tmp_path / "certs"
    for host in ("m.example", "reg.example"):
        d = certs / host
        d.mkdir(parents=True)
        (d / "ca.crt").write_bytes(pki.ca_cert.read_bytes())
    (certs / "m.example/client.cert").write_bytes(pki.client.cert.read_bytes())
    (certs / "m.example/client.key").write_bytes(pki.client.key.read_bytes())
    conf = write(tmp_path / "r.conf", '[[registry]]\nlocation = "reg.example"\n'
                 '[[registry.mirror]]\nlocation = "m.example"\n')
    n = node(certs_dirs=[str(certs)], registries_conf=str(conf))
    mirror, up = n.endpoints(ref("reg.example/x:v1"))
    assert mirror.tls.ca_files == (certs / "m.example/ca.crt",)
    assert mirror.tls.client is not None and mirror.tls.client.source.kind == "certs.d"
    assert up.tls.ca_files == (certs / "reg.example/ca.crt",) and up.tls.client is None
    # certs.d alone is enough to make an endpoint for its host.
    n = node(certs_dirs=[str(certs)])
    [ep] = n.endpoints(ref("m.example/x:v1"))
    assert ep.url == "https://m.example" and ep.source.kind == "certs.d"


def test_daemon_insecure_relaxes_strict_endpoints_only(tmp_path: Path) -> None:
    write(tmp_path / "h/10.0.0.5:5000/hosts.toml",
          '[host."http://10.0.0.6:5000"]\n[host."https://10.0.0.7:5000"]\n')
    dj = write(tmp_path / "daemon.json", '{"insecure-registries": ["10.0.0.0/24"]}')
    n = node(hosts_dirs=[str(tmp_path / "h")], daemon_json=str(dj))
    plain, relaxed, up = n.endpoints(ref("10.0.0.5:5000/x:v1"))
    assert plain.tls.mode is TLSMode.DISABLED  # already plain: nothing to relax
    assert relaxed.tls.mode is TLSMode.INSECURE and relaxed.tls.allow_http_fallback
    assert relaxed.tls.source.kind == "daemon.json"
    assert relaxed.source.kind == "hosts.toml"  # the endpoint itself still comes from there
    assert up.tls.allow_http_fallback


def test_daemon_registry_mirrors_for_docker_hub(tmp_path: Path) -> None:
    n = node(daemon_json=str(DATA / "daemon.json"))
    assert [(e.url, e.role) for e in n.endpoints(ref("docker.io/library/nginx:1"))] == [
        ("https://hub-mirror.example.com", "mirror"),
        ("https://registry-1.docker.io", "upstream")]


# -- precedence in Policy.decide ------------------------------------------------------------------

IC = """\
apiVersion: pkg.crossplane.io/v1beta1
kind: ImageConfig
metadata: {{name: ic}}
spec:
  matchImages: [{{type: Prefix, prefix: "reg.example/"}}]
  registry:
    tls:
{tls}"""


def test_imageconfig_overrides_node_tls_setting_by_setting(tmp_path: Path, pki: PKI) -> None:
    write(tmp_path / "h/reg.example/hosts.toml",
          f'server = "http://reg.example"\nca = "{pki.ca_cert}"\n'
          f'client = [["{pki.client.cert}", "{pki.client.key}"]]\n'
          '[host."https://m.example"]\n')
    policy = Policy(node=node(hosts_dirs=[str(tmp_path / "h")]))
    policy.objects.add_text(IC.format(tls="      mode: Insecure\n"))
    d = policy.decide(ref("reg.example/x:v1"))
    mirror, up = d.endpoints
    assert mirror.tls.mode is TLSMode.STRICT  # ImageConfig TLS is for the registry itself
    assert up.tls.mode is TLSMode.INSECURE and not up.tls.allow_http_fallback
    assert up.tls.ca_files == (pki.ca_cert,)  # not set by the ImageConfig: the node's stays
    assert up.tls.client is not None and up.tls.client.source.kind == "hosts.toml"
    assert up.tls.source.kind == "imageconfig" and up.source.kind == "hosts.toml"
    assert up.url == "https://reg.example"
    assert d.notes and "overrides mode" in d.notes[0]


def test_flag_ca_bundle_is_added_everywhere(tmp_path: Path, pki: PKI) -> None:
    write(tmp_path / "h/reg.example/hosts.toml", '[host."https://m.example"]\n')
    policy = Policy.load(ca_bundle=pki.ca_cert, env={},
                         node=node(hosts_dirs=[str(tmp_path / "h")]))
    for ep in policy.decide(ref("reg.example/x:v1")).endpoints:
        assert ep.tls.ca_files[-1] == pki.ca_cert


# -- clientCertSecretRef ---------------------------------------------------------------------------


def tls_secret(name: str, pki: PKI, *, key: bool = True, type_: str = "kubernetes.io/tls") -> str:
    def b64(p: Path) -> str:
        return base64.b64encode(p.read_bytes()).decode()

    data = f"  tls.crt: {b64(pki.client.cert)}\n" + (f"  tls.key: {b64(pki.client.key)}\n"
                                                       if key else "")
    return f"---\napiVersion: v1\nkind: Secret\nmetadata: {{name: {name}}}\ntype: {type_}\n" \
        f"data:\n{data}"


def test_client_cert_secret_written_to_private_files(pki: PKI) -> None:
    policy = Policy()
    policy.objects.add_text(IC.format(tls="      clientCertSecretRef: {name: c}\n")
                            + tls_secret("c", pki))
    loader = client_cert_loader(policy.objects)
    assert isinstance(loader, SecretClientCerts)
    policy.client_cert_loader = loader
    up = policy.decide(ref("reg.example/x:v1")).endpoints[-1]
    client = up.tls.client
    assert client is not None and client.source.kind == "secret"
    assert client.key.read_bytes() == pki.client.key.read_bytes()
    assert client.key.stat().st_mode & 0o777 == 0o600
    assert client.cert.parent.stat().st_mode & 0o777 == 0o700
    # The same Secret is written once.
    assert policy.decide(ref("reg.example/y:v1")).endpoints[-1].tls.client == client
    loader.close()
    assert not client.cert.parent.exists()


@pytest.mark.parametrize(("secret", "needle"), [
    (None, "in none of the --config files"),
    ({"key": False}, "the certificate has no key"),
    ({"type_": "Opaque"}, "needs a kubernetes.io/tls Secret"),
])
def test_client_cert_secret_errors(pki: PKI, secret: dict[str, object] | None,
                                   needle: str) -> None:
    policy = Policy()
    text = IC.format(tls="      clientCertSecretRef: {name: c}\n")
    if secret is not None:
        text += tls_secret("c", pki, **secret)  # type: ignore[arg-type]
    policy.objects.add_text(text)
    policy.client_cert_loader = client_cert_loader(policy.objects)
    with pytest.raises(ConfigError, match=needle) as e:
        policy.decide(ref("reg.example/x:v1"))
    assert "kubectl create secret tls c" in (e.value.fix or "")
