"""package.yaml parsing: the fast scanner, meta validation, dependsOn forms, YAML safety."""

from __future__ import annotations

import contextlib
import hashlib
import io

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crossfetch.errors import LimitExceeded, PackageError
from crossfetch.xpkg import PackageScanner, parse_package_stream
from tests.support.testdata import TESTDATA


def read(rel: str) -> str:
    return (TESTDATA / rel).read_text()


def stream(meta: str, objects: list[str]) -> bytes:
    """The package.yaml layout: ``---`` + each document."""
    docs = []
    for d in [meta, *objects]:
        d = d.removeprefix("---\n")
        docs.append("---\n" + (d if d.endswith("\n") else d + "\n"))
    return "".join(docs).encode()


CRDS = sorted((TESTDATA / "provider-kubernetes/crds").iterdir())
PROVIDER = stream(read("provider-kubernetes/crossplane.yaml"), [p.read_text() for p in CRDS])
FUNCTION = stream(read("function-patch-and-transform/crossplane.yaml"),
                  [read("function-patch-and-transform/input/pt.fn.crossplane.io_resources.yaml")])
COMPOSITION = """apiVersion: apiextensions.crossplane.io/v1
kind: Composition
metadata:
  name: xnetworks
spec:
  compositeTypeRef: {apiVersion: aws.platform.upbound.io/v1alpha1, kind: XNetwork}
"""
XRD = """apiVersion: apiextensions.crossplane.io/v1
kind: CompositeResourceDefinition
metadata:
  name: xnetworks.aws.platform.upbound.io
"""
CONFIG = stream(read("configuration-aws-network/crossplane.yaml"), [XRD, COMPOSITION])


def scan(data: bytes, pieces: list[int] | None = None):  # type: ignore[no-untyped-def]
    s = PackageScanner()
    if pieces is None:
        s.feed(data)
    else:
        pos = 0
        for cut in sorted(pieces):
            s.feed(data[pos:cut])
            pos = cut
        s.feed(data[pos:])
    return s.finish()


def test_provider_kubernetes_stream() -> None:
    pkg = scan(PROVIDER)
    assert (pkg.api_version, pkg.kind, pkg.name) == (
        "meta.pkg.crossplane.io/v1", "Provider", "provider-kubernetes")
    assert pkg.objects == {"CustomResourceDefinition": 9}
    assert pkg.size == len(PROVIDER)
    assert pkg.sha256 == hashlib.sha256(PROVIDER).hexdigest()
    assert pkg.annotations["meta.crossplane.io/license"] == "Apache-2.0"
    assert pkg.crossplane is None and pkg.depends_on == []
    d = pkg.to_dict()
    assert d["packageDigest"] == "sha256:" + pkg.sha256
    assert set(d) == {"apiVersion", "kind", "name", "crossplane", "dependsOn", "objects",
                      "annotations", "size", "packageDigest"}


def test_function_v1beta1_meta_and_full_parse_agree() -> None:
    fast = scan(FUNCTION)
    full = parse_package_stream(io.BytesIO(FUNCTION), full=True)
    assert fast.kind == "Function" and fast.objects == {"CustomResourceDefinition": 1}
    assert fast.to_dict() == full.to_dict()


def test_legacy_dependencies_and_crossplane_constraint() -> None:
    pkg = parse_package_stream(CONFIG)
    assert pkg.crossplane == ">=v1.14.1-0"
    assert pkg.objects == {"CompositeResourceDefinition": 1, "Composition": 1}
    first, fn = pkg.depends_on[0], pkg.depends_on[1]
    assert (first.api_version, first.kind, first.package, first.version, first.form) == (
        "pkg.crossplane.io/v1", "Provider", "xpkg.upbound.io/upbound/provider-aws-ec2", "v1",
        "legacy")
    assert first.to_dict()["provider"] == "xpkg.upbound.io/upbound/provider-aws-ec2"
    assert fn.kind == "Function" and fn.legacy_key == "function"
    assert fn.to_dict() == {"apiVersion": "pkg.crossplane.io/v1", "kind": "Function",
                            "package": "xpkg.upbound.io/crossplane-contrib/function-auto-ready",
                            "version": "v0.4.2", "form": "legacy",
                            "function": "xpkg.upbound.io/crossplane-contrib/function-auto-ready"}


def test_new_form_dependency_wins_when_all_four_are_set() -> None:
    meta = """apiVersion: meta.pkg.crossplane.io/v1
kind: Configuration
metadata: {name: c}
spec:
  dependsOn:
  - apiVersion: pkg.crossplane.io/v1beta1
    kind: Function
    package: xpkg.crossplane.io/crossplane-contrib/function-auto-ready
    version: ">=v0.2.0"
    provider: xpkg.crossplane.io/ignored/legacy
  - apiVersion: pkg.crossplane.io/v1
    kind: Provider
    package: xpkg.crossplane.io/crossplane-contrib/provider-helm
    version: sha256:0000000000000000000000000000000000000000000000000000000000000000
"""
    deps = parse_package_stream(stream(meta, [])).depends_on
    assert [(d.api_version, d.kind, d.form) for d in deps] == [
        ("pkg.crossplane.io/v1beta1", "Function", "new"),
        ("pkg.crossplane.io/v1", "Provider", "new")]
    assert deps[0].package.endswith("function-auto-ready") and deps[0].legacy_key is None
    assert "provider" not in deps[0].to_dict()
    assert deps[1].version.startswith("sha256:")


@pytest.mark.parametrize("dep, match", [
    ("{provider: a/b, function: c/d, version: v1}", "more than one"),
    ("{version: v1}", "names no package"),
    ("{provider: a/b, version: 1.10}", "not a string"),
])
def test_bad_dependencies_are_refused(dep: str, match: str) -> None:
    meta = f"apiVersion: meta.pkg.crossplane.io/v1\nkind: Configuration\nmetadata: {{name: c}}\n" \
           f"spec:\n  dependsOn:\n  - {dep}\n"
    with pytest.raises(PackageError, match=match):
        parse_package_stream(stream(meta, []))


def test_more_than_one_meta_object_is_refused() -> None:
    data = stream(read("function-auto-ready/crossplane.yaml"),
                  [XRD, read("function-go-templating/crossplane.yaml")])
    for full in (False, True):
        with pytest.raises(PackageError, match="more than one meta object") as e:
            parse_package_stream(data, full=full)
        assert e.value.cause == "multiple-meta-objects"


def test_meta_object_anywhere_in_the_stream_is_found() -> None:
    """Crossplane sorts documents by scheme, not position: a meta object third is fine."""
    crds = [p.read_text() for p in CRDS]
    data = stream(crds[0], [crds[1], read("provider-kubernetes/crossplane.yaml"), *crds[2:]])
    pkg = scan(data)
    assert (pkg.kind, pkg.name) == ("Provider", "provider-kubernetes")
    assert pkg.objects == {"CustomResourceDefinition": 9}
    last = stream(XRD, [COMPOSITION, read("configuration-aws-network/crossplane.yaml")])
    assert scan(last).objects == {"CompositeResourceDefinition": 1, "Composition": 1}


def test_no_meta_object_is_refused_naming_the_count() -> None:
    with pytest.raises(PackageError, match="no Crossplane package meta object") as e:
        scan(stream(XRD, [COMPOSITION]))
    assert e.value.cause == "no-meta-object" and e.value.fix


@pytest.mark.parametrize("meta, obj", [
    ("provider-kubernetes/crossplane.yaml", COMPOSITION),
    ("provider-kubernetes/crossplane.yaml", XRD),
    ("configuration-aws-network/crossplane.yaml",
     (TESTDATA / "provider-kubernetes/crds").joinpath(CRDS[0].name).read_text()),
    ("function-auto-ready/crossplane.yaml", XRD),
    ("function-auto-ready/crossplane.yaml", "apiVersion: v1\nkind: ConfigMap\n"),
    ("configuration-aws-network/crossplane.yaml",
     "apiVersion: apiextensions.crossplane.io/v1\nkind: CompositionRevision\n"),
])
def test_kinds_a_package_type_may_not_hold_are_refused(meta: str, obj: str) -> None:
    with pytest.raises(PackageError, match="package may hold only") as e:
        scan(stream(read(meta), [obj]))
    assert e.value.cause == "disallowed-object" and "document 2" in str(e.value)


BROKEN_DOCS = {
    "not UTF-8": (b"apiVersion: v1\nkind: \xff\xfe\n", "invalid-utf8"),
    "latin-1 in a value": (b"apiVersion: apiextensions.crossplane.io/v1\nkind: Composition\n"
                           b"metadata: {name: caf\xe9}\n", "invalid-utf8"),
    "bad indentation": (b"apiVersion: v1\nkind: X\n  bad: [\n", "invalid-yaml"),
    "tab indentation": (b"apiVersion: v1\nkind: X\nspec:\n\tx: 1\n", "invalid-yaml"),
    "deep nesting": (b"apiVersion: v1\nkind: X\nspec: " + b"[" * 2000 + b"]" * 2000 + b"\n",
                     "invalid-yaml"),
    "a scalar": (b"just a string\n", "invalid-object"),
    "a list": (b"- apiVersion: v1\n  kind: X\n", "invalid-object"),
    "no kind": (b"apiVersion: v1\nmetadata: {name: x}\n", "invalid-object"),
    "kind a number": (b"apiVersion: v1\nkind: 5\n", "invalid-object"),
    "kind a map": (b"apiVersion: v1\nkind: {a: b}\n", "invalid-object"),
    "apiVersion null": (b"apiVersion: ~\nkind: X\n", "invalid-object"),
    "alias bomb": (b"apiVersion: v1\nkind: X\na: &a [x]\nb: [" + b",".join([b"*a"] * 65)
                   + b"]\n", "yaml-aliases"),
}


@pytest.mark.parametrize("case", list(BROKEN_DOCS), ids=list(BROKEN_DOCS))
@pytest.mark.parametrize("position", [0, 1, 2])
def test_every_document_is_parsed_wherever_it_is(case: str, position: int) -> None:
    """A broken object anywhere fails the package, as Crossplane's parser fails it."""
    bad, cause = BROKEN_DOCS[case]
    docs = [read("configuration-aws-network/crossplane.yaml").encode(), XRD.encode(),
            COMPOSITION.encode()]
    docs.insert(position, bad)
    data = b"".join(b"---\n" + d for d in docs)
    with pytest.raises((PackageError, LimitExceeded)) as e:
        scan(data)
    assert e.value.cause == cause and e.value.fix
    assert f"document {position + 1} " in str(e.value)


def test_content_after_a_separator_is_refused_as_kubernetes_does() -> None:
    data = stream(read("function-auto-ready/crossplane.yaml"), []) + b"--- foo: bar\n"
    with pytest.raises(PackageError, match="invalid document separator") as e:
        scan(data)
    assert e.value.cause == "invalid-yaml"


@pytest.mark.parametrize("api, kind", [
    ("meta.pkg.crossplane.io/v1alpha1", "Function"),
    ("meta.pkg.crossplane.io/v1beta1", "Provider"),
    ("meta.pkg.crossplane.io/v2", "Configuration"),
    ("meta.pkg.crossplane.io/v1", "Composition"),
])
def test_unknown_meta_kind_or_version_is_refused(api: str, kind: str) -> None:
    with pytest.raises(PackageError, match="unknown package meta type") as e:
        scan(stream(f"apiVersion: {api}\nkind: {kind}\nmetadata: {{name: x}}\n", []))
    assert e.value.cause == "unknown-meta-kind"


@pytest.mark.parametrize("api, kind", [
    ("meta.pkg.crossplane.io/v1", "Provider"), ("meta.pkg.crossplane.io/v1", "Configuration"),
    ("meta.pkg.crossplane.io/v1", "Function"), ("meta.pkg.crossplane.io/v1alpha1", "Provider"),
    ("meta.pkg.crossplane.io/v1alpha1", "Configuration"),
    ("meta.pkg.crossplane.io/v1beta1", "Function"),
])
def test_every_known_meta_type_is_accepted(api: str, kind: str) -> None:
    pkg = scan(stream(f"apiVersion: {api}\nkind: {kind}\nmetadata: {{name: x}}\n", []))
    assert (pkg.api_version, pkg.kind, pkg.name) == (api, kind, "x")


def test_empty_documents_separator_comments_and_document_end_markers() -> None:
    data = (b"# leading comment\n---\n---\n# only a comment\n--- \n"
            + read("configuration-aws-network/crossplane.yaml").removeprefix("---\n").encode()
            + b"...\n--- # an XRD follows\n" + XRD.encode()
            + b"---\n\n---\nkind: 'Composition' # quoted, commented\n"
            + b"apiVersion: \"apiextensions.crossplane.io/v1\"\nspec:\n  kind: NotTopLevel\n"
            + b"---\r\n" + COMPOSITION.encode() + b"...\n")
    fast = scan(data)
    assert fast.name == "configuration-aws-network"
    assert fast.objects == {"CompositeResourceDefinition": 1, "Composition": 2}
    assert parse_package_stream(data, full=True).objects == fast.objects


def test_empty_stream_is_refused() -> None:
    with pytest.raises(PackageError, match="no objects"):
        scan(b"---\n# nothing\n---\n")


def test_billion_laughs_is_refused_before_loading() -> None:
    lines = ["apiVersion: meta.pkg.crossplane.io/v1", "kind: Function",
             "metadata: {name: lol}", 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol"]']
    prev = "a"
    for name in "bcdefghijk":
        lines.append(f"{name}: &{name} [" + ",".join([f"*{prev}"] * 9) + "]")
        prev = name
    with pytest.raises(LimitExceeded, match="aliases") as e:
        scan(stream("\n".join(lines), []))
    assert e.value.cause == "yaml-aliases"


def test_alias_bomb_in_a_later_document_is_refused() -> None:
    bomb = "apiVersion: v1\nkind: ConfigMap\na: &a [x]\nb: [" + ",".join(["*a"] * 65) + "]\n"
    data = stream(read("function-auto-ready/crossplane.yaml"), [bomb])
    with pytest.raises(LimitExceeded, match="document 2"):
        scan(data)


def test_every_document_needs_apiversion_and_kind() -> None:
    data = stream(read("function-auto-ready/crossplane.yaml"), ["metadata: {name: x}\n"])
    with pytest.raises(PackageError, match="has no string apiVersion or kind"):
        parse_package_stream(data, full=True)


@pytest.mark.parametrize("value", ["2024-13-01", "!!timestamp soon", "!!float many"])
def test_values_yaml_cannot_build_are_invalid_yaml_not_a_crash(value: str) -> None:
    meta = ("apiVersion: meta.pkg.crossplane.io/v1\nkind: Function\n"
            f"metadata:\n  name: fn\n  annotations:\n    released: {value}\n")
    for full in (False, True):
        with pytest.raises(PackageError, match="not valid YAML") as e:
            parse_package_stream(stream(meta, []), full=full)
        assert e.value.cause == "invalid-yaml" and e.value.fix


def test_caps_on_stream_and_meta_size() -> None:
    with pytest.raises(LimitExceeded) as e:
        parse_package_stream(PROVIDER, max_bytes=len(PROVIDER) - 1)
    assert e.value.cause == "package-too-large"
    meta = read("provider-kubernetes/crossplane.yaml")
    s = PackageScanner(max_meta_bytes=len(meta) - 1)
    s.feed(stream(meta, []))
    with pytest.raises(LimitExceeded, match="meta object") as e:
        s.finish()
    assert e.value.cause == "meta-too-large"


def test_a_long_line_in_a_big_object_is_parsed() -> None:
    s = PackageScanner()
    s.feed(stream(read("function-auto-ready/crossplane.yaml"), [CRDS[0].read_text()]))
    s.feed(b"---\napiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\n"
           b"blob: " + b"x" * 50_000)
    for _ in range(50):
        s.feed(b"y" * 100_000)
    s.feed(b"\n")
    assert s.finish().objects == {"CustomResourceDefinition": 2}


# --- chunk-boundary robustness --------------------------------------------------------------

TRICKY = stream(XRD, [
    COMPOSITION, "\n", "# c\n", read("configuration-aws-network/crossplane.yaml"),
    "kind: Composition\napiVersion: apiextensions.crossplane.io/v1\n",
    "apiVersion: apiextensions.crossplane.io/v2\nkind:  CompositeResourceDefinition  \n...\n"]
) + b"--- \n---\nkind: Composition\napiVersion: apiextensions.crossplane.io/v1"
EXPECTED = {stream_: scan(stream_).to_dict() for stream_ in (PROVIDER, CONFIG, TRICKY)}


@settings(max_examples=150, deadline=None)
@given(which=st.sampled_from(sorted(EXPECTED)), data=st.data())
def test_any_split_of_the_stream_gives_the_same_package(which: bytes, data: st.DataObject) -> None:
    cuts = data.draw(st.lists(st.integers(0, len(which)), max_size=40))
    assert scan(which, cuts).to_dict() == EXPECTED[which]


@settings(max_examples=100, deadline=None)
@given(cuts=st.lists(st.integers(0, len(TRICKY)), max_size=len(TRICKY) // 50))
def test_byte_by_byte_regions_of_a_tricky_stream(cuts: list[int]) -> None:
    assert scan(TRICKY, cuts).objects == {"CompositeResourceDefinition": 2, "Composition": 3}


def test_one_byte_chunks() -> None:
    s = PackageScanner()
    for i in range(len(TRICKY)):
        s.feed(TRICKY[i:i + 1])
    assert s.finish().to_dict() == EXPECTED[TRICKY]


@pytest.mark.parametrize("obj", [
    "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nkind: Secret\n",
    "kind: CustomResourceDefinition\napiVersion: apiextensions.k8s.io/v1\n\"kind\": Secret\n",
    "{apiVersion: apiextensions.k8s.io/v1, kind: CustomResourceDefinition, kind: Secret}\n",
])
def test_a_repeated_kind_is_read_as_go_reads_it_the_last_one(obj: str) -> None:
    with pytest.raises(PackageError, match="Secret") as e:
        scan(stream(read("provider-kubernetes/crossplane.yaml"), [obj]))
    assert e.value.cause == "disallowed-object"


@pytest.mark.parametrize("obj", [
    "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nkind: Secret\n",
    "kind: CustomResourceDefinition\napiVersion: apiextensions.k8s.io/v1\n\"kind\": Secret\n",
])
def test_a_repeated_kind_is_found_wherever_the_stream_is_cut(obj: str) -> None:
    """The scanner finds top-level keys while it splits: a cut inside "\\nkind" changes nothing."""
    data = stream(read("provider-kubernetes/crossplane.yaml"), [obj])
    for cut in range(len(data) - len(obj) - 2, len(data)):
        with pytest.raises(PackageError, match="Secret"):
            scan(data, [cut])


TOP_LINES = st.sampled_from([
    b"kind: A", b"apiVersion: v1", b"kinds: 1", b"apiVersions: 2", b"\"kind\": B", b"'a': 1",
    b"? kind", b"!!str kind: C", b"&k kind: D", b"*k : E", b"{kind: F}", b"[1]", b"%x",
    b"  kind: nested", b"# kind", b"- kind", b".kind: 1", b"---", b"--- # c", b"...", b"",
    b"metadata: {name: x}", b"\tkind: tab"])


@settings(max_examples=200, deadline=None)
@given(lines=st.lists(TOP_LINES, max_size=14), cuts=st.lists(st.integers(0, 300), max_size=6))
def test_the_scanners_top_key_pass_equals_plain_top_keys(lines: list[bytes],
                                                          cuts: list[int]) -> None:
    """What the split pass hands _identify is what _plain_top_keys says of each document."""
    from crossfetch.xpkg import meta

    seen: list[tuple[bytes, bool | None]] = []
    real = meta._identify

    def spy(data: bytes, where: str, line: int, limit: int,
            plain_keys: bool | None = None) -> tuple[str, str]:
        seen.append((data, plain_keys))
        return real(data, where, line, limit, plain_keys)

    data = b"\n".join(lines)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(meta, "_identify", spy)
        with contextlib.suppress(PackageError, LimitExceeded):
            scan(data, [c for c in cuts if c <= len(data)])
    for doc, plain in seen:
        assert plain == meta._plain_top_keys(doc), doc
