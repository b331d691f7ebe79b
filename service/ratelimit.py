"""Per-connection token bucket: refuses events over the rate, tells when to cut a flooder off."""

from __future__ import annotations

import time


class TokenBucket:
    __slots__ = ("burst", "rate", "refused_in_a_row", "tokens", "updated")

    def __init__(self, rate: float, burst: int):
        self.rate = rate
        self.burst = burst
        self.tokens = float(burst)
        self.updated = time.monotonic()
        self.refused_in_a_row = 0

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens >= 1:
            self.tokens -= 1
            self.refused_in_a_row = 0
            return True
        self.refused_in_a_row += 1
        return False

    @property
    def flooding(self) -> bool:
        """True once a client kept sending a whole burst's worth after being refused."""
        return self.refused_in_a_row > self.burst
