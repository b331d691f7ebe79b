"""WebSocket data frames written straight to the socket, and junk frames refused quietly.

In gevent mode python-engineio sends every packet through simple-websocket, which builds each
frame with wsproto's event machinery: about a fifth of a node's CPU in a fan-out (py-spy, see
README, performance). A server's data frame is only a short unmasked header and the payload
(RFC 6455, 5.2), so `send` writes it directly. The handshake, incoming frames, pings and the
close handshake stay with simple-websocket. Frames sent without compression are valid on a
connection that negotiated permessage-deflate (RFC 7692, 6).

A text frame that is not an Engine.IO packet (packet_guard.py) ends that one connection here,
instead of raising inside python-engineio's handler.
"""

from __future__ import annotations

import struct
from typing import Any

from engineio.async_drivers import gevent as gevent_driver

from .packet_guard import acceptable

TEXT, BINARY = 0x1, 0x2
FINAL = 0x80


def frame(payload: bytes, opcode: int) -> bytes:
    length = len(payload)
    if length < 126:
        return bytes((FINAL | opcode, length)) + payload
    if length < 1 << 16:
        return struct.pack("!BBH", FINAL | opcode, 126, length) + payload
    return struct.pack("!BBQ", FINAL | opcode, 127, length) + payload


class DirectFrameWebSocket(gevent_driver.WebSocketWSGI):  # type: ignore[misc, name-defined]
    def send(self, message: str | bytes) -> None:
        if not self.ws.connected:
            raise OSError("the WebSocket is closed")
        data = frame(message, BINARY) if isinstance(message, bytes) else frame(
            message.encode(), TEXT)
        sock = self.ws.sock
        sent = sock.send(data)  # gevent's sendall asks the kernel for SO_SNDBUF on every call
        if sent < len(data):
            sock.sendall(data[sent:])

    def wait(self) -> str | bytes | None:
        message = super().wait()
        if isinstance(message, str) and not acceptable(message):
            self.close()
            return None
        return message


def install(server: Any) -> bool:
    """Use direct frames for this Socket.IO server's WebSockets (gevent with simple-websocket)."""
    eio = server.eio
    if eio.async_mode != "gevent" or getattr(gevent_driver, "SimpleWebSocketWSGI", None) is None:
        return False
    eio._async = {**eio._async, "websocket": DirectFrameWebSocket}
    return True
