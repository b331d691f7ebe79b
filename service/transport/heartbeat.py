"""One timer for every WebSocket connection of a node: pings, liveness and deadlines.

Engine.IO v4 has the server ping each connection every ping interval and give up on one that does
not answer within the ping timeout. python-engineio keeps a sleeping task per connection for it;
here one task serves them all from a timing wheel: each connection is filed under the tick when it
next needs attention (a ping to send, an answer that is due, a handshake or a close handshake
that must have finished), and each tick visits only the connections filed under it. So the timer
costs nothing per idle connection between its events, and a node holding 50,000 connections
visits about 50,000 / ping interval of them per second.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from typing import Protocol

log = logging.getLogger("service.transport")


class Timed(Protocol):
    def on_timer(self, now: float) -> float | None:
        """Do what is due; the time of the next thing to do, or None when nothing more is."""


class Heartbeat:
    def __init__(self, tick_s: float, sleep: Callable[[float], None] = time.sleep):
        self.tick_s = tick_s
        self.sleep = sleep
        self._wheel: dict[int, set[Timed]] = {}
        self._next: dict[Timed, int] = {}  # where each connection is filed now
        self._lock = threading.Lock()
        self._last = self._tick(time.monotonic())
        self.running = False
        self.after_tick: Callable[[], None] | None = None  # run after each tick's visits

    def _tick(self, at: float) -> int:
        return math.ceil(at / self.tick_s)

    def schedule(self, item: Timed, at: float) -> None:
        """Visit `item` at monotonic time `at` (or the first tick after it); once."""
        tick = max(self._tick(at), self._last + 1)
        with self._lock:
            old = self._next.get(item)
            if old is not None and old <= tick:
                return  # an earlier visit is filed; it will schedule what comes next
            if old is not None:
                self._wheel.get(old, set()).discard(item)
            self._next[item] = tick
            self._wheel.setdefault(tick, set()).add(item)

    def forget(self, item: Timed) -> None:
        with self._lock:
            tick = self._next.pop(item, None)
            if tick is not None:
                self._wheel.get(tick, set()).discard(item)

    def run_forever(self) -> None:
        self.running = True
        while self.running:
            self.sleep(self.tick_s)
            self.run_due(time.monotonic())
            if self.after_tick is not None:
                try:
                    self.after_tick()
                except Exception:
                    log.exception("the timer's after-tick work failed")

    def run_due(self, now: float) -> int:
        """Visit everything filed up to `now`; how many were visited."""
        current = self._tick(now)
        visited = 0
        while self._last < current:
            self._last += 1
            with self._lock:
                due = self._wheel.pop(self._last, ())
                for item in due:
                    self._next.pop(item, None)
            for item in due:
                visited += 1
                try:
                    upcoming = item.on_timer(now)
                except Exception:
                    log.exception("a connection's timer failed")
                    continue
                if upcoming is not None:
                    self.schedule(item, upcoming)
        return visited

    def __len__(self) -> int:
        return len(self._next)
