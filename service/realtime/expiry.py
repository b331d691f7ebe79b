"""When connections' credentials expire: a heap of deadlines, soonest first."""

from __future__ import annotations

import heapq


class Expiries:
    """Deadlines of connections (`sid`), soonest first. A refreshed connection is watched again
    with its new deadline; the old entry comes due harmlessly (the caller checks the
    connection's current deadline)."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, str]] = []

    def watch(self, sid: str, expires_at: float) -> None:
        heapq.heappush(self._heap, (expires_at, sid))

    def due(self, now: float) -> list[str]:
        """The connections whose watched deadline is `now` or earlier (each taken once)."""
        sids = []
        while self._heap and self._heap[0][0] <= now:
            sids.append(heapq.heappop(self._heap)[1])
        return sids

    def __len__(self) -> int:
        return len(self._heap)
