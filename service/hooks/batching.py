"""What a webhook sender decides without Redis or the network: how long to pause after failures,
which events are too old to send, and what goes into one request.

Guarantees
- Pauses grow: after n failed tries in a row an outbox waits between half of and all of
  min(BACKOFF_BASE_S * 2^(n-1), BACKOFF_CAP_S, WEBHOOK_RETRY_S) ("equal jitter": spread, so that
  outboxes that failed together do not come back together, yet never shorter than the pause
  before it until the cap).
- An event older than WEBHOOK_RETRY_S is dropped, never sent: entries are oldest first, so the
  dropped ones are the prefix before the first younger one.
- A batch holds at most `capacity` events; each outbox's events are in it oldest first and
  consecutive, so a receiver reading a batch in order reads each room's and inbox's in stored
  order.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..primitives import codec
from ..store.outbox import Entry, Taken

BACKOFF_BASE_S = 0.5
BACKOFF_CAP_S = 300.0


def backoff_s(failures: int, retry_s: float, rng: Callable[[], float] = random.random) -> float:
    """The pause before trying again an outbox whose last `failures` (>= 1) tries failed."""
    ceiling = min(BACKOFF_BASE_S * 2 ** min(max(failures, 1) - 1, 30), BACKOFF_CAP_S,
                  float(retry_s))
    return ceiling / 2 + ceiling / 2 * rng()


def split_expired(entries: list[Entry], floor_ms: int) -> tuple[list[Entry], list[Entry]]:
    """(the entries stored before `floor_ms`, the rest): `entries` are oldest first."""
    cut = 0
    while cut < len(entries) and entries[cut].ms < floor_ms:
        cut += 1
    return entries[:cut], entries[cut:]


def events_in(entries: list[Entry]) -> int:
    return sum(1 for entry in entries if entry.event is not None)


@dataclass
class Part:
    """One outbox's share of a batch: the entries the cursor moves past once it is delivered
    (events and entries that are none), oldest first."""

    taken: Taken
    entries: list[Entry]

    @property
    def events(self) -> list[dict[str, Any]]:
        return [entry.event for entry in self.entries if entry.event is not None]


@dataclass
class Batch:
    capacity: int
    parts: list[Part] = field(default_factory=list)

    def count(self) -> int:
        return sum(len(part.events) for part in self.parts)

    def room_left(self) -> int:
        return self.capacity - self.count()

    def full(self) -> bool:
        return self.room_left() <= 0

    def add(self, taken: Taken, entries: list[Entry]) -> list[Entry]:
        """Add the oldest of `entries` that fit (entries that are no event always do, up to
        the next event that does not); what was added."""
        room, cut = self.room_left(), 0
        while cut < len(entries):
            if entries[cut].event is not None:
                if room == 0:
                    break
                room -= 1
            cut += 1
        added = entries[:cut]
        if added:
            self.parts.append(Part(taken, added))
        return added

    def events(self) -> list[dict[str, Any]]:
        return [event for part in self.parts for event in part.events]

    def body(self) -> bytes:
        """The request's body: `{"events": [...]}`."""
        return codec.dumps({"events": self.events()}).encode()
