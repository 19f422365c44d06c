"""``crossfetch resolve`` against a real registry holding a 26-package graph (plus scenarios).

The graph (tests/support/resolve_graph.py) is built from ../shared/testdata metadata and
generated packages, with pre-release and incomplete tags, and published with the raw test
pusher. Dependencies on ``xpkg.upbound.io/...`` and ``xpkg.crossplane.io/...`` reach the local
registry through ImageConfig rewrites; one dependency lives on an htpasswd registry and needs
its pull secret.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from crossfetch import Cache, Client
from crossfetch.resolve import Resolution, resolve
from tests.support import resolve_graph as g
from tests.support.registry import Registry

USER, PASSWORD = "bob", "hunter22"
CLI = [sys.executable, "-m", "crossfetch.cli.main"]


class Bed:
    def __init__(self, local: Registry, private: Registry, digests: dict[str, str],
                 tmp: Path) -> None:
        self.local, self.private, self.digests, self.tmp = local, private, digests, tmp
        self.R, self.P = local.host, private.host
        self.policy_path = tmp / "policy.yaml"
        self.policy_path.write_text(g.rewrite_policy(self.R, self.P, (USER, PASSWORD)))
        self.no_secret_path = tmp / "policy-no-secret.yaml"
        self.no_secret_path.write_text(g.rewrite_policy(self.R, self.P))

    def client(self, *, secret: bool = True) -> Client:
        from crossfetch.cli.common import build_policy

        path = self.policy_path if secret else self.no_secret_path
        policy = build_policy({"config_files": [str(path)], "no_node_config": True,
                               "allow_plain_http_credentials": True})
        return Client(policy, cache=Cache(self.tmp / "cache"))

    def ref(self, text: str) -> str:
        return text.replace("{R}", self.R).replace("{P}", self.P)

    def resolve(self, root: str, version: str = "v2.3", **kw: Any) -> Resolution:
        with self.client(secret=kw.pop("secret", True)) as c:
            return resolve(c, self.ref(root), crossplane_version=version, **kw)


@pytest.fixture(scope="module")
def bed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bed]:
    tmp = tmp_path_factory.mktemp("resolve")
    with Registry(tmp / "local").start() as local, \
            Registry(tmp / "private", htpasswd={USER: PASSWORD}).start() as private:
        digests = g.publish(local.host, private.host, private_auth=(USER, PASSWORD))
        yield Bed(local, private, digests, tmp)


def versions(res: Resolution) -> dict[str, str]:
    return {p["source"]: p["version"] for p in res.to_dict()["packages"]}


def expected_platform(bed: Bed, *, v22: bool = False) -> dict[str, str]:
    R, UP, CP = bed.R, g.UP, g.CP
    return {
        f"{R}/cfg/platform-ref-aws": "v1.1.0", f"{R}/cfg/aws-network": "v0.2.0",
        f"{R}/cfg/observability": "v1.3.0", f"{R}/cfg/data": "v2.1.0",
        f"{CP}/crossplane-contrib/provider-kubernetes": "v0.16.0",
        f"{CP}/crossplane-contrib/function-patch-and-transform": "v0.8.2",
        f"{UP}/crossplane-contrib/provider-helm": "v0.19.0",
        **{f"{UP}/upbound/provider-aws-{s}": "v1.1.0" for s in ("ec2", "eks", "iam", "rds")},
        f"{UP}/upbound/provider-family-aws": "v1.1.0",
        f"{UP}/crossplane-contrib/function-auto-ready": "v0.4.2",
        f"{UP}/crossplane-contrib/function-go-templating": "v0.9.2",
        f"{UP}/crossplane-contrib/function-kcl": "v0.11.2",
        f"{UP}/grafana/provider-grafana": "v0.10.0",
        f"{R}/providers/provider-prometheus": "v1.2.3",
        f"{R}/providers/provider-loki": "v1.4.0",
        f"{R}/providers/provider-tempo": "v1.4.0",
        f"{R}/providers/provider-family-observability": "v1.0.1",
        f"{CP}/crossplane-contrib/function-cel-filter": "v0.1.1",
        f"{R}/providers/provider-sql": bed.digests[f"{R}/providers/provider-sql:v1.3.0"],
        # v1.5.0 checks pre-releases per comparator ("<v2.0.0" names none); v3 per AND group
        f"{R}/providers/provider-kafka": "v1.1.0" if v22 else "v1.2.0-rc.1",
        # v1.5.0: ^0.1.0 = >=0.1.0 <1.0.0; v3: <0.2.0
        f"{R}/providers/provider-redis": "v0.2.0" if v22 else "v0.1.5",
        f"{CP}/crossplane-contrib/function-python": "v0.2.0",
    }


def test_platform_lock_for_crossplane_v2_3(bed: Bed) -> None:
    res = bed.resolve(g.PLATFORM_ROOT, "v2.3")
    doc = res.to_dict()
    assert doc["crossplane"]["ok"], doc["crossplane"]
    assert versions(res) == expected_platform(bed)
    assert len(doc["packages"]) + 1 >= 25
    assert doc["solution"]["ok"]
    assert {p["source"]: p["version"] for p in doc["solution"]["packages"][1:]} == \
        expected_platform(bed)
    by = {p["source"]: p for p in doc["packages"]}
    # digests are the registry's; rewritten sources keep their name and show where they came from
    ec2 = by[f"{g.UP}/upbound/provider-aws-ec2"]
    assert ec2["digest"] == bed.digests[f"{bed.R}/upbound/upbound/provider-aws-ec2:v1.1.0"]
    assert ec2["resolved"].startswith(f"{bed.R}/upbound/upbound/provider-aws-ec2")
    assert ec2["kind"] == "Provider" and ec2["depth"] == 2
    assert {(p["source"], p["constraint"]) for p in ec2["parents"]} == {
        (f"{bed.R}/cfg/platform-ref-aws", ">=v0.36.0"), (f"{bed.R}/cfg/aws-network", "v1")}
    assert by[f"{g.UP}/upbound/provider-family-aws"]["depth"] == 3
    # Crossplane installs one package per reconcile, root's dependencies first
    assert [p["reconcile"] for p in doc["packages"]] == list(range(1, len(doc["packages"]) + 1))
    assert doc["packages"][0]["source"] == f"{bed.R}/cfg/platform-ref-aws"


def test_platform_lock_for_crossplane_v2_2_where_semver_v1_differs(bed: Bed) -> None:
    res = bed.resolve(g.PLATFORM_ROOT, "v2.2")
    assert versions(res) == expected_platform(bed, v22=True)
    doc = res.to_dict()
    assert doc["semver"] == "v1.5.0"
    # function-python needs Crossplane >= v2.3.0-0
    assert doc["crossplane"]["crossplaneVersion"] == [{
        "source": f"{g.CP}/crossplane-contrib/function-python",
        "message": "incompatible Crossplane version: package is not compatible with Crossplane "
                   "version (v2.2.4)"}]


def test_space_separated_and_is_an_improper_constraint_before_v2_3(bed: Bed) -> None:
    ok = bed.resolve("{R}/cfg/space-and:v1.0.0", "v2.3")
    assert versions(ok) == {f"{bed.R}/providers/provider-kafka": "v1.1.0"}
    bad = bed.resolve("{R}/cfg/space-and:v1.0.0", "v2.2").to_dict()
    assert bad["crossplane"]["lock"]["message"] == (
        "Error occurred during dependency resolution cannot find dependency version to "
        "install: version constraint on dependency is invalid: improper constraint: "
        ">=v1.0.0 <v2.0.0")


def test_conflict_crossplane_hits_and_the_solution_avoids(bed: Bed) -> None:
    res = bed.resolve("{R}/cfg/conflict:v1.0.0")
    doc = res.to_dict()
    R = bed.R
    assert versions(res) == {f"{R}/conflict/app-a": "v2.0.0", f"{R}/conflict/app-b": "v1.0.0",
                             f"{R}/conflict/lib": "v2.1.0"}
    assert doc["crossplane"]["revisions"] == [{
        "source": f"{R}/conflict/app-b",
        "message": "cannot resolve package dependencies: incompatible dependencies: existing "
                   f"package {R}/conflict/lib@v2.1.0 is incompatible with constraint <v2.0.0"}]
    assert not doc["crossplane"]["ok"]
    sol = {p["source"]: p["version"] for p in doc["solution"]["packages"]}
    assert sol == {f"{R}/cfg/conflict": "v1.0.0", f"{R}/conflict/app-a": "v1.0.0",
                   f"{R}/conflict/app-b": "v1.0.0", f"{R}/conflict/lib": "v1.5.0"}


def test_cycle(bed: Bed) -> None:
    doc = bed.resolve("{R}/cfg/cycle:v1.0.0").to_dict()
    assert doc["crossplane"]["lock"]["message"] == (
        "Error occurred during dependency resolution cannot sort DAG: detected cycle on: "
        f"{bed.R}/cycle/a")
    assert not doc["solution"]["ok"]
    assert "detected cycle on" in doc["solution"]["conflict"]["reason"]


def test_unsatisfiable_constraint_with_its_chain(bed: Bed) -> None:
    doc = bed.resolve("{R}/cfg/unsat:v1.0.0").to_dict()
    R = bed.R
    assert doc["crossplane"]["lock"]["message"] == (
        f"Error occurred during dependency resolution dependency ({R}/unsat/leaf) does not have "
        "a valid version to upgrade that satisfies all constraints. If there is a valid version "
        "that requires downgrade, manual intervention is required. Constraints: >=v3.0.0")
    assert {r["source"]: r["message"] for r in doc["crossplane"]["revisions"]}[
        f"{R}/cfg/unsat"] == ("cannot resolve package dependencies: missing dependencies: "
                              f'"{R}/unsat/leaf" (>=v3.0.0)')
    sol = doc["solution"]
    assert not sol["ok"]
    assert sol["conflict"]["source"] == f"{R}/unsat/leaf"
    assert sol["conflict"]["chains"] == [
        f"{R}/cfg/unsat@v1.0.0 -> {R}/unsat/mid@v1.1.0 -> {R}/unsat/leaf >=v3.0.0"]


def test_private_dependency_uses_its_pull_secret(bed: Bed) -> None:
    res = bed.resolve("{R}/cfg/private:v1.0.0")
    assert versions(res) == {f"{bed.P}/private/provider-secret": "v1.1.0"}
    assert res.to_dict()["crossplane"]["ok"]
    without = bed.resolve("{R}/cfg/private:v1.0.0", secret=False).to_dict()
    msg = without["crossplane"]["lock"]["message"]
    assert msg.startswith("Error occurred during dependency resolution cannot find dependency "
                          "version to install: cannot fetch dependency package tags: ")
    assert "401" in msg


def run_cli(bed: Bed, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, "resolve", *args, "--config", str(bed.policy_path),
                           "--allow-plain-http-credentials", "--no-node-config",
                           "--cache-dir", str(bed.tmp / "cli-cache")],
                          capture_output=True, text=True, timeout=120, check=False)


def test_cli_json_yaml_tree_and_emit(bed: Bed) -> None:
    root = bed.ref(g.PLATFORM_ROOT)
    out = run_cli(bed, root, "-O", "json", "--jobs", "4")
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert doc["ok"] and doc["root"]["source"] == f"{bed.R}/cfg/platform"
    assert len(doc["packages"]) == 25
    import yaml

    out = run_cli(bed, root, "-O", "yaml", "--crossplane-version", "v2.2")
    assert out.returncode == 1, out.stderr  # function-python needs Crossplane >= v2.3
    lock = yaml.safe_load(out.stdout)
    assert lock["semver"] == "v1.5.0" and lock["crossplane"]["message"].startswith(
        f"{g.CP}/crossplane-contrib/function-python: incompatible Crossplane version")
    out = run_cli(bed, root)
    assert out.returncode == 0, out.stderr
    assert "provider-family-aws" in out.stdout and "└─" in out.stdout
    out = run_cli(bed, bed.ref("{R}/cfg/conflict:v1.0.0"), "--emit", "configuration")
    meta = yaml.safe_load(out.stdout)
    pins = {d.get("provider") or d.get("package"): d["version"] for d in meta["spec"]["dependsOn"]}
    assert pins == {f"{bed.R}/conflict/app-a": bed.digests[f"{bed.R}/conflict/app-a:v1.0.0"],
                    f"{bed.R}/conflict/app-b": bed.digests[f"{bed.R}/conflict/app-b:v1.0.0"]}
    out = run_cli(bed, bed.ref("{R}/cfg/unsat:v1.0.0"))
    assert out.returncode == 1
    assert "unsat/mid@v1.1.0 -> " in out.stdout + out.stderr


def test_cli_pull_caches_every_package(bed: Bed) -> None:
    out = run_cli(bed, bed.ref("{R}/cfg/conflict:v1.0.0"), "--pull", "-O", "json")
    doc = json.loads(out.stdout)
    paths = [p["cachePath"] for p in doc["packages"]]
    assert paths and all(Path(p).is_file() for p in paths)

