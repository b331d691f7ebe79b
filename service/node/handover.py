"""Handing a node's connections over to the other nodes, a few at a time.

Ending a connection's transport (without an Engine.IO CLOSE packet, which clients take as "do not
come back") makes its client reconnect through the front door, which sends it to another node,
where it resumes its rooms with `since`. Ending every connection at once makes all of them
reconnect in the same second, a storm of handshakes, joins and resumes at the nodes that stay;
ending them over `spread_s` seconds brings them at an even rate instead (and each client adds its
own jittered backoff).

Guarantees
- Every connection open when the handover starts is ended within about `spread_s` plus
  `busy_wait_s`, once; a connection whose event is being handled is ended after it answered (for
  at most `busy_wait_s`), so the acks in flight arrive.
- Connections still open at the end (opened meanwhile, or sessions that never became Socket.IO
  connections) are ended then too; the caller's session gate keeps new ones away.
- `keep_going()` turning False stops the handover where it is (Redis came back).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

from ..transport.compat import end_transport_of, end_transports

TICK_S = 0.1


def hand_over(server: Any, sids: list[str], *, spread_s: float, busy_wait_s: float,
              busy: Callable[[str], bool], sleep: Callable[[float], None],
              keep_going: Callable[[], bool] = lambda: True,
              monotonic: Callable[[], float] = time.monotonic) -> int:
    """End the transports of connections `sids` (then of every other session) over `spread_s`;
    how many were ended."""
    started = monotonic()
    waiting = list(sids)
    per_tick = max(1, math.ceil(len(waiting) * TICK_S / spread_s)) if spread_s > 0 else len(
        waiting) or 1
    ended = 0
    while waiting and keep_going():
        overdue = monotonic() - started > spread_s + busy_wait_s
        batch: list[str] = []
        later: list[str] = []
        for sid in waiting:
            if overdue or (len(batch) < per_tick and not busy(sid)):
                batch.append(sid)
            else:
                later.append(sid)
        for sid in batch:
            ended += end_transport_of(server, sid)
        waiting = later
        if waiting:
            sleep(TICK_S)
    if keep_going():
        ended += end_transports(server)
    return ended
