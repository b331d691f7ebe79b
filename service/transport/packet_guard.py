"""A cheap shape check of incoming Engine.IO packets, before python-engineio decodes them.

python-engineio logs a traceback for every packet it cannot decode (and a deeply nested JSON
payload even raises RecursionError out of its WebSocket handler), so a hostile client could fill
the logs. Every packet this service accepts is an Engine.IO packet type digit, and a message
packet carries a Socket.IO packet, which starts with a digit too; anything else is refused here:
a WebSocket frame ends its connection (transport/websocket.py), a polling body gets 400.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterable
from typing import Any

SEPARATOR = "\x1e"  # between the packets of one polling body (Engine.IO v4)
ENGINEIO_TYPES = "0123456"
MESSAGE = "4"


def acceptable(packet: str) -> bool:
    if not packet or packet[0] not in ENGINEIO_TYPES:
        return False
    if packet[0] == MESSAGE:
        return packet[1:2].isdigit() or packet[1:2] == "b"  # a Socket.IO packet, or base64 binary
    return True


class PollingBodyGuard:
    """WSGI middleware: a long-polling POST whose body is not Engine.IO packets gets 400."""

    def __init__(self, app: Callable[..., Iterable[bytes]], max_bytes: int):
        self.app, self.max_bytes = app, max_bytes

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]):
        if (environ.get("REQUEST_METHOD") != "POST"
                or not environ.get("PATH_INFO", "").startswith("/socket.io")):
            return self.app(environ, start_response)
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = -1
        if 0 <= length <= self.max_bytes:
            body = environ["wsgi.input"].read(length)
            environ["wsgi.input"] = io.BytesIO(body)
            try:
                if all(acceptable(part) for part in body.decode("utf-8").split(SEPARATOR)):
                    return self.app(environ, start_response)
            except UnicodeDecodeError:
                pass
        elif length > self.max_bytes:
            return self.app(environ, start_response)  # python-engineio answers 413 itself
        answer = json.dumps({"error": {"code": "bad_request",
                                       "message": "not Engine.IO packets"}}).encode()
        start_response("400 Bad Request", [("Content-Type", "application/json"),
                                           ("Content-Length", str(len(answer)))])
        return [answer]
