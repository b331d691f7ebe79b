"""Per-minute histograms of delivery latency and send ack time, for `make soak`.

Each locust process keeps a Timeline: for every minute of the run (counted from t0, the run's
start in epoch seconds), how many deliveries and acks it saw, each value counted under its time
rounded to RESOLUTION_MS, plus its failed requests and connects. A histogram's size grows with
the spread of the values, not their number, so a long run costs the load generator next to no
memory, and percentiles read from it are those of the raw values to within RESOLUTION_MS.

Percentiles are nearest-rank, as loadtests/report.py computes them from raw values.
"""

from __future__ import annotations

import json
import math
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

RESOLUTION_MS = 0.1
FLUSH_S = 5.0  # how often a locust process writes its timeline
DELIVER, ACK = "deliver", "ack"
ACK_TYPES = ("send", "direct")  # locust request types whose response time is an ack time


@dataclass
class Minute:
    deliver: Counter = field(default_factory=Counter)  # value in RESOLUTION_MS steps -> count
    ack: Counter = field(default_factory=Counter)
    errors: int = 0
    connects: int = 0

    def merge(self, other: Minute) -> None:
        self.deliver.update(other.deliver)
        self.ack.update(other.ack)
        self.errors += other.errors
        self.connects += other.connects

    def to_json(self) -> dict[str, Any]:
        return {DELIVER: {str(k): n for k, n in self.deliver.items()},
                ACK: {str(k): n for k, n in self.ack.items()},
                "errors": self.errors, "connects": self.connects}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Minute:
        return cls(Counter({int(k): n for k, n in data[DELIVER].items()}),
                   Counter({int(k): n for k, n in data[ACK].items()}),
                   data["errors"], data["connects"])


@dataclass
class Timeline:
    t0: float
    minutes: dict[int, Minute] = field(default_factory=dict)
    error_kinds: Counter = field(default_factory=Counter)  # "type name: error" -> count

    def record(self, request_type: str, name: str, at: float, response_ms: float,
               error: BaseException | None = None) -> None:
        """One locust request event that happened at `at` (epoch seconds)."""
        minute = self.minutes.setdefault(max(0, math.floor((at - self.t0) / 60)), Minute())
        if error is not None:
            minute.errors += 1
            self.error_kinds[f"{request_type} {name}: {error}"[:160]] += 1
            return
        step = round(response_ms / RESOLUTION_MS)
        if request_type == DELIVER:
            minute.deliver[step] += 1
        elif request_type in ACK_TYPES:
            minute.ack[step] += 1
        elif request_type == "connect":
            minute.connects += 1

    def __bool__(self) -> bool:
        return bool(self.minutes)

    def to_json(self) -> dict[str, Any]:
        return {"t0": self.t0, "minutes": {str(k): m.to_json() for k, m in self.minutes.items()},
                "error_kinds": dict(self.error_kinds)}

    def write(self, path: Path) -> None:
        """Atomically: a reader sees the previous file or this one, never a part."""
        partial = path.with_suffix(".tmp")
        partial.write_text(json.dumps(self.to_json()))
        os.replace(partial, path)


def merge(timelines: list[dict[str, Any]]) -> Timeline:
    """One timeline of several processes' (the same t0)."""
    merged = Timeline(t0=min((t["t0"] for t in timelines), default=0.0))
    for data in timelines:
        merged.error_kinds.update(data.get("error_kinds", {}))
        for key, minute in data["minutes"].items():
            merged.minutes.setdefault(int(key), Minute()).merge(Minute.from_json(minute))
    return merged


def load(folder: Path) -> Timeline:
    """The merged timeline of every process that wrote one into `folder`."""
    return merge([json.loads(path.read_text()) for path in sorted(folder.glob("timeline-*.json"))])


def percentile(counts: Counter, p: float) -> float | None:
    """The nearest-rank p-th percentile (ms) of a histogram; None when it is empty."""
    total = sum(counts.values())
    if not total:
        return None
    rank = min(total, max(1, round(p / 100 * total)))
    seen = 0
    for step in sorted(counts):
        seen += counts[step]
        if seen >= rank:
            return round(step * RESOLUTION_MS, 1)
    raise AssertionError("unreachable: the ranks add up to total")


def per_minute(timeline: Timeline, last: int | None = None) -> list[dict[str, Any]]:
    """A row per minute from 0 to `last` (default: the last recorded), empty minutes included."""
    if last is None:
        last = max(timeline.minutes, default=-1)
    rows = []
    for index in range(last + 1):
        minute = timeline.minutes.get(index, Minute())
        rows.append({
            "minute": index,
            "deliveries": sum(minute.deliver.values()),
            "delivery_p50_ms": percentile(minute.deliver, 50),
            "delivery_p99_ms": percentile(minute.deliver, 99),
            "acks": sum(minute.ack.values()),
            "ack_p50_ms": percentile(minute.ack, 50),
            "ack_p99_ms": percentile(minute.ack, 99),
            "errors": minute.errors,
            "connects": minute.connects,
        })
    return rows


def overall(timeline: Timeline) -> dict[str, Any]:
    """p50 and p99 of the whole run, and the counts."""
    whole = Minute()
    for minute in timeline.minutes.values():
        whole.merge(minute)
    return {"deliveries": sum(whole.deliver.values()),
            "delivery_p50_ms": percentile(whole.deliver, 50),
            "delivery_p99_ms": percentile(whole.deliver, 99),
            "acks": sum(whole.ack.values()),
            "ack_p50_ms": percentile(whole.ack, 50), "ack_p99_ms": percentile(whole.ack, 99),
            "errors": whole.errors, "connects": whole.connects}
