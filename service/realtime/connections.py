"""The Socket.IO connections this node holds: who each is, when its credentials expire, and
whether it is handling an event right now.

Guarantees
- A connection is known from its admission (after authentication) until it is released
  (disconnect).
- One expiry entry per connection, never shortened: a refreshed token moves it later. When it
  comes due unrefreshed, `expire_due` has the connection told (`expired`) and ended, each once.
- `busy(sid)` is true while one of the connection's events is being handled (a node handing its
  connections over ends a busy one only after its answer).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from .connection import Connection
from .expiry import Expiries

log = logging.getLogger("service")
EXPIRY_CHECK_S = 0.5
EXPIRED_REASON = "token expired: refresh it (the refresh event) before it expires"


class Connections:
    def __init__(self) -> None:
        self._by_sid: dict[str, Connection] = {}
        self._expiries = Expiries()
        self._handling: dict[str, int] = {}  # sid -> events being handled now

    def admit(self, sid: str, connection: Connection) -> None:
        self._by_sid[sid] = connection
        if connection.expires_at is not None:
            self._expiries.watch(sid, connection.expires_at)

    def get(self, sid: str) -> Connection | None:
        return self._by_sid.get(sid)

    def release(self, sid: str) -> Connection | None:
        """This node no longer serves `sid`; the connection it was, if any."""
        self._expiries.forget(sid)
        self._handling.pop(sid, None)
        return self._by_sid.pop(sid, None)

    def extend(self, sid: str, connection: Connection, expires_at: float) -> None:
        """A refreshed token: the connection lasts until the later of its two expiries."""
        if connection.expires_at is not None and expires_at > connection.expires_at:
            connection.expires_at = expires_at
            self._expiries.watch(sid, expires_at)

    def expiring(self) -> int:
        """How many connections have an expiry pending."""
        return len(self._expiries)

    def sids(self) -> list[str]:
        return list(self._by_sid)

    def __len__(self) -> int:
        return len(self._by_sid)

    # ---- events being handled -------------------------------------------------------------------

    @contextmanager
    def handling(self, sid: str) -> Iterator[None]:
        """Mark one of `sid`'s events as being handled while the block runs."""
        self._handling[sid] = self._handling.get(sid, 0) + 1
        try:
            yield
        finally:
            left = self._handling.get(sid, 1) - 1
            if left > 0:
                self._handling[sid] = left
            else:
                self._handling.pop(sid, None)

    def busy(self, sid: str) -> bool:
        return self._handling.get(sid, 0) > 0

    # ---- expiry ---------------------------------------------------------------------------------

    def expire_due(self, now: float, end: Callable[[str, str], None]) -> int:
        """`end(sid, reason)` each connection whose credentials expired unrefreshed; how many."""
        ended = 0
        for sid in self._expiries.due(now):
            try:
                end(sid, EXPIRED_REASON)
                ended += 1
            except Exception:
                log.exception("could not end expired connection %s", sid)
        return ended

    def expire_forever(self, end: Callable[[str, str], None], closed: Callable[[], bool],
                       node_name: str) -> None:
        while not closed():
            try:
                if ended := self.expire_due(time.time(), end):
                    log.info("node=%s ended %d connections whose token expired", node_name, ended)
            except Exception:
                log.exception("node=%s could not end expired connections", node_name)
            time.sleep(EXPIRY_CHECK_S)
