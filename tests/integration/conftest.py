"""The real-registry test bed: certificates, registries, pushed packages, token server, proxy.

Every test under ``tests/integration`` is marked ``integration``. Session fixtures start each
registry once; the plain, trusted-TLS and untrusted-TLS registries (and the auth variants)
share one storage directory, so a package pushed once is served by all of them. Content is put
in with skopeo or the raw pusher only, never with crossfetch.
"""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import NamedTuple

import httpx
import pytest

from tests.support import packages as pk
from tests.support.certs import PKI, make_pki
from tests.support.proxy import FaultProxy
from tests.support.push import raw_push, skopeo_push
from tests.support.registry import Registry
from tests.support.tokenserver import TokenServer

HERE = Path(__file__).parent
TEST_USER = "alice"
TEST_PASSWORD = "s3cret"

MANIFEST_ACCEPT = ", ".join(
    [
        pk.OCI_MANIFEST,
        pk.OCI_INDEX,
        pk.DOCKER_MANIFEST,
        "application/vnd.docker.distribution.manifest.list.v2+json",
    ]
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in item.path.parents:
            item.add_marker(pytest.mark.integration)


class PushedPackage(NamedTuple):
    """``ref`` is ``repo:tag`` (prefix a registry's ``host`` for a full reference)."""

    ref: str
    built: pk.BuiltPackage

    @property
    def repo(self) -> str:
        return self.ref.rpartition(":")[0]

    @property
    def tag(self) -> str:
        return self.ref.rpartition(":")[2]


# name -> (repo:tag, builder); pushed by skopeo unless listed in RAW_PUSH.
PACKAGE_SPECS = {
    "function_with_runtime": ("fns/function-runtime:v0.1.0", pk.function_with_runtime),
    "provider_kubernetes": ("providers/provider-kubernetes:v0.15.0", pk.provider_kubernetes),
    "configuration": ("configs/platform-ref-aws:v1.0.0", pk.configuration),
    "two_platform_index": ("multi/function-index:v1", pk.two_platform_index),
    "docker_v2_config_label": ("docker/function-label:v1", pk.docker_v2_config_label),
    "unmarked": ("unmarked/pkg:v1", pk.unmarked),
    "uncompressed_under_gzip_type": ("plain/pkg:v1", pk.uncompressed_under_gzip_type),
}
# skopeo's oci: transport ignores Docker media types in index.json, and skopeo recompresses
# docker-archive layers (breaking the xpkg's config labels): push these byte for byte instead.
RAW_PUSH = {"docker_v2_config_label", "xpkg"}
XPKG_REF = "xpkg/function-cpt:v1"
BIG_REF = "big/provider-big:v1"


def ssl_context(ca: Path) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(ca))


def head_digest(registry: Registry, ref: str, verify: ssl.SSLContext | bool = True) -> str:
    """The digest a registry reports for ``repo:tag`` (independent check, plain httpx)."""
    repo, _, tag = ref.rpartition(":")
    resp = httpx.head(
        f"{registry.url}/v2/{repo}/manifests/{tag}",
        headers={"Accept": MANIFEST_ACCEPT},
        verify=verify,
        timeout=30,
    )
    resp.raise_for_status()
    return str(resp.headers["Docker-Content-Digest"])


def _push(name: str, ref: str, built: pk.BuiltPackage, registry: Registry, pki: PKI) -> None:
    if name in RAW_PUSH:
        repo, _, tag = ref.rpartition(":")
        raw_push(
            registry.url,
            repo,
            tag,
            built.manifest,
            built.media_type,
            built.blobs,
            verify=ssl_context(pki.ca_cert),
        )
    else:
        skopeo_push(
            f"oci:{built.layout}:{built.tag}",
            registry.ref(ref),
            cert_dir=pki.ca_cert,
            all_platforms=built.media_type == pk.OCI_INDEX,
        )


# -- certificates and registries -------------------------------------------------------------
@pytest.fixture(scope="session")
def testbed_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("testbed")


@pytest.fixture(scope="session")
def pki(testbed_dir: Path) -> PKI:
    return make_pki(testbed_dir / "pki")


@pytest.fixture(scope="session")
def registry_storage(testbed_dir: Path) -> Path:
    """The storage every session registry shares."""
    path = testbed_dir / "storage"
    path.mkdir()
    return path


def _serve(registry: Registry) -> Iterator[Registry]:
    with registry:
        yield registry


@pytest.fixture(scope="session")
def http_registry(testbed_dir: Path, registry_storage: Path) -> Iterator[Registry]:
    """Plain HTTP, anonymous."""
    yield from _serve(Registry(testbed_dir, storage=registry_storage))


@pytest.fixture(scope="session")
def https_registry(testbed_dir: Path, registry_storage: Path, pki: PKI) -> Iterator[Registry]:
    """HTTPS with a certificate from the test CA (``pki.ca_cert``), anonymous."""
    yield from _serve(Registry(testbed_dir, tls=pki.server, storage=registry_storage))


@pytest.fixture(scope="session")
def untrusted_registry(testbed_dir: Path, registry_storage: Path, pki: PKI) -> Iterator[Registry]:
    """HTTPS with a certificate from ``pki.other_ca_cert``, a CA tests do not trust."""
    yield from _serve(Registry(testbed_dir, tls=pki.untrusted_server, storage=registry_storage))


@pytest.fixture(scope="session")
def registry_credentials() -> tuple[str, str]:
    return TEST_USER, TEST_PASSWORD


@pytest.fixture(scope="session")
def basic_auth_registry(testbed_dir: Path, registry_storage: Path, pki: PKI) -> Iterator[Registry]:
    """HTTPS (test CA) with htpasswd auth: ``registry_credentials`` only."""
    reg = Registry(
        testbed_dir,
        tls=pki.server,
        htpasswd={TEST_USER: TEST_PASSWORD},
        storage=registry_storage,
    )
    yield from _serve(reg)


@pytest.fixture(scope="session")
def token_server(testbed_dir: Path, pki: PKI) -> Iterator[TokenServer]:
    """HTTPS token server (test CA): anonymous → pull, ``registry_credentials`` → pull,push."""
    with TokenServer(
        pki.server, users={TEST_USER: TEST_PASSWORD}, workdir=testbed_dir / "token"
    ) as server:
        yield server


@pytest.fixture(scope="session")
def token_registry(
    testbed_dir: Path, registry_storage: Path, pki: PKI, token_server: TokenServer
) -> Iterator[Registry]:
    """HTTPS (test CA) registry delegating auth to ``token_server``."""
    reg = Registry(
        testbed_dir, tls=pki.server, token=token_server.registry_auth(), storage=registry_storage
    )
    yield from _serve(reg)


@pytest.fixture(scope="session")
def mtls_registry(testbed_dir: Path, registry_storage: Path, pki: PKI) -> Iterator[Registry]:
    """HTTPS (test CA) requiring a client certificate signed by ``pki.client_ca_cert``."""
    reg = Registry(
        testbed_dir, tls=pki.server, client_ca=pki.client_ca_cert, storage=registry_storage
    )
    yield from _serve(reg)


# -- packages --------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def packages(
    testbed_dir: Path,
    pki: PKI,
    http_registry: Registry,
    https_registry: Registry,
    untrusted_registry: Registry,
) -> dict[str, PushedPackage]:
    """Every package built once and served by the http, https and untrusted registries.

    Keys: the builder names in ``PACKAGE_SPECS`` plus ``xpkg``. The three registries share
    storage, so each package is pushed once (through ``https_registry``) and then checked on
    all three by digest.
    """
    out: dict[str, PushedPackage] = {}
    for name, (ref, builder) in PACKAGE_SPECS.items():
        out[name] = PushedPackage(ref, builder(testbed_dir / "layouts" / name))
    out["xpkg"] = PushedPackage(XPKG_REF, pk.xpkg_package())

    with ThreadPoolExecutor(max_workers=3) as pool:
        jobs = [
            pool.submit(_push, name, p.ref, p.built, https_registry, pki) for name, p in out.items()
        ]
        for job in jobs:
            job.result()

    checks: list[tuple[Registry, ssl.SSLContext | bool]] = [
        (http_registry, True),
        (https_registry, ssl_context(pki.ca_cert)),
        (untrusted_registry, ssl_context(pki.other_ca_cert)),
    ]
    for name, p in out.items():
        for registry, verify in checks:
            got = head_digest(registry, p.ref, verify)
            assert got == p.built.manifest_digest, f"{name} on {registry}: {got}"
    return out


@pytest.fixture(scope="session")
def big_package(testbed_dir: Path, pki: PKI, https_registry: Registry) -> PushedPackage:
    """The ~100 MB package.yaml Provider, built and pushed only when a test asks for it.

    Pushed once; thanks to the shared storage every session registry serves it.
    """
    pushed = PushedPackage(BIG_REF, pk.big_provider(testbed_dir / "layouts" / "big_provider"))
    _push("big_provider", pushed.ref, pushed.built, https_registry, pki)
    assert head_digest(https_registry, pushed.ref, ssl_context(pki.ca_cert)) == (
        pushed.built.manifest_digest
    )
    return pushed


# -- faults ----------------------------------------------------------------------------------
@pytest.fixture
def fault_proxy(http_registry: Registry) -> Iterator[FaultProxy]:
    """A fresh plain-HTTP FaultProxy in front of ``http_registry`` (all faults off)."""
    with FaultProxy(http_registry.url) as proxy:
        yield proxy
