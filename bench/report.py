"""Turn measured series into ratios, target verdicts, a text table and JSON."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bench.measure import Series


def ratio_target(tool: str, reference: str, op: str, limit: float) -> dict[str, Any]:
    """``median(tool) / median(reference) OP limit``."""
    return {"kind": "ratio", "tool": tool, "reference": reference, "op": op, "limit": limit}


def rss_target(tool: str, limit_bytes: float) -> dict[str, Any]:
    """Peak RSS of ``tool`` over all its runs below ``limit_bytes``."""
    return {"kind": "rss", "tool": tool, "op": "<", "limit": limit_bytes}


def time_target(tool: str, limit_s: float) -> dict[str, Any]:
    """Median wall time of ``tool`` below ``limit_s`` (absolute: only meaningful unloaded)."""
    return {"kind": "time", "tool": tool, "op": "<", "limit": limit_s}


def _evaluate(target: dict[str, Any], by_name: dict[str, Series]) -> dict[str, Any]:
    tool = by_name[target["tool"]]
    if target["kind"] == "ratio":
        value = tool.median_s / by_name[target["reference"]].median_s
        what = f"{target['tool']} / {target['reference']} (median time)"
        shown = f"{value:.2f}x {target['op']} {target['limit']}x"
    elif target["kind"] == "time":
        value = tool.median_s
        what = f"{target['tool']} median wall time"
        shown = f"{value * 1000:.0f} ms {target['op']} {target['limit'] * 1000:.0f} ms"
    else:
        value = tool.peak_rss_mib * 1024 * 1024
        what = f"{target['tool']} peak RSS"
        shown = f"{value / 1e6:.0f} MB {target['op']} {target['limit'] / 1e6:.0f} MB"
    holds = value < target["limit"] if target["op"] == "<" else value <= target["limit"]
    return {**target, "what": what, "value": round(value, 3), "holds": holds, "shown": shown}


def scenario(name: str, transport: str, series: Sequence[Series], *, reference: str,
             notes: str, targets: list[dict[str, Any]],
             sizes: dict[str, int] | None = None) -> dict[str, Any]:
    """One scenario's JSON: each tool's numbers, its ratio to ``reference``, target verdicts."""
    by_name = {s.tool: s for s in series}
    ref = by_name[reference].median_s
    return {
        "scenario": name,
        "transport": transport,
        "reference": reference,
        "notes": notes,
        "sizes": sizes or {},
        "tools": [{**s.to_dict(), "ratio": round(s.median_s / ref, 3)} for s in series],
        "targets": [_evaluate(t, by_name) for t in targets],
    }


def print_scenario(result: dict[str, Any]) -> None:
    """A fixed-width table of one scenario on stdout."""
    title = f"== {result['scenario']} ({result['transport']}), ratio vs {result['reference']}"
    print(f"\n{title}")
    if result.get("sizes"):
        print("   " + ", ".join(f"{k} {v:,}" for k, v in result["sizes"].items()))
    print(f"   {'tool':<28}{'median':>10}{'min':>10}{'max':>10}{'ratio':>8}{'cpu mean':>9}"
          f"{'peak RSS':>11}")
    for t in result["tools"]:
        print(f"   {t['tool']:<28}{t['median_s'] * 1000:>8.0f}ms{t['min_s'] * 1000:>8.0f}ms"
              f"{t['max_s'] * 1000:>8.0f}ms{t['ratio']:>7.2f}x{t['mean_cpu_s'] * 1000:>7.0f}ms"
              f"{t['peak_rss_mib']:>8.1f}MiB")
    for key in ("importtime_help", "importtime_pull"):
        imp = result.get(key)
        if imp:
            print(f"   {key}: {imp['total_ms']} ms in {imp['modules']} modules; top level:")
            for row in imp["top_level"][:8]:
                print(f"      {row['cumulative_ms']:>7.1f} ms  {row['module']}")
            print("   self time by package: " + ", ".join(
                f"{r['package']} {r['self_ms']}" for r in imp["self_by_package"][:8]))
    for v in result["targets"]:
        print(f"   target {v['what']}: {v['shown']}  {'HOLDS' if v['holds'] else 'FAILS'}")


def verdicts(scenarios: Sequence[dict[str, Any]]) -> str:
    lines = ["", "== targets"]
    for s in scenarios:
        for v in s["targets"]:
            lines.append(f"   [{'ok' if v['holds'] else 'FAIL'}] {s['scenario']} "
                         f"({s['transport']}): {v['what']}: {v['shown']}")
    return "\n".join(lines)


def all_hold(scenarios: Sequence[dict[str, Any]]) -> bool:
    return all(v["holds"] for s in scenarios for v in s["targets"])
