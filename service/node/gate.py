"""The session gate: new sessions get 503 while this node cannot serve them.

WSGI middleware, outermost, so a refusal is a plain HTTP 503 before any WebSocket upgrade or
Engine.IO handshake, which the front door (`proxy_next_upstream http_503`) passes on to the next
node of its hash ring. A node refuses new sessions while it drains (SIGTERM), while it cannot
reach Redis, and while it hands its connections over (node.py: `refusal`). Requests of sessions
it already holds (they carry `sid`) pass, and so does everything else: health, metrics, pages.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def is_new_session(environ: dict[str, Any]) -> bool:
    return (environ.get("PATH_INFO", "").startswith("/socket.io")
            and "sid=" not in environ.get("QUERY_STRING", ""))


class SessionGate:
    def __init__(self, app: WSGIApp, refusal: Callable[[], str | None],
                 closing: Callable[[], bool]):
        """`refusal()`: why new sessions are refused now, or None; `closing()`: whether the
        node is going away (responses then end their kept-alive connection)."""
        self.app, self.refusal, self.closing = app, refusal, closing

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]):
        if is_new_session(environ) and (why := self.refusal()) is not None:
            body = json.dumps({"error": {"code": "unavailable", "message": why}}).encode()
            start_response("503 Service Unavailable", [
                ("Content-Type", "application/json"), ("Content-Length", str(len(body))),
                ("Retry-After", "1"), ("Connection", "close")])
            return [body]
        if not self.closing() or environ.get("HTTP_UPGRADE"):
            return self.app(environ, start_response)

        def closing_start_response(status: str, headers: list[tuple[str, str]], *exc_info: Any):
            # the front door's kept-alive connections to this node end after this response
            return start_response(status, [*headers, ("Connection", "close")], *exc_info)

        return self.app(environ, closing_start_response)
