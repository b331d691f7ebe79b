"""Sending twice is safe (PROTOCOL.md, Additions): a `send` or `direct` whose ack was lost is sent
again, the same payload with the same client_id, and the service answers the first answer's
`{ok, id, ts}` without storing or delivering anything new.

An ack is lost when it does not come within ACK_TIMEOUT_S, or when the connection drops before it;
the client then gets back to where it can send (a dropped connection: reconnected and in its room
again) and resends, at most RESENDS times. A message acknowledged only on a resend is one message,
acknowledged once; its delivery latency still runs from the first send, whose time its client_id
carries.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import gevent

ACK_TIMEOUT_S = 10.0
RESENDS = 3  # after the first send
RECONNECT_S = 10.0  # how long a resend waits for a dropped connection to be back

# what a lost ack looks like: the answer did not come in time (gevent.Timeout from a wait), or
# the connection was down or dropped before it (ConnectionError)
LOST = (ConnectionError, gevent.Timeout)

T = TypeVar("T")


class Unacknowledged(Exception):
    """The ack was still lost after `resent` resends, or the client could not get back to send."""

    def __init__(self, resent: int, error: BaseException) -> None:
        super().__init__(f"no ack after {resent} resends: {error!r}")
        self.resent = resent
        self.error = error


def until_acknowledged(call: Callable[[], T], recover: Callable[[], bool],
                       resends: int = RESENDS) -> tuple[T, int]:
    """The answer of `call()` and how many resends it took.

    After each lost ack (`call` raised one of LOST), `recover()` gets the client back to where it
    can send (True) or gives up (False); then `call()` again, at most `resends` times. Raises
    Unacknowledged, with the resends made, when no ack came."""
    resent = 0
    while True:
        try:
            return call(), resent
        except LOST as error:
            if resent >= resends or not recover():
                raise Unacknowledged(resent, error) from None
            resent += 1
