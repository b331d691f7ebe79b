"""The drops part's table and chart: delivered % side by side, and where each system's losses
came from (the causes of loadtests/drops_accounting.py).

The chart also shows the published figures of the anchor, anycable/nodejs-websocket-bench
(2026, repeated 2-second network drops), hatched and labelled as published: they were measured
elsewhere, with other clients and sizes, and only say where the bar was set.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from loadtests.drops_bench import THIS_SERVICE

PUBLISHED = [("AnyCable", 100.0), ("Socket.IO", 84.6), ("uWebSockets.js", 87.0)]
LOSSES = [  # (row key, cause, label)
    ("missing_by_cause", "recovered", "missing: a recovered reconnect lacked it"),
    ("missing_by_cause", "rejoined", "missing: join {since} lacked it"),
    ("missing_by_cause", "connected", "missing: on a live connection"),
    ("missing_by_cause", "never_back", "missing: receiver never back"),
    ("duplicates_by_cause", "stored_twice", "duplicate: a resend stored twice"),
    ("duplicates_by_cause", "in_missed", "duplicate: again in join's missed"),
    ("duplicates_by_cause", "as_event", "duplicate: again as an event"),
]


def losses(row: dict) -> str:
    """`none`, or each cause with its count, largest first."""
    counted = [(row[key][cause], label) for key, cause, label in LOSSES if row[key][cause]]
    if row["out_of_order"]:
        counted.append((row["out_of_order"], "out of order"))
    if row["unacknowledged_sends"]:
        counted.append((row["unacknowledged_sends"], "sends never acknowledged"))
    return "; ".join(f"{label} {n}" for n, label in sorted(counted, reverse=True)) or "none"


def print_table(rows: list[dict]) -> None:
    header = (f"{'system':26} {'acked':>6} {'owed':>7} {'deliv %':>8} {'missing':>7} "
              f"{'dupl':>5} {'disorder':>8} {'unacked':>7} {'resends':>7} {'drops':>5} "
              f"{'recovered':>9} {'rejoined':>8}")
    print(header)
    print("-" * len(header))
    for row in rows:
        reconnects = row["receiver_reconnects"]
        print(f"{row['system']:26} {row['acknowledged']:6d} {row['expected']:7d} "
              f"{row['delivered_percent']!s:>8} {row['missing']:7d} {row['duplicates']:5d} "
              f"{row['out_of_order']:8d} {row['unacknowledged_sends']:7d} "
              f"{row['resends']:7d} {row['drops']:5d} {reconnects.get('recovered', 0):9d} "
              f"{reconnects.get('rejoined', 0):8d}")
    for row in rows:
        print(f"  {row['system']}: losses from: {losses(row)}")


def chart(rows: list[dict], path: Path) -> None:
    figure, (left, right) = plt.subplots(1, 2, figsize=(14, 4.5))
    names = [row["system"] for row in rows] + [f"{name}\n(published)" for name, _ in PUBLISHED]
    values = [row["delivered_percent"] or 0.0 for row in rows] + [v for _, v in PUBLISHED]
    colors = ["tab:blue" if row["system"] == THIS_SERVICE else "tab:gray" for row in rows]
    bars = left.bar(names, values, color=colors + ["white"] * len(PUBLISHED), edgecolor="black")
    for bar in bars[len(rows):]:
        bar.set_hatch("//")
    left.bar_label(bars, fmt="%.2f")
    left.set_ylim(min(80.0, min(values) - 2), 101)
    left.set_title("delivered % of acknowledged messages (each receiver)")
    left.tick_params(axis="x", rotation=20, labelsize=8)
    bottom = [0] * len(rows)
    for key, cause, label in LOSSES:
        counts = [row[key][cause] for row in rows]
        if any(counts):
            right.bar([row["system"] for row in rows], counts, bottom=bottom, label=label)
            bottom = [b + c for b, c in zip(bottom, counts, strict=True)]
    disorder = [row["out_of_order"] for row in rows]
    if any(disorder):
        right.bar([row["system"] for row in rows], disorder, bottom=bottom, label="out of order",
                  color="black")
    right.set_title("where the losses came from (receipts)")
    if any(bottom) or any(disorder):
        right.legend(fontsize=8)
    else:
        right.text(0.5, 0.5, "no losses, duplicates or disorder", ha="center",
                   transform=right.transAxes)
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)
