"""soak.json's content and the summary `make soak` prints."""

from __future__ import annotations

from typing import Any

from loadtests.accounting import Accounting
from loadtests.soak_analysis import (
    LEAK,
    LEAK_MB_PER_H,
    MIN_GROWTH_MB,
    STEADY_R2,
    judge,
    judge_all,
    redis_window,
    window,
)
from loadtests.soak_memory import Series
from loadtests.soak_timeline import Timeline, overall, per_minute


def counts(accounting: Accounting) -> dict[str, Any]:
    return {"expected": accounting.expected, "delivered": accounting.delivered,
            "lost": accounting.lost, "duplicates": accounting.duplicates,
            "out_of_order": accounting.out_of_order, "directs_received": accounting.directs,
            "sent": accounting.sent, "retries": accounting.retries,
            "send_failures": accounting.send_failures,
            "deliveries_per_s": accounting.deliveries_per_s}


def build(*, settings: dict[str, Any], load_s: float, elapsed_s: float, accounting: Accounting,
          timeline: Timeline, rss: Series, pids: dict[str, list[int]], redis_memory: Series,
          exited: dict[str, int]) -> dict[str, Any]:
    """The whole report: settings, ledger counts, per-minute percentiles, memory series and the
    leak judgement of each process (soak_analysis.py). Times count from locust's start; `load_s`
    is when its users stopped sending, and each minute's `sending_s` how much of it they sent in.
    `clean`: something was owed, nothing was lost, duplicated or reordered, and no process of the
    cluster exited."""
    start, end = window(load_s, settings["settle_s"])
    redis_start = redis_window(start, end, settings.get("redis_fill_s", 0.0))
    data = {label: judge(redis_memory.t_s, values, redis_start, end)
            for label, values in redis_memory.values.items()}
    processes = judge_all(rss.t_s, rss.values, start, end, data, redis_start)
    minutes = per_minute(timeline)
    for row in minutes:
        row["sending_s"] = round(max(0.0, min(60.0, load_s - 60 * row["minute"])), 1)
    return {
        "settings": settings,
        "load_s": load_s,
        "elapsed_s": round(elapsed_s, 1),
        "counts": counts(accounting),
        "errors": {"total": sum(timeline.error_kinds.values()),
                   "by_kind": dict(timeline.error_kinds.most_common())},
        "cluster_processes_exited": exited,
        "latency_ms": overall(timeline),
        "per_minute": minutes,
        "memory": {"t_s": rss.t_s, "rss_mb": rss.values, "pids": pids,
                   "redis_used_memory_mb": redis_memory.values},
        "leaks": {"window_s": [round(start, 1), round(end, 1)],
                  "redis_window_s": [round(redis_start, 1), round(end, 1)],
                  "thresholds": {"mb_per_h": LEAK_MB_PER_H, "growth_mb": MIN_GROWTH_MB,
                                 "r2": STEADY_R2},
                  "processes": processes, "redis_used_memory": data,
                  "possible_leaks": [label for label, f in processes.items()
                                     if f["verdict"] == LEAK]},
        "clean": accounting.clean and accounting.expected > 0 and not exited,
    }


def number(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def summary(report: dict[str, Any]) -> str:
    c, latency, leaks = report["counts"], report["latency_ms"], report["leaks"]
    lines = [
        f"deliveries: expected {c['expected']:,}, delivered {c['delivered']:,}, lost {c['lost']}, "
        f"duplicated {c['duplicates']}, out of order {c['out_of_order']}; sent {c['sent']:,}, "
        f"retries {c['retries']}, send failures {sum(c['send_failures'].values())}, errors "
        f"{report['errors']['total']}; {c['deliveries_per_s']:,.0f} deliveries/s",
        f"latency over the run: delivery p50 {number(latency['delivery_p50_ms'])} / p99 "
        f"{number(latency['delivery_p99_ms'])} ms, send ack p50 {number(latency['ack_p50_ms'])} "
        f"/ p99 {number(latency['ack_p99_ms'])} ms",
        "",
        f"{'minute':>6} {'deliveries':>10} {'p50 ms':>7} {'p99 ms':>7} {'ack p50':>7} "
        f"{'ack p99':>7} {'errors':>6} {'connects':>8}",
    ]
    for row in report["per_minute"]:
        partial = f"  sending {row['sending_s']:g} s of it" if row["sending_s"] < 60 else ""
        lines.append(f"{row['minute']:6d} {row['deliveries']:10,d} "
                     f"{number(row['delivery_p50_ms']):>7} {number(row['delivery_p99_ms']):>7} "
                     f"{number(row['ack_p50_ms']):>7} {number(row['ack_p99_ms']):>7} "
                     f"{row['errors']:6d} {row['connects']:8d}{partial}")
    start, end = leaks["window_s"]
    lines += ["", f"memory (RSS, MB); growth judged from {start / 60:.1f} to {end / 60:.1f} min "
              f"(flagged: >= {leaks['thresholds']['mb_per_h']} MB/h, >= "
              f"{leaks['thresholds']['growth_mb']} MB, R² >= {leaks['thresholds']['r2']})",
              f"{'process':18} {'start':>7} {'end':>7} {'peak':>7} {'MB/h':>7} {'growth':>7} "
              f"{'R²':>5}  verdict"]
    for label, f in leaks["processes"].items():
        data = leaks["redis_used_memory"].get(label)
        note = (f" (used_memory {number(data['start_mb'])} -> {number(data['end_mb'])} MB)"
                if data else "")
        lines.append(f"{label:18} {number(f['start_mb']):>7} {number(f['end_mb']):>7} "
                     f"{number(f['peak_mb']):>7} {number(f['slope_mb_per_h']):>7} "
                     f"{number(f['growth_mb'], 2):>7} {number(f['r2'], 2):>5}  "
                     f"{f['verdict']}{note}")
    for name, code in report["cluster_processes_exited"].items():
        lines.append(f"EXITED during the run: {name} (exit {code})")
    for label in leaks["possible_leaks"]:
        f = leaks["processes"][label]
        lines.append(f"POSSIBLE LEAK: {label} grew {f['growth_mb']} MB in the judged window "
                     f"({f['slope_mb_per_h']} MB/h, R² {f['r2']})")
    return "\n".join(lines)
