"""Resident memory of named process trees, sampled on a fixed period in a thread.

A Role is a process the soak started (a gunicorn master, nginx's master, a redis-server, locust)
and the label its children take: a child is `<child label>`, or `<child label> k` (k = 1, 2, ...
in pid order) when the role has several. A label keeps its series when its process is replaced
(a restarted worker); every pid it stood for is kept, so a replacement shows.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import psutil

MB = 2**20


@dataclass(frozen=True)
class Role:
    label: str  # of the process itself
    pid: int
    child_label: str | None = None  # None: its children are not sampled


def labelled(roles: list[Role]) -> dict[str, psutil.Process]:
    """Every process of the roles now, by label; a process that is gone is left out."""
    found: dict[str, psutil.Process] = {}
    for role in roles:
        try:
            root = psutil.Process(role.pid)
            children = sorted(root.children(), key=lambda p: p.pid) if role.child_label else []
        except psutil.Error:
            continue
        found[role.label] = root
        for number, child in enumerate(children, start=1):
            found[f"{role.child_label} {number}" if len(children) > 1
                  else str(role.child_label)] = child
    return found


class ProcessTable:
    """RSS in MB by label, and every pid each label stood for."""

    def __init__(self, roles: Callable[[], list[Role]]):
        self.roles = roles
        self.pids: dict[str, list[int]] = {}

    def __call__(self) -> dict[str, float]:
        rss = {}
        for label, process in labelled(self.roles()).items():
            try:
                rss[label] = round(process.memory_info().rss / MB, 2)
            except psutil.Error:
                continue
            pids = self.pids.setdefault(label, [])
            if process.pid not in pids:
                pids.append(process.pid)
        return rss


@dataclass
class Series:
    """Samples of named values on one clock: `values[name][i]` was read at `t_s[i]` (None where
    the name had no value then)."""

    t_s: list[float] = field(default_factory=list)
    values: dict[str, list[float | None]] = field(default_factory=dict)

    def add(self, t_s: float, sample: dict[str, float]) -> None:
        for name in sample.keys() - self.values.keys():
            self.values[name] = [None] * len(self.t_s)
        self.t_s.append(round(t_s, 2))
        for name, column in self.values.items():
            column.append(sample.get(name))

    def latest(self) -> dict[str, float]:
        return {name: column[-1] for name, column in self.values.items()
                if column and column[-1] is not None}


class Sampler(threading.Thread):
    """Calls each probe every `interval` s from start to stop() and files its answer (name ->
    value) in the probe's Series, timed in seconds since `t0` (time.monotonic()). A probe that
    raises misses that sample only."""

    def __init__(self, probes: dict[str, Callable[[], dict[str, float]]], interval: float,
                 t0: float):
        super().__init__(daemon=True, name="soak-sampler")
        self.probes, self.interval, self.t0 = probes, interval, t0
        self.series = {name: Series() for name in probes}
        self.lock = threading.Lock()
        self._stopping = threading.Event()

    def sample(self) -> None:
        for name, probe in self.probes.items():
            now = time.monotonic() - self.t0
            try:
                values = probe()
            except Exception:  # noqa: S112 - e.g. Redis busy: the next sample will tell
                continue
            with self.lock:
                self.series[name].add(now, values)

    def latest(self, name: str) -> dict[str, float]:
        with self.lock:
            return self.series[name].latest()

    def run(self) -> None:
        next_at = time.monotonic()
        while True:
            self.sample()
            next_at = max(next_at + self.interval, time.monotonic())  # late: no burst after
            if self._stopping.wait(max(0.0, next_at - time.monotonic())):
                return

    def stop(self) -> None:
        """Stops after one last sample."""
        self._stopping.set()
        self.join()
        self.sample()
