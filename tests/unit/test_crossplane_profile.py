"""The Crossplane profile table: each row, each fact, and ggcr's plain-HTTP host rule.

Expected values below were read from upstream (cp = crossplane/crossplane, cpr =
crossplane/crossplane-runtime, ggcr = google/go-containerregistry) at the tag named in the case
id; they are written out here independently of the table so a wrong row fails.
"""

from __future__ import annotations

import re

import pytest

from crossfetch.crossplane import profile as p
from crossfetch.errors import UsageError

# (version, field, expected value, upstream source the value was read from)
FACTS = [
    # ggcr per release: cp go.mod at the tag
    ("v1.18.5", "ggcr_version", "v0.19.2", "cp go.mod @ v1.18.5"),
    ("v1.20.0", "ggcr_version", "v0.19.2", "cp go.mod @ v1.20.0"),
    ("v1.20.11", "ggcr_version", "v0.20.7", "cp go.mod @ v1.20.11"),
    ("v2.0.0", "ggcr_version", "v0.20.3", "cp go.mod @ v2.0.0"),
    ("v2.2.0", "ggcr_version", "v0.20.7", "cp go.mod @ v2.2.0"),
    ("v2.2.4", "ggcr_version", "v0.21.6", "cp go.mod @ v2.2.4"),
    ("v2.3.0", "ggcr_version", "v0.21.2", "cp go.mod @ v2.3.0"),
    ("v2.3.4", "ggcr_version", "v0.21.6", "cp go.mod @ v2.3.4"),
    # ggcr pkg/name/registry.go reLocal: .local dropped in v0.21.6 (#2281)
    ("v1.20.0", "plain_http_local_dot_local", True, "ggcr pkg/name/registry.go"),
    ("v2.0.8", "plain_http_local_dot_local", True, "ggcr pkg/name/registry.go"),
    ("v2.3.3", "plain_http_local_dot_local", True, "ggcr pkg/name/registry.go"),
    ("v2.2.4", "plain_http_local_dot_local", False, "ggcr pkg/name/registry.go"),
    ("v2.3.4", "plain_http_local_dot_local", False, "ggcr pkg/name/registry.go"),
    # default registry: cp internal/xpkg/name.go, cmd/crossplane/core/core.go
    ("v1.18.5", "default_registry", "xpkg.upbound.io", "internal/xpkg/name.go"),
    ("v1.19.3", "default_registry", "xpkg.upbound.io", "internal/xpkg/name.go"),
    ("v1.20.0", "default_registry", "xpkg.crossplane.io", "internal/xpkg/name.go"),
    ("v2.0.0", "default_registry", None, "cmd/crossplane/core/core.go"),
    ("v2.3.4", "default_registry", None, "cmd/crossplane/core/core.go"),
    # CEL rule on spec.package: cp apis/pkg/v1/package_types.go
    ("v1.20.11", "fully_qualified", False, "apis/pkg/v1/package_types.go"),
    ("v2.0.0", "fully_qualified", True, "97c09ebee"),
    # ImageConfig: cp apis/pkg/v1beta1/image_config_types.go
    ("v1.18.0", "image_config", True, "image_config_types.go"),
    ("v1.18.0", "pull_secret_ref", True, "PullSecretRef"),
    ("v1.19.3", "rewrite_image", False, "image_config_types.go"),
    ("v1.20.0", "rewrite_image", True, "RewriteImage"),
    ("v1.19.3", "rewrite_for_tag_listing", False, "resolver/reconciler.go"),
    ("v1.20.0", "rewrite_for_tag_listing", True, "resolver/reconciler.go"),
    ("v2.2.0", "rewrite_for_tag_listing", True, "ListVersions"),
    ("v2.3.4", "rewrite_for_tag_listing", True, "cpr pkg/xpkg/client.go"),
    # Masterminds semver: cp go.mod
    ("v2.2.4", "semver", "v1.5.0", "Masterminds/semver v1.5.0"),
    ("v2.3.0", "semver", "v3", "Masterminds/semver/v3 v3.4.0"),
    # incomplete tags: cp internal/controller/pkg/resolver/reconciler.go
    ("v2.0.2", "drop_incomplete_tags", False, "resolver/reconciler.go"),
    ("v2.0.3", "drop_incomplete_tags", True, "7685c456c"),
    ("v2.1.0", "drop_incomplete_tags", True, "3cd0af315"),
    ("v1.20.11", "drop_incomplete_tags", False, "resolver/reconciler.go"),
    # package.yaml cap and base layer
    ("v1.18.0", "package_cap", 200 * 1024 * 1024, "revision/reconciler.go maxPackageSize"),
    ("v2.2.0", "package_cap", 200 * 1024 * 1024, "internal/xpkg/client.go maxPackageSize"),
    ("v2.3.4", "package_cap", 200 * 1024 * 1024, "cpr pkg/xpkg/client.go maxPackageSize"),
    ("v2.1.8", "base_layer_rule", "unique-annotated", "revision/imageback.go"),
    ("v2.2.0", "base_layer_rule", "first-annotated", "internal/xpkg/client.go ExtractPackageYAML"),
    ("v2.3.4", "base_layer_rule", "first-annotated", "cpr pkg/xpkg/client.go ExtractPackageYAML"),
]


@pytest.mark.parametrize(("version", "field", "value", "source"), FACTS,
                         ids=[f"{f[0]}-{f[1]}" for f in FACTS])
def test_fact(version: str, field: str, value: object, source: str) -> None:
    prof = p.get(version)
    assert getattr(prof, field) == value
    assert source in p.source_of(prof, field)


_SOURCE = re.compile(r"(cp|cpr|ggcr) \S+.*(@ v\d+\.\d+\.\d+|\b[0-9a-f]{9}\b)")


@pytest.mark.parametrize("row", p.ROWS, ids=[f"{r.field}-{r.first}..{r.last}" for r in p.ROWS])
def test_every_row_names_its_source_and_holds(row: p.Row) -> None:
    # A file in an upstream repository and the tag or commit it was read at.
    assert _SOURCE.search(row.source), row.source
    for version in (row.first, row.last or p.KNOWN[-1]):
        assert version in p.KNOWN
        assert getattr(p.get(version), row.field) == row.value


@pytest.mark.parametrize("version", p.KNOWN)
def test_every_release_has_exactly_one_row_per_field(version: str) -> None:
    fields = set(p.Profile._fields) - {"version"}
    assert set(p.rows_for(version)) == fields


def test_supported_and_default() -> None:
    for minor in ("v1.18", "v1.20", "v2.0", "v2.2", "v2.3"):
        assert any(v.startswith(minor + ".") for v in p.SUPPORTED)
    assert p.DEFAULT_VERSION == p.KNOWN[-1] == p.SUPPORTED[-1]
    assert p.get().version == p.DEFAULT_VERSION


@pytest.mark.parametrize(("given", "concrete"), [
    ("v2.3", "v2.3.4"), ("2.3", "v2.3.4"), ("2.3.1", "v2.3.1"), ("v2.3.4", "v2.3.4"),
    ("v1.20", "v1.20.11"), (" v2.0.0 ", "v2.0.0"),
])
def test_get_accepts_minor_and_patch(given: str, concrete: str) -> None:
    assert p.get(given).version == concrete
    assert p.get(given).minor == concrete.rsplit(".", 1)[0]


@pytest.mark.parametrize("bad", ["v2.9", "v2.3.9", "v1.17.0", "latest", "", "2"])
def test_unknown_version_is_a_usage_error_listing_supported(bad: str) -> None:
    with pytest.raises(UsageError) as info:
        p.get(bad or "x")
    assert info.value.exit_code == 2
    assert info.value.fix is not None and "v2.3.4" in info.value.fix and "v1.18.5" in info.value.fix


# ggcr pkg/name/registry.go Scheme(), v0.19.2 (with .local) and v0.21.6 (without)
OLD, NEW = p.get("v2.0.0"), p.get("v2.3.4")
SCHEME = [
    ("localhost:5000", True, True),
    ("localhost", False, False),            # HasPrefix "localhost:" only: no port, https only
    ("gitea.localhost", True, True),
    ("gitea.localhost:8443", True, True),
    ("registry.svc.cluster.local", True, False),
    ("registry.svc.cluster.local:5000", True, False),
    ("127.0.0.1:5000", True, True),
    ("127.0.0.1", True, True),
    ("127.0.0.2:5000", False, False),       # only the literal 127.0.0.1 matches
    ("[::1]:5000", True, True),
    ("10.96.0.5:5000", True, True),
    ("172.16.0.1", True, True),
    ("172.32.0.1:5000", False, False),
    ("192.168.1.10:443", True, True),
    ("100.64.0.1:5000", False, False),
    ("gitea.cnoe.localtest.me:8443", False, False),
    ("xpkg.crossplane.io", False, False),
    ("ghcr.io", False, False),
]


@pytest.mark.parametrize(("host", "old", "new"), SCHEME, ids=[s[0] for s in SCHEME])
def test_plain_http_rule(host: str, old: bool, new: bool) -> None:
    assert p.plain_http_allowed(OLD, host) is old
    assert p.plain_http_allowed(NEW, host) is new
    if new:
        assert p.plain_http_rule(NEW, host)


def test_summary_names_local_only_where_ggcr_has_it() -> None:
    assert "*.local," in p.plain_http_summary(OLD)
    assert "*.local," not in p.plain_http_summary(NEW)
    assert "v0.21.6" in p.plain_http_summary(NEW)


@pytest.mark.parametrize(("ref", "v1", "v2"), [
    ("localhost:5000/fns/x:v1", True, False),
    ("gitea.localhost:5000/fns/x:v1", True, True),
    ("127.0.0.2:5000/fns/x:v1", True, True),
    ("xpkg.crossplane.io/crossplane-contrib/function-auto-ready:v0.2.1", True, True),
    ("xpkg.crossplane.io/crossplane-contrib/function-auto-ready", True, False),
    ("crossplane-contrib/function-auto-ready:v0.2.1", True, False),
    ("reg.example.com/x@sha256:" + "a" * 64, True, True),
])
def test_package_name_rule(ref: str, v1: bool, v2: bool) -> None:
    # cp apis/pkg/v1/package_types.go CEL rule on spec.package, v2.0.0+ (97c09ebee)
    assert p.admits_package_name(p.get("v1.20"), ref) is v1
    assert p.admits_package_name(p.get("v2.3"), ref) is v2
