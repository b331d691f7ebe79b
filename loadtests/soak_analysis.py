"""Whether a process's memory grows steadily: the leak judgement of `make soak`.

A series is judged over its window: the second half of the load, and never before SETTLE_S (the
first minutes, while users connect and caches, pools and allocator arenas fill once). Through the
samples in the window goes a least-squares line: its slope (MB per hour), the growth it accounts
for over the window (MB), and R², the share of the samples' variance the line explains.

A series is flagged as growing steadily when all three pass their threshold:

- slope >= LEAK_MB_PER_H (4 MB/h): about 100 MB a day, as much again as a node's worker holds
  under this load, so a node would need restarting daily; and, over the 15-minute window of the
  default 30-minute soak, the slowest growth that reaches MIN_GROWTH_MB.
- growth >= MIN_GROWTH_MB (1 MB): resident memory moves in allocator-sized steps (CPython's
  arenas are 1 MiB, glibc grows its heaps by as much), so less cannot be told from one step.
  A shorter run therefore sees only faster leaks (a 5-minute run: 24 MB/h and up).
- R² >= STEADY_R2 (0.8): a steady climb (or a staircase of several steps); a single step of a
  cache filling once explains at most 0.75 of the variance (halfway through the window), noise
  about none.

The verdict then says what a flagged series is: the load generator's ledger keeps every receipt
until the test ends (loadtests/accounting.py), so locust grows with deliveries by design. Redis
is judged only once the load has filled it (room streams up to ROOM_HISTORY_MAX messages each,
10,000 by default: 17 minutes of the default chat load; each send's idempotency key lives 10
minutes), by its data first: when its used_memory does not grow steadily, growth of its resident
memory is its allocator keeping pages (freed stream nodes, fragmentation), not the service's
data; when the data grows by at least half as much, it is stored data; anything else is a
possible leak.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

SETTLE_S = 120.0
LEAK_MB_PER_H = 4.0
MIN_GROWTH_MB = 1.0
STEADY_R2 = 0.8
MIN_SAMPLES = 5
DATA_SHARE = 0.5  # of Redis's RSS growth that its used_memory growth must match to be data

FLAT, LEAK, DATA, LEDGER, UNJUDGED = ("flat", "possible leak", "grows: stored data",
                                      "grows: the load generator's ledger", "not judged")
ALLOCATOR = "grows: Redis's allocator (its data is flat)"


@dataclass(frozen=True)
class Fit:
    slope: float  # per second
    intercept: float
    r2: float


def fit(t_s: list[float], values: list[float]) -> Fit:
    """The least-squares line through the points; R² is 0 when the values do not vary. At least
    two distinct times."""
    n = len(t_s)
    mean_t, mean_v = sum(t_s) / n, sum(values) / n
    s_tt = sum((t - mean_t) ** 2 for t in t_s)
    if s_tt == 0:
        raise ValueError("a line needs at least two distinct times")
    s_tv = sum((t - mean_t) * (v - mean_v) for t, v in zip(t_s, values, strict=True))
    s_vv = sum((v - mean_v) ** 2 for v in values)
    slope = s_tv / s_tt
    r2 = s_tv * s_tv / (s_tt * s_vv) if s_vv else 0.0
    return Fit(slope, mean_v - slope * mean_t, r2)


def window(load_s: float, settle_s: float = SETTLE_S) -> tuple[float, float]:
    """The judged span of a load of `load_s` seconds (empty when the load is shorter than the
    settling time)."""
    return min(load_s, max(settle_s, load_s / 2)), load_s


def judge(t_s: list[float], values: list[float | None], start: float, end: float) -> dict[str, Any]:
    """The figures of one series and whether it grew steadily in [start, end]."""
    present = [(t, v) for t, v in zip(t_s, values, strict=True) if v is not None]
    inside = [(t, v) for t, v in present if start <= t <= end]
    figures: dict[str, Any] = {
        "start_mb": present[0][1] if present else None,
        "end_mb": present[-1][1] if present else None,
        "peak_mb": max((v for _, v in present), default=None),
        "samples_judged": len(inside),
        "slope_mb_per_h": None, "growth_mb": None, "r2": None, "steady_growth": False,
    }
    if len(inside) < MIN_SAMPLES or inside[-1][0] <= inside[0][0]:
        return figures
    line = fit([t for t, _ in inside], [v for _, v in inside])
    growth = line.slope * (inside[-1][0] - inside[0][0])
    figures.update(slope_mb_per_h=round(line.slope * 3600, 2), growth_mb=round(growth, 2),
                   r2=round(line.r2, 3),
                   steady_growth=(line.slope * 3600 >= LEAK_MB_PER_H and growth >= MIN_GROWTH_MB
                                  and line.r2 >= STEADY_R2))
    return figures


def verdict(label: str, figures: dict[str, Any], data: dict[str, Any] | None = None) -> str:
    """What a judged series says: flat, or what its steady growth is (see the module's text);
    `data` is a Redis server's judged used_memory."""
    if figures["slope_mb_per_h"] is None:
        return UNJUDGED
    if not figures["steady_growth"]:
        return FLAT
    if label.startswith("locust"):
        return LEDGER
    if label.startswith("redis") and data is not None and data.get("growth_mb") is not None:
        if not data["steady_growth"]:
            return ALLOCATOR
        if data["growth_mb"] >= DATA_SHARE * figures["growth_mb"]:
            return DATA
    return LEAK


def judge_all(t_s: list[float], series: dict[str, list[float | None]], start: float, end: float,
              data: dict[str, dict[str, Any]] | None = None,
              redis_start: float | None = None) -> dict[str, dict[str, Any]]:
    """Every process series judged in [start, end], a Redis server's from `redis_start` (once
    the load filled it; `data` holds its used_memory judged over the same span, under the same
    label as its process)."""
    judged = {}
    for label in sorted(series):
        begins = redis_start if label.startswith("redis") and redis_start is not None else start
        figures = judge(t_s, series[label], begins, end)
        figures["verdict"] = verdict(label, figures, (data or {}).get(label))
        judged[label] = figures
    return judged


def redis_window(start: float, end: float, fill_s: float) -> float:
    """Where Redis's judgement starts: a minute after the load filled it (the last idempotency
    keys expire and the streams' trims settle), within the run."""
    return min(end, max(start, fill_s + 60))
