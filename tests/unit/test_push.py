"""``crossfetch push`` without a registry: the manifest a package file becomes, the inputs."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import pytest

from crossfetch import Client, Policy
from crossfetch.errors import UsageError
from crossfetch.upload import PackageFile, find_package_file, parse_annotations, parse_destination
from tests.support.cli import invoke
from tests.support.packages import XPKG_FILE


def test_manifest_of_the_real_xpkg_is_what_annotate_layers_gives() -> None:
    pkg = PackageFile.open(XPKG_FILE)
    m = json.loads(pkg.manifest({"k": "v"}))
    with tarfile.open(XPKG_FILE) as t:
        (cfg,) = [n for n in t.getnames() if n.startswith("sha256:")]
    assert m["mediaType"] == "application/vnd.docker.distribution.manifest.v2+json"
    assert m["config"] == {"mediaType": "application/vnd.docker.container.image.v1+json",
                           "size": 555, "digest": cfg}
    assert [(x["digest"][7:19], x["size"], x["annotations"]) for x in m["layers"]] == [
        ("2e7cf2bb895e", 9446, {"io.crossplane.xpkg": "base"}),
        ("45596ee6ec04", 913, {"io.crossplane.xpkg": "upbound"})]
    assert m["annotations"] == {"k": "v"}
    assert list(m) == ["schemaVersion", "mediaType", "config", "layers", "annotations"]
    assert pkg.platform == {"architecture": "", "os": ""}
    # The streamed layer bytes are the archive member's.
    base = pkg.layers[0]
    with tarfile.open(XPKG_FILE) as t:
        member = t.extractfile(base.digest[7:] + ".tar.gz").read()  # type: ignore[union-attr]
    assert b"".join(pkg.read(base)) == member
    assert b"".join(pkg.read(base, 100, 200)) == member[100:200]


def test_annotations_and_destination() -> None:
    assert parse_annotations(["a=b", "c=d=e"]) == {"a": "b", "c": "d=e"}
    with pytest.raises(UsageError):
        parse_annotations(["novalue"])
    c = Client(Policy())
    assert parse_destination("reg.local:5000/fns/f:v1", c).tag == "v1"
    for bad in ("reg.local:5000/fns/f", "reg.local/f@sha256:" + "0" * 64):
        with pytest.raises(UsageError, match="fully qualified tag"):
            parse_destination(bad, c)


def test_find_package_file(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"found 0 \.xpkg"):
        find_package_file(tmp_path)
    (tmp_path / "a.xpkg").write_bytes(b"")
    assert find_package_file(tmp_path) == tmp_path / "a.xpkg"
    (tmp_path / "b.xpkg").write_bytes(b"")
    with pytest.raises(UsageError, match=r"found 2 .xpkg files .*a.xpkg, b.xpkg"):
        find_package_file(tmp_path)


def test_uncompressed_layer_is_refused(tmp_path: Path) -> None:
    import io

    bad = tmp_path / "bad.xpkg"
    with tarfile.open(bad, "w") as t:
        for name, data in (("c.json", b'{"config":{}}'), ("l.tar", b"x" * 600),
                           ("manifest.json", b'[{"Config":"c.json","Layers":["l.tar"]}]')):
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            t.addfile(ti, io.BytesIO(data))
    with pytest.raises(UsageError, match="not gzip-compressed"):
        PackageFile.open(bad)


def test_push_cli_usage_errors(tmp_path: Path) -> None:
    r = invoke(["push", "reg.local:5000/a/b:v1", "--build", str(tmp_path), "-f", "x.xpkg",
                "--no-node-config"])
    assert r.exit_code == 2 and "exclude each other" in r.stderr
    r = invoke(["push", "reg.local:5000/a/b:v1", "--chunk-size", "lots"])
    assert r.exit_code == 2 and "size like 5MiB" in r.stderr
    r = invoke(["push", "reg.local:5000/a/b:v1", "-a", "oops", "-f", str(XPKG_FILE),
                "--no-node-config", "-O", "json"])
    assert r.exit_code == 2 and json.loads(r.stdout)["ok"] is False


def test_an_upload_location_on_another_origin_is_refused() -> None:
    """Credentials and blobs go only to the registry itself, wherever its Location points."""
    from crossfetch.errors import PolicyRefused
    from crossfetch.transport.connection import Headers, Request, Response
    from crossfetch.upload import Pusher

    with Client(Policy()) as c:
        pusher = Pusher(c, "reg.local:5000/fns/f:v1")
        req = Request("POST", "https://reg.local:5000/v2/fns/f/blobs/uploads/")
        ok = Response(202, request=req, headers=Headers({"location": "/v2/fns/f/uploads/x?_s=1"}))
        assert pusher._location(ok) == "https://reg.local:5000/v2/fns/f/uploads/x?_s=1"
        for elsewhere in ("https://evil.example/up", "http://reg.local:5000/up",
                          "https://reg.local:5001/up"):
            bad = Response(202, request=req, headers=Headers({"location": elsewhere}))
            with pytest.raises(PolicyRefused, match="another origin"):
                pusher._location(bad)
