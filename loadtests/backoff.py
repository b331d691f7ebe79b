"""Jittered exponential backoff for the load-test clients that reconnect by themselves.

The n-th wait (n = 0, 1, ...) is drawn from 50-150% of min(cap, base * 2^n): the same shape as
Socket.IO's clients (python-socketio's `randomization_factor` 0.5), so that thousands of clients
that lost their connections together (a node drained, the network dropped) do not all come back in
the same instant, and a client that keeps failing asks less and less often.
"""

from __future__ import annotations

import random
from collections.abc import Iterator

BASE_S = 0.25
CAP_S = 5.0


def delays(base_s: float = BASE_S, cap_s: float = CAP_S) -> Iterator[float]:
    """The waits before each next attempt, for ever."""
    attempt = 0
    while True:
        yield min(cap_s, base_s * 2 ** attempt) * random.uniform(0.5, 1.5)
        attempt += 1
