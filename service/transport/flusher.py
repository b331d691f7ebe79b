"""The end of a turn of the event loop, when every connection sends what it buffered in that turn.

A broadcast to a room appends the same frame to each member's buffer; the flusher then sends each
buffer with one system call. One callback per turn serves the whole node, however many
connections wrote in it, so a busy room costs one send per member per turn and nothing per frame.
"""

from __future__ import annotations

import logging
from typing import Protocol

log = logging.getLogger("service.transport")


class Buffered(Protocol):
    def flush(self) -> None:
        """Send what is buffered, without blocking."""


class Flusher:
    def __init__(self) -> None:
        self._dirty: list[Buffered] = []

    def mark(self, connection: Buffered) -> None:
        """Flush `connection` at the end of this turn (the caller marks each connection once
        per turn)."""
        if not self._dirty:
            from gevent import get_hub

            get_hub().loop.run_callback(self.flush_all)
        self._dirty.append(connection)

    def flush_all(self) -> None:
        dirty, self._dirty = self._dirty, []
        for connection in dirty:
            try:
                connection.flush()
            except Exception:
                log.exception("flushing a connection failed; the others go on")
