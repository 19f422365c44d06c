"""One row per behaviour per Crossplane version, each naming the upstream source it was read from.

Sources were read from the upstream repositories at the tags named (commit in brackets):
crossplane/crossplane (``cp``), crossplane/crossplane-runtime (``cpr``) and
google/go-containerregistry (``ggcr``). A row covers the Crossplane versions ``first`` to ``last``
(inclusive; ``last=None`` means "up to the newest modelled"). Behaviour differs between *patch*
releases in places (Crossplane v2.2.4 ships a newer go-containerregistry than v2.2.0, v2.0.3
back-ported the incomplete-tag filter), so rows are keyed by concrete versions and :func:`get`
takes any patch release of a modelled minor.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from typing import NamedTuple

from crossfetch.errors import UsageError

# Every patch release modelled, with the commit its tag points at and the go-containerregistry
# version its go.mod requires (source: cp go.mod at each tag; no replace directive for ggcr).
_RELEASES: tuple[tuple[str, str, str], ...] = (
    ("v1.18.0", "e663a43ec", "v0.19.2"),
    ("v1.18.1", "0ca82e4f1", "v0.19.2"),
    ("v1.18.2", "ebadfb3ef", "v0.19.2"),
    ("v1.18.3", "325252dcf", "v0.19.2"),
    ("v1.18.4", "18706a380", "v0.19.2"),
    ("v1.18.5", "3c3e9b33a", "v0.19.2"),
    ("v1.19.0", "719b2a0f9", "v0.19.2"),
    ("v1.19.1", "74030d1b1", "v0.19.2"),
    ("v1.19.2", "e399d378c", "v0.19.2"),
    ("v1.19.3", "5a64b0ef1", "v0.19.2"),
    ("v1.20.0", "2efdb03ae", "v0.19.2"),
    ("v1.20.1", "4140685b9", "v0.19.2"),
    ("v1.20.2", "c503b9622", "v0.20.6"),
    ("v1.20.3", "0e76849ac", "v0.20.6"),
    ("v1.20.4", "7a59da60e", "v0.20.6"),
    ("v1.20.5", "f327619a9", "v0.20.7"),
    ("v1.20.6", "68f39833e", "v0.20.7"),
    ("v1.20.7", "5fae6c1ab", "v0.20.7"),
    ("v1.20.8", "8ceeb0a0a", "v0.20.7"),
    ("v1.20.9", "17986a846", "v0.20.7"),
    ("v1.20.10", "f31c99471", "v0.20.7"),
    ("v1.20.11", "7e2a292f1", "v0.20.7"),
    ("v2.0.0", "b639502e2", "v0.20.3"),
    ("v2.0.1", "099fc1c7c", "v0.20.3"),
    ("v2.0.2", "7d9ef0171", "v0.20.3"),
    ("v2.0.3", "594275dd2", "v0.20.6"),
    ("v2.0.4", "75114a3b9", "v0.20.6"),
    ("v2.0.5", "523d1dad4", "v0.20.6"),
    ("v2.0.6", "39e1f65e4", "v0.20.6"),
    ("v2.0.7", "76415c653", "v0.20.7"),
    ("v2.0.8", "69eaca39c", "v0.20.7"),
    ("v2.1.0", "9d73aae0c", "v0.20.6"),
    ("v2.1.1", "fec2bbea3", "v0.20.6"),
    ("v2.1.2", "9362415c9", "v0.20.6"),
    ("v2.1.3", "c56f64902", "v0.20.6"),
    ("v2.1.4", "1f69cedee", "v0.20.7"),
    ("v2.1.5", "16d494d7d", "v0.20.7"),
    ("v2.1.6", "3507c92e9", "v0.20.7"),
    ("v2.1.7", "1db3634ec", "v0.20.7"),
    ("v2.1.8", "cb47d74e7", "v0.21.6"),
    ("v2.2.0", "b7aa98528", "v0.20.7"),
    ("v2.2.1", "713541df7", "v0.20.7"),
    ("v2.2.2", "32300d8ac", "v0.20.7"),
    ("v2.2.3", "0e7f65ada", "v0.20.7"),
    ("v2.2.4", "b34b67323", "v0.21.6"),
    ("v2.3.0", "d13e114e1", "v0.21.2"),
    ("v2.3.1", "41c6f9c47", "v0.21.2"),
    ("v2.3.2", "90d8b72ad", "v0.21.2"),
    ("v2.3.3", "09ffaea39", "v0.21.2"),
    ("v2.3.4", "c2670a735", "v0.21.6"),
)

#: Every Crossplane release modelled (any of these is accepted by :func:`get`).
KNOWN: tuple[str, ...] = tuple(r[0] for r in _RELEASES)
#: The newest patch of each modelled minor: what ``--help`` lists and tests cover.
SUPPORTED: tuple[str, ...] = ("v1.18.5", "v1.19.3", "v1.20.11", "v2.0.8", "v2.1.8", "v2.2.4",
                              "v2.3.4")
#: The newest release modelled (v2.4.0 is a release candidate only at the time of writing).
DEFAULT_VERSION: str = "v2.3.4"

#: ggcr v0.21.6 narrowed ``reLocal`` from ``*.local``/``*.localhost`` to ``*.localhost``.
GGCR_LOCAL_DROPPED = "v0.21.6"
_GGCR_LOCAL_SOURCE = (
    "ggcr pkg/name/registry.go reLocal `.*\\.local(?:host)?` narrowed to `.*\\.localhost` by "
    "2d8630180 (#2281), first in tag v0.21.6 (53f7e39e1); v0.21.5 (5b80281da) still has .local")
#: Where the plain-HTTP host rule itself lives (unchanged apart from ``reLocal`` since v0.19).
GGCR_SCHEME_SOURCE = ("ggcr pkg/name/registry.go Registry.Scheme() and "
                      "pkg/v1/remote/transport/ping.go Ping "
                      "(v0.19.2 1b4e4078a .. v0.21.6 53f7e39e1)")

#: How the layer holding package.yaml is chosen (values of ``Profile.base_layer_rule``).
BASE_LAYER_RULES: dict[str, str] = {
    "unique-annotated": (
        "the layer annotated io.crossplane.xpkg=base (a second such layer, or more than 256 "
        "layers, is an error), else all layers flattened; package.yaml at the tar root; config "
        "labels are not read"),
    "first-annotated": (
        "the first layer annotated io.crossplane.xpkg=base, else all layers flattened; "
        "package.yaml in any directory of the tar; config labels are not read"),
}


class Row(NamedTuple):
    """One behaviour of the Crossplane versions ``first`` to ``last`` (inclusive)."""

    field: str
    first: str
    last: str | None
    value: object
    source: str


@functools.cache  # ~60 versions, asked ~1,000 times for one profile
def _vtuple(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in version.lstrip("v").split("."))


def _cp(tag: str, path: str) -> str:
    sha = next(c for t, c, _ in _RELEASES if t == tag)
    return f"cp {path} @ {tag} ({sha})"


def _release_rows() -> tuple[Row, ...]:
    rows: list[Row] = []
    for tag, sha, ggcr in _RELEASES:
        rows.append(Row("ggcr_version", tag, tag, ggcr, f"cp go.mod @ {tag} ({sha})"))
        rows.append(Row("plain_http_local_dot_local", tag, tag,
                        _vtuple(ggcr) < _vtuple(GGCR_LOCAL_DROPPED),
                        f"ggcr {ggcr} via cp go.mod @ {tag}; {_GGCR_LOCAL_SOURCE}"))
    return tuple(rows)


_MAX_PACKAGE = 200 << 20  # `maxPackageSize = 200 << 20` in every modelled version

#: The table. Rows for the same field never overlap; every modelled version has one per field.
ROWS: tuple[Row, ...] = (
    Row("default_registry", "v1.18.0", "v1.19.3", "xpkg.upbound.io",
        _cp("v1.18.0", "internal/xpkg/name.go DefaultRegistry, used by cmd/crossplane/core/core.go "
            "--registry default")),
    Row("default_registry", "v1.20.0", "v1.20.11", "xpkg.crossplane.io",
        _cp("v1.20.0", "internal/xpkg/name.go DefaultRegistry")),
    Row("default_registry", "v2.0.0", None, None,
        _cp("v2.0.0", "cmd/crossplane/core/core.go: --registry is hidden and refused "
            "(\"support for a default registry value has been removed\")")),
    Row("fully_qualified", "v1.18.0", "v1.20.11", False,
        _cp("v1.20.0", "apis/pkg/v1/package_types.go: spec.package has no CEL rule")),
    Row("fully_qualified", "v2.0.0", None, True,
        _cp("v2.0.0", "apis/pkg/v1/package_types.go XValidation self.matches(...) on "
            "spec.package, commit 97c09ebee: the registry host needs a dot and a tag or digest "
            "is required")),
    Row("image_config", "v1.18.0", None, True,
        _cp("v1.18.0", "apis/pkg/v1beta1/image_config_types.go (ImageConfig v1beta1 added)")),
    Row("pull_secret_ref", "v1.18.0", None, True,
        _cp("v1.18.0", "apis/pkg/v1beta1/image_config_types.go "
            "RegistryAuthentication.PullSecretRef; internal/xpkg/config.go PullSecretFor")),
    Row("rewrite_image", "v1.18.0", "v1.19.3", False,
        _cp("v1.19.0", "apis/pkg/v1beta1/image_config_types.go: no RewriteImage field")),
    Row("rewrite_image", "v1.20.0", None, True,
        _cp("v1.20.0", "apis/pkg/v1beta1/image_config_types.go RewriteImage; "
            "internal/xpkg/config.go RewritePath")),
    Row("rewrite_for_tag_listing", "v1.18.0", "v1.19.3", False,
        _cp("v1.19.0", "internal/controller/pkg/resolver/reconciler.go: no RewritePath call")),
    Row("rewrite_for_tag_listing", "v1.20.0", "v2.1.8", True,
        _cp("v1.20.0", "internal/controller/pkg/resolver/reconciler.go "
            "findDependencyVersionToInstall calls config.RewritePath before listing tags")),
    Row("rewrite_for_tag_listing", "v2.2.0", "v2.2.4", True,
        _cp("v2.2.0", "internal/xpkg/client.go CachedClient.ListVersions calls RewritePath")),
    Row("rewrite_for_tag_listing", "v2.3.0", None, True,
        "cpr pkg/xpkg/client.go CachedClient.ListVersions calls RewritePath @ v2.3.0 "
        "(1ed37b54b), used by " + _cp("v2.3.0", "go.mod crossplane-runtime/v2")),
    Row("semver", "v1.18.0", "v2.2.4", "v1.5.0",
        _cp("v2.2.4", "go.mod github.com/Masterminds/semver v1.5.0")),
    Row("semver", "v2.3.0", None, "v3",
        _cp("v2.3.0", "go.mod github.com/Masterminds/semver/v3 v3.4.0 (commit 3c17d47ee)")),
    Row("drop_incomplete_tags", "v1.18.0", "v2.0.2", False,
        _cp("v2.0.2", "internal/controller/pkg/resolver/reconciler.go: every tag that "
            "semver.NewVersion parses is kept")),
    Row("drop_incomplete_tags", "v2.0.3", "v2.0.8", True,
        _cp("v2.0.3", "internal/controller/pkg/resolver/reconciler.go: back-port 7685c456c "
            "skips tags with v.String() != TrimPrefix(v.Original(), \"v\")")),
    Row("drop_incomplete_tags", "v2.1.0", None, True,
        _cp("v2.1.0", "internal/controller/pkg/resolver/reconciler.go, commit 3cd0af315 "
            "\"Ignore tags that are incomplete semantic versions\"")),
    Row("package_cap", "v1.18.0", "v2.1.8", _MAX_PACKAGE,
        _cp("v1.18.0", "internal/controller/pkg/revision/reconciler.go maxPackageSize = 200 << 20 "
            "(io.LimitReader on the package.yaml stream)")),
    Row("package_cap", "v2.2.0", "v2.2.4", _MAX_PACKAGE,
        _cp("v2.2.0", "internal/xpkg/client.go maxPackageSize = 200 << 20")),
    Row("package_cap", "v2.3.0", None, _MAX_PACKAGE,
        "cpr pkg/xpkg/client.go maxPackageSize = 200 << 20 @ v2.3.0 (1ed37b54b)"),
    Row("base_layer_rule", "v1.18.0", "v2.1.8", "unique-annotated",
        _cp("v1.18.0", "internal/controller/pkg/revision/imageback.go ImageBackend.Init "
            "(maxLayers 256, errMultipleAnnotatedLayers, h.Name == package.yaml)")),
    Row("base_layer_rule", "v2.2.0", "v2.2.4", "first-annotated",
        _cp("v2.2.0", "internal/xpkg/client.go ExtractPackageYAML (break on the first base "
            "layer, filepath.Base(h.Name) == package.yaml)")),
    Row("base_layer_rule", "v2.3.0", None, "first-annotated",
        "cpr pkg/xpkg/client.go ExtractPackageYAML @ v2.3.0 (1ed37b54b)"),
    *_release_rows(),
)


class Profile(NamedTuple):
    """What one Crossplane release does when it fetches packages (see :data:`ROWS`)."""

    version: str                      # "vX.Y.Z"
    ggcr_version: str                 # go-containerregistry it ships
    plain_http_local_dot_local: bool  # ggcr < v0.21.6 also tries plain HTTP for *.local
    default_registry: str | None      # None in v2 (names must be fully qualified)
    image_config: bool                # ImageConfig API exists
    rewrite_image: bool               # ImageConfig rewriteImage exists
    pull_secret_ref: bool             # ImageConfig registry.authentication.pullSecretRef exists
    rewrite_for_tag_listing: bool     # rewriteImage also applies to dependency tag listing
    semver: str                       # Masterminds semver: "v1.5.0" or "v3"
    drop_incomplete_tags: bool        # tags like "v1" / "v1.2" are skipped by the resolver
    package_cap: int                  # bytes of package.yaml stream read
    base_layer_rule: str              # key of BASE_LAYER_RULES
    fully_qualified: bool             # package names need a dotted registry host and a tag/digest

    @property
    def minor(self) -> str:
        """``vX.Y`` of this release."""
        return ".".join(self.version.split(".")[:2])

    @property
    def has_registry_flag(self) -> bool:
        """Whether ``--registry`` (a default registry for short names) can be set."""
        return self.default_registry is not None


def _covers(row: Row, version: str) -> bool:
    v = _vtuple(version)
    return _vtuple(row.first) <= v and (row.last is None or v <= _vtuple(row.last))


def rows_for(version: str) -> dict[str, Row]:
    """The row that decides each behaviour of ``version`` (a concrete known release)."""
    out: dict[str, Row] = {}
    for row in ROWS:
        if _covers(row, version):
            if row.field in out:
                raise AssertionError(f"two rows for {row.field} cover {version}")
            out[row.field] = row
    return out


_VERSION_RE = re.compile(r"v?(\d+)\.(\d+)(?:\.(\d+))?")


def get(version: str | None = None) -> Profile:
    """The profile of ``version``: ``"v2.3"`` (newest modelled patch), ``"2.3.1"``, ``"v2.3.4"``.

    ``None`` gives :data:`DEFAULT_VERSION`. An unknown version raises :class:`UsageError`
    naming the supported ones.
    """
    text = (version or DEFAULT_VERSION).strip()
    m = _VERSION_RE.fullmatch(text)
    concrete: str | None = None
    if m:
        major, minor, patch = m.groups()
        if patch is None:
            prefix = f"v{int(major)}.{int(minor)}."
            concrete = next((v for v in reversed(KNOWN) if v.startswith(prefix)), None)
        else:
            candidate = f"v{int(major)}.{int(minor)}.{int(patch)}"
            concrete = candidate if candidate in KNOWN else None
    if concrete is None:
        raise UsageError(
            f"unknown Crossplane version {text!r}",
            cause="unknown-crossplane-version",
            fix=("use one of " + ", ".join(SUPPORTED)
                 + " (or any patch release of those minors, or just the minor, e.g. v2.3)"),
            detail={"supported": list(SUPPORTED)})
    fields = {name: row.value for name, row in rows_for(concrete).items()}
    return Profile(version=concrete, **fields)  # type: ignore[arg-type]


def source_of(profile: Profile, field: str) -> str:
    """The upstream source the profile's ``field`` was read from."""
    return rows_for(profile.version)[field].source


# --- go-containerregistry's plain-HTTP host rule ----------------------------------------------
# Reimplemented from ggcr pkg/name/registry.go Registry.Scheme() (see GGCR_SCHEME_SOURCE): a
# registry name for which Scheme() is "http" is pinged over https first and over http 300 ms
# later (transport/ping.go pingParallel); whichever answers first wins. For every other name
# only https is tried. Matching is on the registry string as written (host[:port]), with ggcr's
# quirks kept: bare "localhost" (no port) is https-only, and "127.0.0.1" / "::1" match anywhere
# in the name.

_RFC1918 = tuple(ipaddress.ip_network(n) for n in ("10.0.0.0/8", "172.16.0.0/12",
                                                   "192.168.0.0/16"))
_RE_LOCALHOST = re.compile(r"\.localhost(?::\d{1,5})?\Z")
_RE_LOCAL_OLD = re.compile(r"\.local(?:host)?(?::\d{1,5})?\Z")


def plain_http_rule(profile: Profile, host: str) -> str | None:
    """Which clause of ggcr's ``Scheme()`` lets ``host`` fall back to plain HTTP, or ``None``."""
    try:
        ip = ipaddress.ip_address(host.split(":")[0])
    except ValueError:
        ip = None
    if isinstance(ip, ipaddress.IPv4Address) and any(ip in net for net in _RFC1918):
        return "an RFC 1918 address (10/8, 172.16/12, 192.168/16)"
    if host.startswith("localhost:"):
        return "localhost:PORT"
    if _RE_LOCALHOST.search(host):
        return "a *.localhost name"
    if profile.plain_http_local_dot_local and _RE_LOCAL_OLD.search(host):
        return (f"a *.local name (dropped from the rule in go-containerregistry "
                f"{GGCR_LOCAL_DROPPED})")
    if "127.0.0.1" in host:
        return "127.0.0.1"
    if "::1" in host:
        return "::1"
    return None


def plain_http_allowed(profile: Profile, host: str) -> bool:
    """Whether ``profile``'s Crossplane also tries plain HTTP for registry ``host[:port]``."""
    return plain_http_rule(profile, host) is not None


def plain_http_summary(profile: Profile) -> str:
    """One sentence naming the plain-HTTP rule of ``profile`` (for doctor and fixes)."""
    names = "localhost:PORT, *.localhost"
    if profile.plain_http_local_dot_local:
        names += ", *.local"
    return (f"Crossplane {profile.version} (go-containerregistry {profile.ggcr_version}) tries "
            f"HTTPS and then plain HTTP only for {names}, 127.0.0.1, ::1 and RFC 1918 addresses "
            "(10/8, 172.16/12, 192.168/16); every other registry is HTTPS only")


_FULLY_QUALIFIED = re.compile(
    r"[^./]+(\.[^./]+)+(/[^/:@]+)+(:[^:@]+(@sha256.+)?|@sha256.+)")


def admits_package_name(profile: Profile, reference: str) -> bool:
    """Whether the API server accepts ``reference`` as a Provider/Configuration/Function
    ``spec.package`` (v2's CEL rule: dotted registry host, repository, tag or digest)."""
    if not profile.fully_qualified:
        return True
    return _FULLY_QUALIFIED.fullmatch(reference) is not None
