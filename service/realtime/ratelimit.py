"""Per-connection token bucket: refuses events over the rate, tells when to cut a flooder off."""

from __future__ import annotations

import time

FLOOD_WINDOW_S = 10.0


class TokenBucket:
    __slots__ = ("burst", "rate", "refused", "refused_since", "tokens", "updated")

    def __init__(self, rate: float, burst: int):
        self.rate = rate
        self.burst = burst
        self.tokens = float(burst)
        self.updated = time.monotonic()
        self.refused = 0
        self.refused_since = self.updated

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        if now - self.refused_since > FLOOD_WINDOW_S:
            self.refused, self.refused_since = 0, now
        self.refused += 1
        return False

    @property
    def flooding(self) -> bool:
        """True once more than a burst's worth of events was refused within the flood window."""
        return self.refused > self.burst and time.monotonic() - self.refused_since <= FLOOD_WINDOW_S
