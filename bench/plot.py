"""Plot the scaling run (run by ``bench/run`` with the peer venv's Python, which has matplotlib;
matplotlib is a bench-only tool, never a crossfetch dependency).

Usage: python bench/plot.py SCALING.json OUT.png
"""

from __future__ import annotations

import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # after the backend is chosen


def main(data_path: str, out: str) -> None:
    data = json.load(open(data_path))  # noqa: SIM115 - a one-shot read
    pts = data["points"]
    mb = [p["package_yaml_bytes"] / 1e6 for p in pts]
    fig, (ax_t, ax_m) = plt.subplots(1, 2, figsize=(10, 4))
    for key, label in (("crossfetch", "crossfetch pull -o"), ("curl_gzip", "curl | gzip -d")):
        med = [p[key]["median_s"] for p in pts]
        lo = [p[key]["median_s"] - p[key]["min_s"] for p in pts]
        hi = [p[key]["max_s"] - p[key]["median_s"] for p in pts]
        ax_t.errorbar(mb, med, yerr=[lo, hi], marker="o", capsize=3, label=label)
        ax_m.plot(mb, [p[key]["peak_rss_mib"] for p in pts], marker="o", label=label)
    ax_t.set(xlabel="package.yaml (MB)", ylabel="wall time (s), median and min-max",
             title="pull time against package size")
    ax_m.set(xlabel="package.yaml (MB)", ylabel="peak RSS (MiB)", ylim=(0, None),
             title="peak memory against package size")
    for ax in (ax_t, ax_m):
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(f"crossfetch scaling over {data['transport']} (one run, shared machine)")
    fig.tight_layout()
    fig.savefig(out, dpi=100)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
