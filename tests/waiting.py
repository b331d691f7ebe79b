"""Waiting on a condition, never on a fixed sleep: every test's one way to wait."""

from __future__ import annotations

import time
from collections.abc import Callable


def wait_for(condition: Callable[[], object], timeout: float = 10, what: str = "the condition",
             poll_s: float = 0.05) -> float:
    """Seconds until `condition()` was true; AssertionError naming `what` after `timeout`."""
    started = time.monotonic()
    while not condition():
        assert time.monotonic() - started < timeout, f"timed out after {timeout} s: {what}"
        time.sleep(poll_s)
    return time.monotonic() - started
