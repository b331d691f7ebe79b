"""Draining a node on SIGTERM, so that stopping one loses nothing and strands no one.

On SIGTERM the node
1. stops taking new sessions: /readyz answers 503 and every new Engine.IO handshake gets 503, which
   the front door (`proxy_next_upstream http_503`) passes on to the next node of the hash ring
   (the session gate, gate.py);
2. hands its connections over (handover.py): ends their transports spread over
   HANDOVER_SPREAD_S, each after the event it is handling answered (for at most
   DRAIN_TIMEOUT_S), without an Engine.IO CLOSE packet, so clients see a lost connection,
   reconnect through the front door to another node, with jittered backoff, and resume their
   rooms with `since`; spreading them keeps the other nodes from taking every reconnection in
   the same second;
3. lets the webhook sender finish its batch in flight and stop (the other nodes' senders go
   on; its leases are released, or expire);
4. tells gunicorn to exit once the last request has returned; responses meanwhile carry
   `Connection: close`, and the front door drops idle upstream connections after 2 s, so no
   kept-alive connection holds the exit back.
"""

from __future__ import annotations

import logging
import signal
import time
from typing import Any

from flask import Flask

from .node import Node

log = logging.getLogger("service")


def install(app: Flask, worker: Any) -> None:
    """Make SIGTERM drain this gunicorn worker before it exits (gunicorn's post_worker_init)."""
    import gevent

    node: Node = app.extensions["node"]

    def drain_then_exit() -> None:
        started = time.monotonic()
        try:
            handed_over = node.hand_over()
            log.info("node=%s drained: %d connections handed over in %.2f s", node.name,
                     handed_over, time.monotonic() - started)
        except Exception:
            log.exception("node=%s draining failed; exiting anyway", node.name)
        node.stop_webhooks()
        worker.alive = False

    def on_sigterm(_signum: int, _frame: Any) -> None:
        if not node.draining:
            node.draining = True
            log.info("node=%s got SIGTERM: draining", node.name)
            gevent.spawn(drain_then_exit)

    signal.signal(signal.SIGTERM, on_sigterm)
