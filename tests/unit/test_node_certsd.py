"""Docker / containers certs.d directories."""

from __future__ import annotations

from pathlib import Path

import pytest

from crossfetch.errors import ConfigError
from crossfetch.policy.node.certsd import CertsDirs, read_certs_dir
from tests.support.certs import PKI, make_pki


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> PKI:
    return make_pki(tmp_path_factory.mktemp("pki"))


def host_dir(root: Path, pki: PKI, *, ca: bool = True, cert: bool = True,
             key: bool = True, host: str = "reg.local:5000") -> Path:
    d = root / host
    d.mkdir(parents=True)
    if ca:
        (d / "ca.crt").write_bytes(pki.ca_cert.read_bytes())
    if cert:
        (d / "client.cert").write_bytes(pki.client.cert.read_bytes())
    if key:
        (d / "client.key").write_bytes(pki.client.key.read_bytes())
    return d


def test_ca_files_and_client_pair(tmp_path: Path, pki: PKI) -> None:
    d = host_dir(tmp_path, pki)
    (d / "extra.crt").write_bytes(pki.other_ca_cert.read_bytes())
    (d / "README").write_text("ignored")
    entry = read_certs_dir(d, "containers-certs.d")
    assert entry is not None
    assert entry.ca_files == (d / "ca.crt", d / "extra.crt")
    assert entry.client is not None
    assert (entry.client.cert, entry.client.key) == (d / "client.cert", d / "client.key")
    assert entry.client.source.kind == "containers-certs.d"


def test_empty_directory_says_nothing(tmp_path: Path, pki: PKI) -> None:
    d = host_dir(tmp_path, pki, ca=False, cert=False, key=False)
    assert read_certs_dir(d) is None


def test_certificate_without_key_is_an_error(tmp_path: Path, pki: PKI) -> None:
    d = host_dir(tmp_path, pki, key=False)
    with pytest.raises(ConfigError, match="has no key") as e:
        read_certs_dir(d)
    assert e.value.file == str(d / "client.cert") and e.value.exit_code == 2
    assert "client.key" in (e.value.fix or "")


def test_key_without_certificate_is_an_error(tmp_path: Path, pki: PKI) -> None:
    d = host_dir(tmp_path, pki, cert=False)
    with pytest.raises(ConfigError, match="has no certificate") as e:
        read_certs_dir(d)
    assert e.value.file == str(d / "client.key")


def test_crt_that_is_not_a_certificate(tmp_path: Path, pki: PKI) -> None:
    d = host_dir(tmp_path, pki, cert=False, key=False)
    (d / "ca.crt").write_text("not a certificate")
    with pytest.raises(ConfigError, match="holds no PEM certificate"):
        read_certs_dir(d)


def test_roots_are_searched_in_order(tmp_path: Path, pki: PKI) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    host_dir(first, pki, cert=False, key=False)
    host_dir(second, pki)
    host_dir(second, pki, host="other:1")
    dirs = CertsDirs([(first, "certs.d"), (second, "containers-certs.d")])
    a = dirs.for_host("reg.local:5000")
    assert a is not None and a.directory == first / "reg.local:5000" and a.client is None
    b = dirs.for_host("other:1")
    assert b is not None and b.source.kind == "containers-certs.d"
    assert dirs.for_host("nowhere") is None
