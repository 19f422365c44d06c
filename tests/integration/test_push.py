"""``crossfetch push`` (and ``push --build``) against the real registry, checked by skopeo.

What crossfetch pushed is read back by skopeo (inspect, inspect --raw, copy) and by
``crossfetch pull``; the package.yaml that comes back is compared byte for byte with the one in
the package file. Every registry of the test bed: HTTPS with the test CA, plain HTTP under
tls.mode Disabled (refused under Strict), htpasswd, token auth. Each test pushes to its own
repository (the session registries share storage).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import shutil
import subprocess
import tarfile
from pathlib import Path
from typing import Any

import pytest

from crossfetch.xpkg.build import build, single_file_tar
from tests.integration.conftest import TEST_PASSWORD, TEST_USER
from tests.integration.test_auth_tokens import token_requests
from tests.support.certs import PKI
from tests.support.cli import CliResult, invoke
from tests.support.packages import XPKG_FILE
from tests.support.registry import Registry
from tests.support.tokenserver import TokenServer
from tests.unit.test_build import recover_inputs

pytestmark = pytest.mark.skipif(shutil.which("skopeo") is None, reason="needs skopeo")


def disabled_policy(tmp_path: Path, registry: Registry, mode: str = "Disabled") -> Path:
    p = tmp_path / f"policy-{mode}.yaml"
    p.write_text("apiVersion: pkg.crossplane.io/v1beta1\nkind: ImageConfig\nmetadata: {name: t}\n"
                 f"spec:\n  matchImages: [{{type: Prefix, prefix: '{registry.host}/'}}]\n"
                 f"  registry:\n    tls:\n      mode: {mode}\n")
    return p


def cf(*args: str, stdin: str | None = None) -> CliResult:
    return invoke([*args, "--no-node-config"], input=stdin,
                  env={"DOCKER_CONFIG": "/nonexistent", "CROSSFETCH_NO_PROGRESS": "1"})


def skopeo(*args: str, pki: PKI | None = None, tls: bool = True,
           creds: str | None = None) -> str:
    cmd = ["skopeo", "--insecure-policy", *args[:1]]
    if args[0] in ("inspect", "copy"):
        if pki is not None:
            certs = pki.ca_cert.parent / "skopeo-certs"
            certs.mkdir(exist_ok=True)
            shutil.copy(pki.ca_cert, certs / "ca.crt")
            flag = "--cert-dir" if args[0] == "inspect" else "--src-cert-dir"
            cmd += [flag, str(certs)]
        elif not tls:
            cmd.append("--tls-verify=false" if args[0] == "inspect" else "--src-tls-verify=false")
        if creds:
            cmd += ["--creds" if args[0] == "inspect" else "--src-creds", creds]
    proc = subprocess.run([*cmd, *args[1:]], capture_output=True, text=True, timeout=120,
                          check=False)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def package_yaml_of(xpkg: Path) -> bytes:
    """package.yaml from the layer the config labels ``base``."""
    with tarfile.open(xpkg) as t:
        names = t.getnames()
        cfg = json.loads(t.extractfile(next(n for n in names if n.startswith("sha256:"))).read())  # type: ignore[union-attr]
        (key,) = [k for k, v in cfg["config"]["Labels"].items() if v == "base"]
        gz = t.extractfile(key.rsplit(":", 1)[1] + ".tar.gz").read()  # type: ignore[union-attr]
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(gz))) as layer:
        return layer.extractfile("package.yaml").read()  # type: ignore[union-attr]


@pytest.fixture
def built(tmp_path: Path) -> Path:
    root = recover_inputs(XPKG_FILE, tmp_path / "src")
    return build(root, examples_root=root / "examples", output=tmp_path / "fn.xpkg").path


def pull_back(tmp_path: Path, ref: str, *args: str) -> bytes:
    out = tmp_path / "pulled.yaml"
    r = cf("pull", ref, "--cache-dir", str(tmp_path / "cache"), "--pull-policy", "Always",
           "-o", str(out), *args)
    assert r.exit_code == 0, r.output
    return out.read_bytes()


def test_https_self_signed_skopeo_reads_it_and_pull_is_byte_identical(
        tmp_path: Path, pki: PKI, https_registry: Registry, built: Path) -> None:
    ref = https_registry.ref("push/https:v1")
    r = cf("push", "-f", str(built), ref, "--ca-bundle", str(pki.ca_cert), "-O", "json",
           "-a", "org.opencontainers.image.source=https://example.com/fn")
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout)
    assert d["ok"] and d["digest"].startswith("sha256:")
    assert d["blobs"]["uploaded"] == 3
    # skopeo reads it: the digest, the layer annotations, the manifest annotation.
    info = json.loads(skopeo("inspect", f"docker://{ref}", pki=pki))
    assert info["Digest"] == d["digest"]
    raw = json.loads(skopeo("inspect", "--raw", f"docker://{ref}", pki=pki))
    assert [x["annotations"]["io.crossplane.xpkg"] for x in raw["layers"]] == ["base",
                                                                               "upbound"]
    assert raw["annotations"] == {"org.opencontainers.image.source": "https://example.com/fn"}
    skopeo("copy", f"docker://{ref}", f"oci:{tmp_path / 'oci'}:v1", pki=pki)
    assert (tmp_path / "oci" / "index.json").exists()
    # crossfetch pull reads it back, byte-identical, by tag and by the digest push printed.
    assert pull_back(tmp_path, ref, "--ca-bundle", str(pki.ca_cert)) == package_yaml_of(built)
    by_digest = d["pull"].split()[2]
    assert pull_back(tmp_path, by_digest, "--ca-bundle", str(pki.ca_cert)) == \
        package_yaml_of(built)
    # ... and so does a pull made exactly as Crossplane would make it.
    assert pull_back(tmp_path, ref, "--ca-bundle", str(pki.ca_cert), "--as-crossplane") == \
        package_yaml_of(built)


def test_real_cli_xpkg_pushes_and_pulls_back_identical(
        tmp_path: Path, http_registry: Registry, monkeypatch: pytest.MonkeyPatch) -> None:
    policy = disabled_policy(tmp_path, http_registry)
    ref = http_registry.ref("push/real-xpkg:v1")
    here = tmp_path / "cwd"
    here.mkdir()
    shutil.copy(XPKG_FILE, here / XPKG_FILE.name)
    monkeypatch.chdir(here)  # no -f: the single .xpkg in the working directory
    r = cf("push", ref, "--config", str(policy))
    assert r.exit_code == 0, r.output
    assert XPKG_FILE.name in r.stdout
    assert pull_back(tmp_path, ref, "--config", str(policy)) == package_yaml_of(XPKG_FILE)
    raw = json.loads(skopeo("inspect", "--raw", f"docker://{ref}", tls=False))
    # The config is uploaded unchanged: digests are the real CLI's own.
    with tarfile.open(XPKG_FILE) as t:
        cfg_name = next(n for n in t.getnames() if n.startswith("sha256:"))
    assert raw["config"]["digest"] == cfg_name


def test_plain_http_refused_under_strict(tmp_path: Path, http_registry: Registry,
                                         built: Path) -> None:
    mark = http_registry.mark()
    ref = http_registry.ref("push/strict:v1")
    r = cf("push", "-f", str(built), ref)  # no policy: Strict
    assert r.exit_code == 1
    assert r.stderr.startswith("error: ") and "policy requires TLS (Strict)" in r.stderr
    assert "mode: Disabled" in r.stderr  # the fix names the ImageConfig that allows it
    strict = disabled_policy(tmp_path, http_registry, mode="Strict")
    assert cf("push", "-f", str(built), ref, "--config", str(strict)).exit_code == 1
    # Nothing reached the registry over plain HTTP (TLS was refused before any request).
    assert [e for e in http_registry.requests(mark) if e.path.startswith("/v2/push/")] == []


def test_htpasswd_needs_and_uses_credentials(tmp_path: Path, pki: PKI,
                                             basic_auth_registry: Registry, built: Path) -> None:
    ref = basic_auth_registry.ref("push/basic:v1")
    anon = cf("push", "-f", str(built), ref, "--ca-bundle", str(pki.ca_cert))
    assert anon.exit_code == 1 and "401" in anon.stderr and "fix:" in anon.stderr
    r = cf("push", "-f", str(built), ref, "--ca-bundle", str(pki.ca_cert), "-u", TEST_USER,
           "--password-stdin", stdin=TEST_PASSWORD + "\n")
    assert r.exit_code == 0, r.output
    assert TEST_PASSWORD not in r.output
    info = json.loads(skopeo("inspect", f"docker://{ref}", pki=pki,
                             creds=f"{TEST_USER}:{TEST_PASSWORD}"))
    assert info["Layers"]


def test_token_auth_asks_for_pull_push(tmp_path: Path, pki: PKI, token_registry: Registry,
                                       token_server: TokenServer, built: Path) -> None:
    ref = token_registry.ref("push/token:v1")
    since = len(token_server.requests)
    r = cf("push", "-f", str(built), ref, "--ca-bundle", str(pki.ca_cert), "-u", TEST_USER,
           "--password-stdin", "-O", "json", stdin=TEST_PASSWORD + "\n")
    assert r.exit_code == 0, r.output
    scopes = [s for _, s, _ in token_requests(token_server, since)]
    assert scopes == [["repository:push/token:pull,push"]]  # one token, the push scope
    # Anonymous: the token server grants pull only; one widening retry, then a clear error.
    anon = cf("push", "-f", str(built), token_registry.ref("push/token-anon:v1"),
              "--ca-bundle", str(pki.ca_cert))
    assert anon.exit_code == 1 and "insufficient_scope" in anon.stderr
    assert "give credentials" in anon.stderr


def test_token_scope_upgrade_from_a_pull_token(tmp_path: Path, pki: PKI,
                                               token_registry: Registry,
                                               token_server: TokenServer, built: Path) -> None:
    """The API path: a client that pulled (pull token cached) then pushes gets a pull,push
    token for the upload: the scope is upgraded, never reused."""
    from crossfetch import Cache, Client, Policy
    from crossfetch.policy.credentials import keychain_provider
    from crossfetch.upload import push

    ref = token_registry.ref("push/upgrade:v1")
    policy = Policy.load(ca_bundle=pki.ca_cert, env={})
    policy.keychains = keychain_provider(policy.objects, username=TEST_USER,
                                         password=TEST_PASSWORD, env={})
    with Client(policy, cache=Cache(tmp_path / "c")) as c:
        push(c, ref, [built])
    with Client(policy, cache=Cache(tmp_path / "c")) as c:  # a fresh token cache
        since = len(token_server.requests)
        c.head(ref)  # a pull-scope token
        result = push(c, ref.replace(":v1", ":v2"), [built])
    assert result.skipped == 3
    assert [s for _, s, _ in token_requests(token_server, since)] == [
        ["repository:push/upgrade:pull"], ["repository:push/upgrade:pull,push"]]


def runtime_tarball(path: Path, arch: str, payload: bytes) -> Path:
    layer = single_file_tar("bin/function", payload)
    cfg = json.dumps({"architecture": arch, "os": "linux", "rootfs": {
        "type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(layer).hexdigest()]},
        "config": {"Entrypoint": ["/bin/function"]}}).encode()
    manifest = json.dumps([{"Config": "config.json", "RepoTags": None,
                            "Layers": ["layer.tar"]}]).encode()
    with tarfile.open(path, "w") as t:
        for name, data in (("config.json", cfg), ("layer.tar", layer),
                           ("manifest.json", manifest)):
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            t.addfile(ti, io.BytesIO(data))
    return path


def test_two_platforms_give_an_index_skopeo_shows(tmp_path: Path, pki: PKI,
                                                  https_registry: Registry) -> None:
    root = recover_inputs(XPKG_FILE, tmp_path / "src")
    files = []
    for arch in ("amd64", "arm64"):
        rt = runtime_tarball(tmp_path / f"rt-{arch}.tar", arch, arch.encode() * 1000)
        files.append(build(root, examples_root=root / "examples", runtime_image=rt,
                           output=tmp_path / f"fn-{arch}.xpkg").path)
    ref = https_registry.ref("push/multi:v1")
    r = cf("push", "-f", ",".join(map(str, files)), ref, "--ca-bundle", str(pki.ca_cert),
           "-O", "json")
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout)
    raw = json.loads(skopeo("inspect", "--raw", f"docker://{ref}", pki=pki))
    assert raw["mediaType"] == "application/vnd.oci.image.index.v1+json"
    assert [m["platform"] for m in raw["manifests"]] == [
        {"architecture": "amd64", "os": "linux"}, {"architecture": "arm64", "os": "linux"}]
    assert [m["digest"] for m in raw["manifests"]] == [i["digest"] for i in d["images"]]
    assert d["digest"] == "sha256:" + hashlib.sha256(
        skopeo("inspect", "--raw", f"docker://{ref}", pki=pki).encode()).hexdigest()
    # Crossplane's platform, linux/amd64, is what pull picks; its package.yaml comes back.
    assert pull_back(tmp_path, ref, "--ca-bundle", str(pki.ca_cert)) == package_yaml_of(files[0])


def test_existing_blobs_skipped_chunked_upload_and_mount(
        tmp_path: Path, pki: PKI, https_registry: Registry, built: Path) -> None:
    common = ["--ca-bundle", str(pki.ca_cert), "-O", "json"]
    first = cf("push", "-f", str(built), https_registry.ref("push/chunked:v1"),
               "--chunk-size", "4k", *common)
    assert first.exit_code == 0, first.output
    mark = https_registry.mark()
    again = json.loads(cf("push", "-f", str(built), https_registry.ref("push/chunked:v2"),
                          *common).stdout)
    assert again["blobs"] == {"uploaded": 0, "skipped": 3, "mounted": 0, "bytesSent": 0}
    assert {e.method for e in https_registry.requests(mark)} == {"HEAD", "PUT"}
    mounted = json.loads(cf("push", "-f", str(built), https_registry.ref("push/mounted:v1"),
                            "--mount-from", "push/chunked", *common).stdout)
    assert mounted["blobs"]["mounted"] == 3 and mounted["blobs"]["uploaded"] == 0
    skopeo("copy", f"docker://{https_registry.ref('push/mounted:v1')}",
           f"oci:{tmp_path / 'oci'}:v1", pki=pki)
    chunks = [e for e in https_registry.requests() if e.method == "PATCH"
              and e.path.startswith("/v2/push/chunked/")]
    assert len(chunks) >= 3  # the 9 KB base layer went in 4 KiB pieces


def test_push_build_is_the_inner_loop(tmp_path: Path, http_registry: Registry) -> None:
    root = recover_inputs(XPKG_FILE, tmp_path / "src")
    policy = disabled_policy(tmp_path, http_registry)
    ref = http_registry.ref("push/inner:dev")
    r = cf("push", "--build", str(root), "-e", str(root / "examples"), ref,
           "--config", str(policy))
    assert r.exit_code == 0, r.output
    digest = r.stdout.splitlines()[0]
    assert digest.startswith("sha256:")
    (hint,) = [line.split("read back", 1)[1].split() for line in r.stdout.splitlines()
               if "read back" in line]
    assert hint[:3] == ["crossfetch", "pull", f"{http_registry.host}/push/inner@{digest}"]
    out = tmp_path / "back.yaml"
    back = cf(*hint[1:-2], "-o", str(out), "--cache-dir", str(tmp_path / "c"))
    assert back.exit_code == 0, back.output
    assert out.read_bytes() == package_yaml_of(build(root, examples_root=root / "examples",
                                                     output=tmp_path / "same.xpkg").path)
    assert not list(root.glob("*.xpkg"))  # the build went to a temporary file


def test_rewrite_and_mirror_never_apply_to_a_push(tmp_path: Path, http_registry: Registry,
                                                 https_registry: Registry, pki: PKI,
                                                 built: Path) -> None:
    policy = tmp_path / "rewrite.yaml"
    policy.write_text(
        "apiVersion: pkg.crossplane.io/v1beta1\nkind: ImageConfig\nmetadata: {name: rw}\n"
        f"spec:\n  matchImages: [{{type: Prefix, prefix: '{https_registry.host}/push/'}}]\n"
        f"  rewriteImage: {{prefix: '{http_registry.host}/elsewhere/'}}\n")
    # A containerd mirror for the registry (nothing listens there: a push that used it fails).
    hosts = tmp_path / "certs.d" / https_registry.host
    hosts.mkdir(parents=True)
    (hosts / "hosts.toml").write_text('[host."http://127.0.0.1:1"]\n'
                                      '  capabilities = ["pull", "resolve"]\n')
    ref = https_registry.ref("push/rewritten:v1")
    mark = http_registry.mark()
    r = cf("push", "-f", str(built), ref, "--config", str(policy), "--ca-bundle",
           str(pki.ca_cert), "--hosts-dir", str(tmp_path / "certs.d"), "-O", "json")
    assert r.exit_code == 0, r.output
    rewrite, mirror = json.loads(r.stdout)["notes"]
    assert "rewrites pulls" in rewrite and "as written" in rewrite
    assert "mirror http://127.0.0.1:1" in mirror and "goes to the registry itself" in mirror
    assert [e for e in http_registry.requests(mark) if "/elsewhere/" in e.path] == []
    json.loads(skopeo("inspect", f"docker://{ref}", pki=pki))


def test_bad_destinations_and_inputs(tmp_path: Path, http_registry: Registry,
                                     built: Path) -> None:
    for ref in (http_registry.host + "/push/notag", http_registry.host + "/p@sha256:" + "a" * 64):
        r = cf("push", "-f", str(built), ref)
        assert r.exit_code == 2 and "fully qualified tag" in r.stderr
    notpkg = tmp_path / "x.xpkg"
    notpkg.write_bytes(b"not a tar")
    r = cf("push", "-f", str(notpkg), http_registry.ref("push/bad:v1"), "-O", "json")
    d: dict[str, Any] = json.loads(r.stdout)
    assert r.exit_code == 2 and d["ok"] is False and "package file" in d["message"]


def test_no_password_in_clear_over_plain_http_unless_allowed(tmp_path: Path,
                                                              built: Path) -> None:
    with Registry(tmp_path / "reg", htpasswd={TEST_USER: TEST_PASSWORD}) as reg:
        policy = disabled_policy(tmp_path, reg)
        ref = reg.ref("push/clear:v1")
        args = ["push", "-f", str(built), ref, "--config", str(policy), "-u", TEST_USER,
                "--password-stdin"]
        r = cf(*args, stdin=TEST_PASSWORD + "\n")
        assert r.exit_code == 1 and "over plain HTTP" in r.stderr
        assert "--allow-plain-http-credentials" in r.stderr
        assert [e for e in reg.requests() if e.method != "HEAD" and e.status != 401] == []
        ok = cf(*args, "--allow-plain-http-credentials", stdin=TEST_PASSWORD + "\n")
        assert ok.exit_code == 0, ok.output


def test_progress_is_reported_per_blob(tmp_path: Path, http_registry: Registry,
                                       built: Path) -> None:
    from crossfetch import Cache, Client, Policy
    from crossfetch.upload import push

    seen: list[tuple[str, int]] = []
    sent: list[int] = []

    class Bar:
        def start(self, description: str, total: int) -> Any:
            seen.append((description, total))
            return sent.append

        def finish(self) -> None:
            seen.append(("finish", 0))

    policy = Policy.load([disabled_policy(tmp_path, http_registry)], env={})
    with Client(policy, cache=Cache(tmp_path / "c"), progress=Bar()) as c:
        result = push(c, http_registry.ref("push/progress:v1"), [built])
    assert [d for d, _ in seen] == ["fn.xpkg layer 1/2", "fn.xpkg layer 2/2", "fn.xpkg config",
                                    "finish"]
    assert sum(sent) == result.bytes_sent
