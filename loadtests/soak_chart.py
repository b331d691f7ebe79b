"""soak.png: every process's resident memory over the run, the change of the nodes' and front
door's in the judged window (where a leak shows as a slope), and p50/p99 per minute."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.ticker import LogLocator, NullFormatter, ScalarFormatter

STYLES = ("--", "-", ":", "-.")  # a role's first process (a master) dashed, its first child solid
MIN_SENDING_S = 30  # a minute with less (the drain at the end) has too few deliveries for a p99


def memory_panel(axis, t_s: list[float], series: dict[str, list[float | None]], title: str,
                 since_s: float | None = None) -> None:
    """A colour per role (node-1, nginx, redis, locust), a line style per process of it; with
    `since_s`, each line is the change from its first sample at or after then, from then on."""
    roles = sorted({label.split()[0] for label in series})
    members: dict[str, int] = {}
    for label in sorted(series):
        role = label.split()[0]
        style = STYLES[members.setdefault(role, 0) % len(STYLES)]
        members[role] += 1
        points = [(t, v) for t, v in zip(t_s, series[label], strict=True)
                  if v is not None and (since_s is None or t >= since_s)]
        if not points:
            continue
        base = points[0][1] if since_s is not None else 0.0
        axis.plot([t / 60 for t, _ in points], [v - base for _, v in points], style,
                  color=f"C{roles.index(role) % 10}", label=label)
    axis.set_title(title)
    axis.set_ylabel("RSS change (MB)" if since_s is not None else "RSS (MB)")
    if since_s is None:
        axis.set_ylim(bottom=0)
    axis.legend(fontsize=7, ncol=2, loc="upper left", bbox_to_anchor=(1.01, 1))


def latency_panel(axis, rows: list[dict[str, Any]]) -> None:
    rows = [row for row in rows if row["sending_s"] >= MIN_SENDING_S]
    for key, color, label in (("delivery", "tab:blue", "delivery"),
                              ("ack", "tab:green", "send ack")):
        for p, style in (("p50", "-"), ("p99", "--")):
            points = [(row["minute"] + 0.5, row[f"{key}_{p}_ms"]) for row in rows
                      if row[f"{key}_{p}_ms"] is not None]
            axis.plot([m for m, _ in points], [v for _, v in points], style, marker=".",
                      color=color, label=f"{label} {p}")
    axis.set_title("latency, each minute of the run")
    axis.set_ylabel("ms")
    axis.set_yscale("log")
    axis.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    axis.yaxis.set_major_formatter(ScalarFormatter())
    axis.yaxis.set_minor_formatter(NullFormatter())
    axis.set_xlabel("minutes since locust started")
    axis.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1))


def chart(report: dict[str, Any], path: Path) -> None:
    memory = report["memory"]
    t_s, rss = memory["t_s"], memory["rss_mb"]
    nodes = {label: values for label, values in rss.items() if label.startswith("node-")}
    others = {label: values for label, values in rss.items() if label not in nodes}
    service = {label: values for label, values in rss.items()
               if label.startswith(("node-", "nginx"))}
    start, end = report["leaks"]["window_s"]
    figure, axes = plt.subplots(4, 1, figsize=(12, 15), sharex=True)
    memory_panel(axes[0], t_s, nodes, "nodes: gunicorn masters and workers")
    memory_panel(axes[1], t_s, others, "front door, Redis, load generator")
    memory_panel(axes[2], t_s, service, f"nodes and front door: change since minute "
                 f"{start / 60:.1f}, where growth is judged", since_s=start)
    for axis in axes[:3]:
        axis.axvspan(start / 60, end / 60, color="0.93", zorder=0)
    latency_panel(axes[3], report["per_minute"])
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)
