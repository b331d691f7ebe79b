"""When connections' credentials expire: one deadline per connection, soonest first."""

from __future__ import annotations

import heapq


class Expiries:
    """Each connection's (`sid`) deadline. The heap holds at most one entry per connection: a
    deadline moved later is pushed again only when its old entry comes due, and a connection
    that is gone is dropped then."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, str]] = []
        self._deadlines: dict[str, float] = {}

    def watch(self, sid: str, expires_at: float) -> None:
        """Expire `sid` at `expires_at`, or later if it was already due later."""
        known = self._deadlines.get(sid)
        if known is None:
            self._deadlines[sid] = expires_at
            heapq.heappush(self._heap, (expires_at, sid))
        elif expires_at > known:
            self._deadlines[sid] = expires_at

    def forget(self, sid: str) -> None:
        self._deadlines.pop(sid, None)

    def due(self, now: float) -> list[str]:
        """The connections whose deadline is `now` or earlier, each once; they are forgotten."""
        sids = []
        while self._heap and self._heap[0][0] <= now:
            at, sid = heapq.heappop(self._heap)
            deadline = self._deadlines.get(sid)
            if deadline is None:
                continue  # gone
            if deadline > at:
                heapq.heappush(self._heap, (deadline, sid))  # refreshed since
                continue
            del self._deadlines[sid]
            sids.append(sid)
        return sids

    def __len__(self) -> int:
        return len(self._deadlines)
