"""Giving a burst's memory back to the system.

A burst of connections (a reconnect storm, a deploy) runs many events at once, each in a task of
its own whose stack gevent copies to the heap while it waits on Redis; when the burst is over the
tasks are gone but glibc's allocator keeps the freed pages, so the node's resident memory stays at
the burst's peak while its idle connections need a fraction of it. After a burst (at least
BURST_TASKS tasks at once, then none for a tick) the node asks the allocator to return free pages
(`malloc_trim(0)`: a few milliseconds for a heap of a few hundred megabytes, once per burst).
Where the C library has no `malloc_trim` (musl) nothing is trimmed, and the node says so once.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
from collections.abc import Callable

BURST_TASKS = 64
log = logging.getLogger("service.transport")


def malloc_trim() -> Callable[[], object] | None:
    """glibc's malloc_trim(0), or None where the C library has none."""
    name = ctypes.util.find_library("c")
    try:
        library = ctypes.CDLL(name)
        trim = library.malloc_trim
    except (OSError, AttributeError, TypeError):
        return None
    trim.argtypes = [ctypes.c_size_t]
    return lambda: trim(0)


class BurstTrimmer:
    """Told how many tasks run at each tick; trims once after each burst."""

    def __init__(self, trim: Callable[[], object] | None = None, burst_tasks: int = BURST_TASKS):
        self.trim = trim if trim is not None else malloc_trim()
        self.burst_tasks = burst_tasks
        self.busiest = 0  # the most tasks at once since the last trim
        self.trims = 0
        if self.trim is None:
            log.info("this C library has no malloc_trim: memory freed after a burst of "
                     "connections stays with the node until it is reused")

    def saw(self, tasks: int) -> None:
        if tasks > self.busiest:
            self.busiest = tasks

    def tick(self, tasks: int) -> bool:
        """Trim if a burst just ended; whether it did."""
        if tasks or self.busiest < self.burst_tasks or self.trim is None:
            return False
        self.busiest = 0
        self.trim()
        self.trims += 1
        return True
