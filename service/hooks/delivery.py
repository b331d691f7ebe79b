"""One signed POST to the app's backend, over a pool of kept-alive connections (one per node).

Guarantees
- The body is signed (signing.py) with HOOK_SECRET; the request is never redirected (a 3xx is an
  answer like any other non-2xx) and never retried here (the caller decides when to try again).
  `User-Agent: rooms-webhooks (<node>)` names the node that sent it.
- It ends within `timeout_s` (+ 1 s where the node runs on gevent or eventlet, whose timeouts
  bound the whole request): urllib3's own timeouts bound connecting and each read, and a
  receiver that trickles its answer is cut off by the whole-request deadline.
- The outcome is one of DELIVERED (2xx), REJECTED (another status), TIMEOUT, UNREACHABLE (no
  connection, or it broke); the URL and the secret never appear in what it returns or logs.
"""

from __future__ import annotations

import contextlib
import sys
import time
from typing import Any, NamedTuple

import urllib3

from . import signing

DELIVERED, REJECTED, TIMEOUT, UNREACHABLE = "delivered", "rejected", "timeout", "unreachable"
OUTCOMES = (DELIVERED, REJECTED, TIMEOUT, UNREACHABLE)
ANSWER_READ_MAX = 64 * 1024  # of an answer's body, read and ignored


class DeadlinePassed(TimeoutError):
    """The whole request took longer than its deadline."""


class Answer(NamedTuple):
    outcome: str
    status: int | None  # the HTTP status, when one came
    seconds: float


def deadline(seconds: float) -> Any:
    """A context that raises DeadlinePassed in the running task after `seconds`, where the node
    runs on gevent or eventlet (their timeouts interrupt blocking I/O); elsewhere, nothing."""
    if "eventlet" in sys.modules:
        from eventlet.patcher import is_monkey_patched

        if is_monkey_patched("socket"):
            import eventlet

            return eventlet.Timeout(seconds, DeadlinePassed)
    with contextlib.suppress(ImportError):
        from gevent.monkey import is_module_patched

        if is_module_patched("socket"):
            import gevent

            return gevent.Timeout(seconds, DeadlinePassed)
    return contextlib.nullcontext()


class Poster:
    def __init__(self, url: str, secret: str, timeout_s: float, node: str = "",
                 pool_size: int = 2):
        self.url = url
        self.secret = secret
        self.timeout_s = timeout_s
        self.user_agent = f"rooms-webhooks ({node})" if node else "rooms-webhooks"
        self.pool = urllib3.PoolManager(num_pools=2, maxsize=pool_size, retries=False,
                                        timeout=urllib3.Timeout(connect=timeout_s,
                                                                read=timeout_s))

    def post(self, body: bytes) -> Answer:
        """POST `body` (JSON) signed; the outcome (see the module's guarantees)."""
        monotonic = time.monotonic
        started = monotonic()
        headers = {**signing.headers(self.secret, body), "User-Agent": self.user_agent}
        try:
            with deadline(self.timeout_s + 1):
                response = self.pool.request("POST", self.url, body=body, headers=headers,
                                             redirect=False, retries=False,
                                             preload_content=False)
                try:
                    response.read(ANSWER_READ_MAX, decode_content=False)
                    response.drain_conn()
                finally:
                    response.release_conn()
        except urllib3.exceptions.NewConnectionError:  # a subclass of the timeouts: first
            return Answer(UNREACHABLE, None, monotonic() - started)
        except (DeadlinePassed, urllib3.exceptions.TimeoutError):
            return Answer(TIMEOUT, None, monotonic() - started)
        except (urllib3.exceptions.HTTPError, OSError):
            return Answer(UNREACHABLE, None, monotonic() - started)
        outcome = DELIVERED if 200 <= response.status < 300 else REJECTED
        return Answer(outcome, response.status, monotonic() - started)

    def close(self) -> None:
        self.pool.clear()
