"""How load-test users space their sends."""

from __future__ import annotations

import random
import time


def steady_rate(per_second: float):
    """A wait_time that sends on a fixed grid from a random phase, skipping missed slots.

    Locust's constant_pacing counts each interval from the previous task's start, so any pause of
    the load generator bunches users together for good, and after a few pauses they all send in
    the same millisecond: the run then measures one synchronised burst per period instead of
    independent users."""
    period = 1 / per_second

    def wait(user) -> float:
        now = time.monotonic()
        if not hasattr(user, "next_send_at"):
            user.next_send_at = now + random.uniform(0, period)
        else:
            user.next_send_at += period
            if user.next_send_at < now:
                user.next_send_at += (now - user.next_send_at) // period * period + period
        return max(0.0, user.next_send_at - now)

    return wait
