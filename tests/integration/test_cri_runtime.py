"""The node path against a real containerd and a real registry.

containerd pulls through its CRI image service with only its ``hosts.toml`` directory to tell it
how to reach each registry; crossfetch then reads manifest, config and layers back out of the
content store over gRPC.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import random
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from crossfetch.cri import (
    AuthConfig,
    ContentMissing,
    PullRefused,
    RuntimeBlobSource,
    RuntimeClient,
    RuntimeUnavailable,
)
from crossfetch.oci import Manifest, digest_of, parse_manifest
from tests.support.certs import make_pki
from tests.support.containerd import Containerd, containerd_skip_reason, write_hosts_toml
from tests.support.registry import Registry
from tests.support.testdata import TESTDATA

pytestmark = [pytest.mark.integration, pytest.mark.containerd]

if reason := containerd_skip_reason():
    pytest.skip(reason, allow_module_level=True)

PACKAGE_YAML = (TESTDATA / "function-auto-ready" / "crossplane.yaml").read_bytes()


# -- an image built by hand ------------------------------------------------------------------


def _tar(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o644, 0
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


@dataclass(frozen=True)
class Image:
    layout: Path
    tag: str
    manifest: bytes
    config: bytes
    layers: tuple[bytes, ...]  # compressed, as stored
    index: bytes | None = None

    @property
    def manifest_digest(self) -> str:
        return digest_of(self.manifest)

    @property
    def config_digest(self) -> str:
        return digest_of(self.config)


def build_layout(directory: Path, tag: str = "v1", *, index: bool = False) -> Image:
    """An OCI layout holding a Function-like package: a base layer with package.yaml and a
    second layer (the function's runtime), written by hand so nothing under test made it."""
    blobs = directory / "blobs" / "sha256"
    blobs.mkdir(parents=True, exist_ok=True)

    def put(data: bytes) -> str:
        d = digest_of(data)
        (blobs / d.split(":", 1)[1]).write_bytes(data)
        return d

    tars = [
        _tar({"package.yaml": PACKAGE_YAML}),
        # incompressible, so reads of it span several gRPC messages
        _tar({"function": random.Random(0).randbytes(3 << 20)}),
    ]
    layers = tuple(gzip.compress(t, mtime=0) for t in tars)
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {"Labels": {"io.crossplane.xpkg:" + digest_of(layers[0]): "base"}},
            "rootfs": {"type": "layers", "diff_ids": [digest_of(t) for t in tars]},
        },
        sort_keys=True,
    ).encode()
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": put(config),
                "size": len(config),
            },
            "layers": [
                {
                    "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    "digest": put(layer),
                    "size": len(layer),
                }
                for layer in layers
            ],
        },
        sort_keys=True,
    ).encode()
    root = {
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "digest": put(manifest),
        "size": len(manifest),
    }
    top = None
    if index:  # an image index with one linux/amd64 entry, as multi-arch Functions ship
        top = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": "application/vnd.oci.image.index.v1+json",
                "manifests": [{**root, "platform": {"os": "linux", "architecture": "amd64"}}],
            },
            sort_keys=True,
        ).encode()
        root = {
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "digest": put(top),
            "size": len(top),
        }
    (directory / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    (directory / "index.json").write_text(
        json.dumps(
            {
                "schemaVersion": 2,
                "manifests": [{**root, "annotations": {"org.opencontainers.image.ref.name": tag}}],
            }
        )
    )
    return Image(directory, tag, manifest, config, layers, top)


def push(image: Image, ref: str, *, ca_dir: Path | None = None, creds: str | None = None) -> None:
    args = [
        "skopeo",
        "copy",
        "--quiet",
        "--all",
        f"oci:{image.layout}:{image.tag}",
        f"docker://{ref}",
    ]
    args += [f"--dest-cert-dir={ca_dir}"] if ca_dir else ["--dest-tls-verify=false"]
    if creds:
        args.append(f"--dest-creds={creds}")
    subprocess.run(args, check=True, capture_output=True, timeout=120)


# -- fixtures --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cri")


@pytest.fixture(scope="module")
def image(work: Path) -> Image:
    return build_layout(work / "layout")


@pytest.fixture(scope="module")
def plain(work: Path, image: Image) -> Iterator[Registry]:
    """A plain-HTTP registry holding the image as fns/auto-ready:v1."""
    with Registry(work) as reg:
        push(image, reg.ref("fns/auto-ready:v1"))
        yield reg


@pytest.fixture
def ctd(tmp_path: Path) -> Iterator[Containerd]:
    with Containerd(tmp_path) as c:
        yield c


@pytest.fixture
def client(ctd: Containerd) -> Iterator[RuntimeClient]:
    with RuntimeClient(ctd.endpoint, timeout=30) as c:
        yield c


@pytest.fixture
def pulled(ctd: Containerd, client: RuntimeClient, plain: Registry) -> str:
    """The image pulled into ``ctd`` through CRI; returns its reference."""
    write_hosts_toml(ctd.hosts_dir, plain.host, plain.host, plain_http=True)
    ref = plain.ref("fns/auto-ready:v1")
    client.pull(ref)
    return ref


def _package_yaml(layer_gz: bytes) -> bytes:
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(layer_gz))) as tf:
        member = tf.extractfile("package.yaml")
        assert member is not None
        return member.read()


# -- talking to the runtime ------------------------------------------------------------------


def test_version_names_the_runtime(client: RuntimeClient) -> None:
    v = client.version()
    assert v.runtime_name == "containerd"
    assert v.runtime_version.startswith("1.")
    assert v.runtime_api_version == "v1"


def test_plain_http_registry_is_pulled_only_as_hosts_toml_allows(
    ctd: Containerd, client: RuntimeClient, plain: Registry, image: Image
) -> None:
    ref = plain.ref("fns/auto-ready:v1")
    # The node says this registry speaks TLS: containerd must refuse, and the fix must be the
    # hosts.toml that allows plain HTTP for exactly this host.
    write_hosts_toml(ctd.hosts_dir, plain.host, f"https://{plain.host}")
    with pytest.raises(PullRefused) as err:
        client.pull(ref)
    assert "server gave HTTP response to HTTPS client" in err.value.detail["runtimeMessage"]
    assert err.value.cause == "pull-refused" and err.value.host == plain.host
    assert f'server = "http://{plain.host}"' in (err.value.fix or "")
    assert client.image_status(ref) is None

    write_hosts_toml(ctd.hosts_dir, plain.host, plain.host, plain_http=True)
    result = client.ensure(ref)
    assert result.pulled
    # CRI's image id is the config digest; the manifest digest is only in repo_digests.
    assert result.image.id == image.config_digest
    assert f"{plain.host}/fns/auto-ready@{image.manifest_digest}" in result.image.repo_digests
    assert client.image_status(ref) == result.image


def test_ensure_does_not_touch_the_registry_when_the_image_is_present(
    client: RuntimeClient, plain: Registry, pulled: str
) -> None:
    mark = plain.mark()
    result = client.ensure(pulled)
    assert not result.pulled
    source = RuntimeBlobSource(client, pulled)
    raw, _, _ = source.fetch_manifest("v1")
    manifest = parse_manifest(raw)
    assert isinstance(manifest, Manifest)
    b"".join(source.open_blob(manifest.layers[0]))
    assert plain.requests(since=mark) == []


def test_manifest_config_and_layers_come_from_the_content_store(
    client: RuntimeClient, pulled: str, image: Image
) -> None:
    target = client.manifest_target(pulled)
    assert (target.media_type, target.digest, target.size) == (
        "application/vnd.oci.image.manifest.v1+json",
        image.manifest_digest,
        len(image.manifest),
    )
    source = RuntimeBlobSource(client, pulled)
    raw, media_type, digest = source.fetch_manifest("v1")
    assert (raw, digest) == (image.manifest, image.manifest_digest)
    assert media_type == "application/vnd.oci.image.manifest.v1+json"
    assert source.fetch_manifest(image.manifest_digest)[0] == image.manifest
    manifest = parse_manifest(raw, media_type, digest)
    assert isinstance(manifest, Manifest)
    config = b"".join(source.open_blob(manifest.config))
    assert hashlib.sha256(config).hexdigest() == manifest.config.digest.split(":")[1]
    assert config == image.config
    base = b"".join(source.open_blob(manifest.layers[0]))
    assert digest_of(base) == manifest.layers[0].digest
    assert _package_yaml(base) == PACKAGE_YAML
    info = client.info(manifest.layers[1].digest)
    assert info.size == manifest.layers[1].size
    # A digest reference resolves to the same record.
    by_digest = client.manifest_target(pulled.rsplit(":", 1)[0] + "@" + image.manifest_digest)
    assert by_digest == target


def test_package_yaml_reads_through_the_shared_xpkg_pipeline(
    tmp_path: Path, client: RuntimeClient, pulled: str
) -> None:
    from crossfetch.xpkg.extract import extract_package

    source = RuntimeBlobSource(client, pulled)
    raw, media_type, digest = source.fetch_manifest("v1")
    manifest = parse_manifest(raw, media_type, digest)
    assert isinstance(manifest, Manifest)
    sink = io.BytesIO()
    read = extract_package(source, manifest, sink, tmp_dir=tmp_path)
    assert sink.getvalue() == PACKAGE_YAML
    assert read.how == "label" and read.layer == manifest.layers[0]


def test_ranged_reads_return_the_requested_slice(
    client: RuntimeClient, pulled: str, image: Image
) -> None:
    layer = image.layers[1]
    d = digest_of(layer)
    assert b"".join(client.read(d, offset=10, size=100)) == layer[10:110]
    # Across message boundaries: containerd numbers these chunks from the requested offset.
    chunks = list(client.read(d, offset=1_500_000, size=1_200_000))
    assert len(chunks) > 1
    assert b"".join(chunks) == layer[1_500_000:2_700_000]
    assert b"".join(client.read(d, offset=len(layer) - 7)) == layer[-7:]
    assert b"".join(client.read(d)) == layer


def test_an_index_is_read_entry_by_entry(
    work: Path, ctd: Containerd, client: RuntimeClient, plain: Registry
) -> None:
    img = build_layout(work / "layout-index", index=True)
    assert img.index is not None
    ref = plain.ref("fns/multi:v1")
    push(img, ref)
    write_hosts_toml(ctd.hosts_dir, plain.host, plain.host, plain_http=True)
    client.pull(ref)
    source = RuntimeBlobSource(client, ref)
    raw, media_type, digest = source.fetch_manifest("v1")
    assert (raw, media_type) == (img.index, "application/vnd.oci.image.index.v1+json")
    index = parse_manifest(raw, media_type, digest)
    assert not isinstance(index, Manifest)
    entry = index.select("linux/amd64")
    raw, media_type, digest = source.fetch_manifest(entry.digest)
    assert (raw, digest) == (img.manifest, img.manifest_digest)
    assert media_type == "application/vnd.oci.image.manifest.v1+json"


def test_tls_registry_with_ca_in_hosts_toml(
    work: Path, ctd: Containerd, client: RuntimeClient, image: Image
) -> None:
    pki = make_pki(work / "pki-tls")
    ca_dir = work / "skopeo-ca"
    ca_dir.mkdir(exist_ok=True)
    (ca_dir / "ca.crt").write_bytes(pki.ca_cert.read_bytes())
    with Registry(work, tls=pki.server) as reg:
        push(image, reg.ref("fns/auto-ready:v1"), ca_dir=ca_dir)
        # registry.test is in the certificate but not in DNS: only hosts.toml can route it,
        # and a non-loopback name keeps containerd from assuming plain HTTP.
        name = f"registry.test:{reg.port}"
        ref = f"{name}/fns/auto-ready:v1"
        write_hosts_toml(ctd.hosts_dir, name, reg.url)
        with pytest.raises(PullRefused) as err:
            client.pull(ref)
        assert "x509" in err.value.detail["runtimeMessage"]
        assert 'ca = "/etc/containerd/certs.d/' in (err.value.fix or "")
        write_hosts_toml(ctd.hosts_dir, name, reg.url, ca=pki.ca_cert)
        assert client.ensure(ref).pulled
        _, _, digest = RuntimeBlobSource(client, ref).fetch_manifest("v1")
        assert digest == image.manifest_digest


def test_htpasswd_registry_with_auth_config(
    work: Path, ctd: Containerd, client: RuntimeClient, image: Image
) -> None:
    with Registry(work, htpasswd={"alice": "s3cret"}) as reg:
        ref = reg.ref("fns/auto-ready:v1")
        push(image, ref, creds="alice:s3cret")
        write_hosts_toml(ctd.hosts_dir, reg.host, reg.host, plain_http=True)
        with pytest.raises(PullRefused) as err:
            client.pull(ref)
        assert "401" in err.value.detail["runtimeMessage"]
        assert "credentials" in (err.value.fix or "")
        # A bare host:port server address (kubelet's form) must reach containerd as a URL.
        client.pull(ref, AuthConfig(username="alice", password="s3cret", server_address=reg.host))
        assert client.image_status(ref) is not None
        ref2 = reg.ref("fns/auto-ready:v2")
        push(image, ref2, creds="alice:s3cret")
        client.pull(ref2, AuthConfig(username="alice", password="s3cret"))
        assert client.image_status(ref) is not None
        assert any(e.status == 200 and "/manifests/" in e.path for e in reg.requests())


# -- errors ----------------------------------------------------------------------------------


def test_missing_socket_names_the_mount(tmp_path: Path) -> None:
    with pytest.raises(RuntimeUnavailable) as err:
        RuntimeClient(f"unix://{tmp_path}/containerd.sock").version()
    assert err.value.cause == "socket-missing"
    assert "hostPath" in (err.value.fix or "") and "--runtime-endpoint" in (err.value.fix or "")


def test_socket_without_a_server_is_unreachable(tmp_path: Path) -> None:
    import socket

    path = tmp_path / "dead.sock"
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(path))  # bound but never listening: connect() is refused
    try:
        with pytest.raises(RuntimeUnavailable) as err:
            RuntimeClient(str(path), timeout=5).version()
        assert err.value.cause == "runtime-unreachable"
    finally:
        s.close()


def test_cri_disabled_by_config(tmp_path: Path) -> None:
    with Containerd(tmp_path, disable_cri=True) as ctd, RuntimeClient(ctd.endpoint) as c:
        with pytest.raises(RuntimeUnavailable) as err:
            c.version()
        assert err.value.cause == "cri-disabled"
        assert "containerd 1." in err.value.message
        assert 'disabled_plugins = ["cri"]' in (err.value.fix or "")
        with pytest.raises(RuntimeUnavailable) as err:
            c.pull("127.0.0.1:1/x:v1")
        assert err.value.cause == "cri-disabled"


def test_unknown_host_is_refused_with_the_runtime_message(client: RuntimeClient) -> None:
    with pytest.raises(PullRefused) as err:
        client.pull("nowhere.invalid/fns/x:v1")
    assert "nowhere.invalid" in err.value.detail["runtimeMessage"]
    assert 'server = "https://nowhere.invalid"' in (err.value.fix or "")


def test_untrusted_tls_registry_without_hosts_toml_is_refused(
    work: Path, client: RuntimeClient
) -> None:
    pki = make_pki(work / "pki-untrusted")
    with Registry(work, tls=pki.untrusted_server) as reg:
        with pytest.raises(PullRefused) as err:
            client.pull(reg.ref("fns/x:v1"))
        # containerd speaks plain HTTP to loopback hosts without a hosts.toml: the TLS
        # registry answers 400, and the fix is a hosts.toml declaring https with its CA.
        assert "400" in err.value.detail["runtimeMessage"]
        assert f'server = "https://{reg.host}"' in (err.value.fix or "")


def test_garbage_collected_layer_is_reported_with_the_fix(
    ctd: Containerd, client: RuntimeClient, pulled: str, image: Image
) -> None:
    base = digest_of(image.layers[0])
    ctd.ctr("content", "rm", base)
    assert client.image_status(pulled) is not None  # the image is still listed
    source = RuntimeBlobSource(client, pulled)
    manifest = parse_manifest(source.fetch_manifest("v1")[0])
    assert isinstance(manifest, Manifest)
    with pytest.raises(ContentMissing) as err:
        b"".join(source.open_blob(manifest.layers[0]))
    assert err.value.cause == "layer-missing"
    fix = err.value.fix or ""
    assert f"crictl rmi {pulled}" in fix and "--via direct" in fix


def test_permission_denied_names_the_group(ctd: Containerd) -> None:
    """A non-root user against the root-owned socket, as a Pod without privileges sees it."""
    system_python = Path("/usr/bin/python3")
    # Our interpreter lives under /root, out of nobody's reach; the check needs only stdlib.
    probe = subprocess.run(
        [str(system_python), "-c", "import sys; print(sys.version_info >= (3, 11))"],
        capture_output=True,
        text=True,
        check=False,
    )
    if probe.stdout.strip() != "True":
        pytest.skip("needs a system python >= 3.11 to run crossfetch as nobody")
    os.chmod(ctd.socket.parent, 0o711)  # traversable like /run/containerd, socket stays 0660
    src = Path(__file__).resolve().parents[2] / "src"
    code = (
        "from crossfetch.cri import RuntimeClient, RuntimeUnavailable\n"
        "try:\n"
        f"    RuntimeClient({ctd.endpoint!r}).version()\n"
        "except RuntimeUnavailable as e:\n"
        "    print(e.cause); print(e.fix)\n"
    )
    r = subprocess.run(
        [str(system_python), "-c", code],
        capture_output=True,
        text=True,
        user=65534,
        group=65534,
        extra_groups=[],
        env={"PYTHONPATH": str(src)},
        check=False,
        timeout=60,
    )
    lines = r.stdout.splitlines()
    assert lines and lines[0] == "permission-denied", r.stderr
    assert "supplementalGroups: [0]" in r.stdout


# -- pieces that need no runtime -------------------------------------------------------------


def test_importing_the_package_does_not_import_grpc() -> None:
    code = "import sys, crossfetch.cri; print('grpc' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "False"


@pytest.mark.parametrize(
    ("ref", "name"),
    [
        ("127.0.0.1:5000/fns/x:v1", "127.0.0.1:5000/fns/x:v1"),
        ("127.0.0.1:5000/fns/x", "127.0.0.1:5000/fns/x:latest"),
        ("127.0.0.1:5000/fns/x:v1@sha256:" + "a" * 64, "127.0.0.1:5000/fns/x@sha256:" + "a" * 64),
        ("nginx", "docker.io/library/nginx:latest"),
        ("index.docker.io/org/fn:v2", "docker.io/org/fn:v2"),
    ],
)
def test_containerd_record_names(ref: str, name: str) -> None:
    from crossfetch.cri import containerd_name

    assert containerd_name(ref) == name
