"""Draining a node on SIGTERM, so that stopping one loses nothing and strands no one.

On SIGTERM the node
1. stops taking new sessions: /readyz answers 503 and every new Engine.IO handshake gets 503, which
   the front door (`proxy_next_upstream http_503`) passes on to the next node of the hash ring;
2. lets the Socket.IO events in flight finish, so every `send` being handled gets its ack, for at
   most DRAIN_TIMEOUT_S;
3. ends every connection's transport (without an Engine.IO CLOSE packet, which clients take as a
   final goodbye), so clients see a lost connection: they reconnect through the front door to
   another node and resume their rooms with `since`;
4. tells gunicorn to exit once the last request has returned; responses meanwhile carry
   `Connection: close`, and the front door drops idle upstream connections after 2 s, so no
   kept-alive connection holds the exit back.
"""

from __future__ import annotations

import json
import logging
import signal
import time
from collections.abc import Callable, Iterable
from typing import Any

from flask import Flask

from ..transport.compat import end_transports
from .node import Node

log = logging.getLogger("service")
WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class DrainGate:
    """WSGI middleware: while draining, new Engine.IO handshakes get 503 (sessions carry `sid`)."""

    def __init__(self, app: WSGIApp, node: Node):
        self.app, self.node = app, node

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]):
        if not self.node.draining:
            return self.app(environ, start_response)
        if (environ.get("PATH_INFO", "").startswith("/socket.io")
                and "sid=" not in environ.get("QUERY_STRING", "")):
            body = json.dumps({"error": {"code": "unavailable", "message":
                                         "this node is shutting down; connect again"}}).encode()
            start_response("503 Service Unavailable", [
                ("Content-Type", "application/json"), ("Content-Length", str(len(body))),
                ("Retry-After", "1"), ("Connection", "close")])
            return [body]
        if environ.get("HTTP_UPGRADE"):
            return self.app(environ, start_response)

        def closing_start_response(status: str, headers: list[tuple[str, str]], *exc_info: Any):
            # the front door's kept-alive connections to this node end after this response
            return start_response(status, [*headers, ("Connection", "close")], *exc_info)

        return self.app(environ, closing_start_response)


def drain(node: Node, server: Any, sleep: Callable[[float], None]) -> int:
    """Steps 1-3; returns how many connections were handed over."""
    node.draining = True
    deadline = time.monotonic() + node.settings.drain_timeout_s
    while node.in_flight and time.monotonic() < deadline:
        sleep(0.02)
    return end_transports(server)


def install(app: Flask, worker: Any) -> None:
    """Make SIGTERM drain this gunicorn worker before it exits (gunicorn's post_worker_init)."""
    import gevent

    node: Node = app.extensions["node"]
    server = app.extensions["socketio"].server

    def drain_then_exit() -> None:
        started = time.monotonic()
        try:
            handed_over = drain(node, server, gevent.sleep)
            log.info("node=%s drained: %d connections handed over in %.2f s", node.name,
                     handed_over, time.monotonic() - started)
        except Exception:
            log.exception("node=%s draining failed; exiting anyway", node.name)
        worker.alive = False

    def on_sigterm(_signum: int, _frame: Any) -> None:
        if not node.draining:
            node.draining = True
            log.info("node=%s got SIGTERM: draining", node.name)
            gevent.spawn(drain_then_exit)

    signal.signal(signal.SIGTERM, on_sigterm)


def init_app(app: Flask, node: Node) -> None:
    gate = DrainGate(app.wsgi_app, node)
    app.wsgi_app = gate  # type: ignore[method-assign]  # Flask's documented middleware wrapping
