"""summary.json and PNG charts of a load test, from locust's CSV history and the ledgers."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from loadtests.accounting import Accounting

KINDS = ("same-node", "cross-node")


def percentile(values: list[float], p: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))
    return round(ordered[index], 2)


def read_history(folder: Path) -> list[dict[str, str]]:
    path = folder / "locust_stats_history.csv"
    if not path.exists():
        return []
    with path.open() as handle:
        return list(csv.DictReader(handle))


def series(rows: list[dict[str, str]], name: str, column: str) -> tuple[list[float], list[float]]:
    points = [(float(r["Timestamp"]), r[column]) for r in rows
              if r["Name"] == name and r[column] not in ("", "N/A")]
    if not points:
        return [], []
    start = min(float(r["Timestamp"]) for r in rows)
    return [t - start for t, _ in points], [float(v) for _, v in points]


def charts(folder: Path, rows: list[dict[str, str]], cpu: list[tuple[float, float]]) -> None:
    figure, axes = plt.subplots(3, 1, figsize=(10, 10), sharex=True)
    for kind, color in zip(KINDS, ("tab:blue", "tab:orange"), strict=True):
        for column, style in (("50%", "-"), ("95%", "--"), ("99%", ":")):
            times, values = series(rows, kind, column)
            if times:
                axes[0].plot(times, values, style, color=color, label=f"{kind} p{column[:-1]}")
    axes[0].set_ylabel("delivery latency (ms)")
    axes[0].set_yscale("log")
    axes[0].legend(fontsize=8, ncol=2)
    axes[0].set_title("Delivery latency percentiles over time")
    for kind in KINDS:
        times, values = series(rows, kind, "Requests/s")
        if times:
            axes[1].plot(times, values, label=kind)
    axes[1].set_ylabel("deliveries / s")
    axes[1].legend(fontsize=8)
    times, values = series(rows, "Aggregated", "User Count")
    axes[2].plot(times, values, color="tab:green", label="users")
    axes[2].set_ylabel("users")
    if cpu:
        twin = axes[2].twinx()
        start = cpu[0][0]
        twin.plot([t - start for t, _ in cpu], [c for _, c in cpu], color="tab:red",
                  label="load generator CPU (cores)")
        twin.set_ylabel("load generator cores")
        twin.legend(fontsize=8, loc="lower right")
    axes[2].set_xlabel("seconds")
    axes[2].legend(fontsize=8, loc="upper left")
    figure.tight_layout()
    figure.savefig(folder / "latency-deliveries-users.png", dpi=90)
    plt.close(figure)


def write_report(folder: Path, *, scenario: str, users: int, nodes: int, duration_s: int,
                 processes: int, accounting: Accounting, sampler: Any) -> dict[str, Any]:
    rows = read_history(folder)
    latency = {
        kind: {f"p{p}": percentile(accounting.latencies.get(kind, []), p) for p in (50, 95, 99)}
        for kind in ("same_node", "cross_node")
    }
    summary = {
        "scenario": scenario,
        "users": users,
        "nodes": nodes,
        "duration_s": duration_s,
        "expected": accounting.expected,
        "delivered": accounting.delivered,
        "directs_received": accounting.directs,
        "lost": accounting.lost,
        "duplicates": accounting.duplicates,
        "retries": accounting.retries,  # sends resent after a lost ack, with the same client_id
        "out_of_order": accounting.out_of_order,
        "deliveries_per_s": accounting.deliveries_per_s,
        "latency_ms": latency,
        "sent": accounting.sent,
        "send_failures": accounting.send_failures,
        "load_generator_cpu_s": round(sampler.loadgen_cpu_s, 1),
        "load_generator_peak_cores": round(max((c for _, c in sampler.samples), default=0), 2),
        "load_generator_processes": processes,
        "load_generator_busiest_process_cores": round(sampler.busiest_process_cores, 2),
        "server_cpu_s": round(sampler.server_cpu_s, 1) if sampler.nodes else None,
        "server_cpu_s_by_program": sampler.server_cpu_by_program if sampler.nodes else None,
        "server_rss_mb_idle": round(sampler.server_rss_idle / 2**20, 1) if sampler.nodes else None,
        "server_rss_mb_peak": round(sampler.server_rss_peak / 2**20, 1) if sampler.nodes else None,
    }
    (folder / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    charts(folder, rows, sampler.samples)
    return summary
