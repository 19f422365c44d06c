"""Unit tests for the doctor's pure pieces: report semantics and rendering, challenge parsing,
endpoint targets, the reference stage, address classification."""

from __future__ import annotations

import pytest
import yaml

from crossfetch.doctor import Check, Doctor, Report, Status, render_text
from crossfetch.doctor.api import parse_challenge
from crossfetch.doctor.net import Target, dns_stage
from crossfetch.policy.model import Endpoint
from crossfetch.reference import is_localhost_name, is_loopback


def test_warnings_do_not_fail_a_report() -> None:
    r = Report("x", [Check("reference", Status.PASS), Check("dns", Status.WARN, "loopback-address",
                                                            "d", "fix")])
    assert r.ok and r.failure is None
    r.checks.append(Check("tls", Status.FAIL, "plain-http", "detail\nmore", "line1\nline2"))
    assert not r.ok and r.failure is r.checks[-1]
    d = r.to_dict()
    assert d["ok"] is False and [c["status"] for c in d["checks"]] == ["pass", "warn", "fail"]
    assert set(d["checks"][2]) >= {"name", "status", "cause", "detail", "fix", "ms"}


def test_render_text_shows_cause_detail_and_fix() -> None:
    r = Report("reg/x:v1", [Check("tls", Status.FAIL, "plain-http", "first\nsecond", "a\nb",
                                  seconds=0.012),
                            Check("manifest", Status.SKIP, method="HEAD")])
    text = render_text(r)
    assert "[FAIL] tls" in text and "12.0 ms" in text and "plain-http: first" in text
    assert "second" in text and "fix:" in text
    assert "[skip] manifest (HEAD)" in text
    assert text.rstrip().endswith("a pull would fail at tls: plain-http  [0 ms]")


@pytest.mark.parametrize(("header", "want"), [
    ('Bearer realm="https://auth/token",service="reg",scope="repository:a:pull"',
     {"scheme": "Bearer", "realm": "https://auth/token", "service": "reg",
      "scope": "repository:a:pull"}),
    ('Basic realm="test"', {"scheme": "Basic", "realm": "test"}),
    (None, {}),
])
def test_parse_challenge(header: str | None, want: dict[str, str]) -> None:
    assert parse_challenge(header) == want


@pytest.mark.parametrize(("url", "host", "port"), [
    ("https://reg.example", "reg.example", 443), ("http://reg.example", "reg.example", 80),
    ("https://[::1]:5000", "::1", 5000), ("https://10.0.0.1:8443/mirror/path", "10.0.0.1", 8443),
])
def test_target_of_endpoint(url: str, host: str, port: int) -> None:
    t = Target.of(Endpoint(url=url))
    assert (t.host, t.port) == (host, port)


def test_address_classes() -> None:
    assert is_loopback("127.0.0.5") and is_loopback("::1") and not is_loopback("10.0.0.1")
    assert is_localhost_name("localhost") and is_localhost_name("gitea.LOCALHOST.")
    assert not is_localhost_name("localhost.example")


def test_dns_stage_on_ip_literals() -> None:
    warn = dns_stage(Target.of(Endpoint(url="https://127.0.0.1:5000")), 1, in_cluster=False)
    assert (warn.status, warn.cause) == (Status.WARN, "loopback-address")
    assert "rewriteImage" in (warn.fix or "")
    fail = dns_stage(Target.of(Endpoint(url="https://[::1]:5000")), 1, in_cluster=True)
    assert fail.status is Status.FAIL
    ok = dns_stage(Target.of(Endpoint(url="https://192.0.2.7")), 1, in_cluster=False)
    assert ok.status is Status.PASS and ok.data["addresses"] == ["192.0.2.7"]


@pytest.mark.parametrize(("url", "prefix"), [
    ("https://127.0.0.1:5000", "127.0.0.1:5000/"), ("https://[::1]:5000", "[::1]:5000/")])
def test_loopback_rewrite_keeps_the_known_port(url: str, prefix: str) -> None:
    fix = dns_stage(Target.of(Endpoint(url=url)), 1, in_cluster=True).fix or ""
    # The ImageConfig parses (the IPv6 prefix used to be written unquoted: invalid YAML).
    ic = yaml.safe_load("\n".join(ln for ln in fix.splitlines() if not ln.startswith("#")))
    assert ic["spec"]["matchImages"][0]["prefix"] == prefix
    assert ic["spec"]["rewriteImage"]["prefix"].endswith("svc.cluster.local:5000/")
    assert "<port>" not in fix


def test_invalid_reference_stops_the_chain() -> None:
    with Doctor(timeout=1) as doc:
        report = doc.run("https://reg.example/x:v1")
    assert not report.ok
    assert report.checks[0].cause == "invalid-reference"
    assert all(c.status is Status.SKIP for c in report.checks[1:])
    assert [c.label for c in report.checks][-3:] == ["manifest (HEAD)", "manifest (GET)",
                                                     "package"]


def test_default_registry_is_flagged_for_crossplane() -> None:
    with Doctor(timeout=1, default_registry="reg.invalid") as doc:
        report = doc.run("fns/f:v1")
    ref = report.checks[0]
    assert (ref.status, ref.cause) == (Status.WARN, "not-fully-qualified")
    assert "reg.invalid/fns/f:v1" in (ref.fix or "")
