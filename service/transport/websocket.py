"""WebSocket output written by the emitting task itself, framed once per broadcast.

In gevent mode python-engineio sends every packet of an upgraded connection through a queue to
a writer task per connection, which frames it with simple-websocket's wsproto machinery: a
queue put, a task switch, a timeout armed and cancelled and a frame built, per recipient of every
broadcast. py-spy put that path at over a third of a node's CPU in a fan-out (README,
performance). Here:

- A packet for a connection whose writer has nothing pending is written by the task that emits it,
  with one non-blocking send of a frame built once per packet: a broadcast's recipients share one
  packet object, so they share one frame. Frames are short unmasked headers and the payload
  (RFC 6455, 5.2); frames sent without compression are valid on a connection that negotiated
  permessage-deflate (RFC 7692, 6).
- If the kernel takes only part of the frame (a slow reader), the rest goes to python-engineio's
  queue and every later packet follows it there until the writer task has caught up, so a slow
  client never blocks the emitting task and packets stay in order.
- Before the upgrade completes, while the queue holds anything and while the writer task is
  writing, packets take python-engineio's queue as before. Handshakes, incoming frames, pings and
  the close handshake stay with simple-websocket.
- A text frame that is not an Engine.IO packet (packet_guard.py) ends that one connection here,
  instead of raising inside python-engineio's handler; so does a message larger than the
  server's max_http_buffer_size (MAX_FRAME_BYTES), before it is buffered whole.
- Liveness stays python-engineio's: a client that leaves a ping unanswered for longer than the
  ping timeout is cut off (see `poll`); idle clients that answer pings stay connected.
"""

from __future__ import annotations

import struct
import time
from typing import Any

from engineio import exceptions as engineio_exceptions
from engineio import packet as eio_packet
from engineio.async_drivers import gevent as gevent_driver
from engineio.socket import Socket as EngineIOSocket

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


def framed(message: str | bytes) -> bytes:
    return frame(message, BINARY) if isinstance(message, bytes) else frame(message.encode(), TEXT)


def message_packet(payload: bytes) -> Any:
    """An Engine.IO MESSAGE packet of a Socket.IO packet (`payload`, e.g. b'2["message",{...}]')
    with its WebSocket frame built now, straight from the bytes: a bus frame's body becomes the
    frame every recipient on this node gets, without encoding it again."""
    pkt = eio_packet.Packet(eio_packet.MESSAGE, payload.decode())
    pkt._frame = frame(b"4" + payload, TEXT)
    return pkt


def packet_frame(pkt: Any) -> bytes:
    """The WebSocket frame of an Engine.IO packet, built once and kept on the packet."""
    data = pkt.__dict__.get("_frame")
    if data is None:
        data = pkt._frame = framed(pkt.encode())
    return data


class Framed(bytes):
    """Bytes that are already WebSocket frames (or a frame's unsent rest): written as they are."""


class QueuedFrame:
    """A python-engineio queue item for bytes already framed (the writer calls `encode()`)."""

    __slots__ = ("data",)

    def __init__(self, data: bytes):
        self.data = data

    def encode(self) -> Framed:
        return Framed(self.data)


class DirectFrameWebSocket(gevent_driver.WebSocketWSGI):
    def __init__(self, handler: Any, server: Any):
        super().__init__(handler, server)
        # simple-websocket buffers a whole message before python-engineio can refuse it as too
        # large; with a limit it closes the connection (1009) as soon as a message outgrows it
        self.server_args["max_message_size"] = server.max_http_buffer_size
        self.writer_busy = False
        self.raw_socket: Any = None  # gevent's non-blocking socket, found at the first packet
        self.eio_socket: Any = getattr(handler, "__self__", None)  # python-engineio's Socket
        if isinstance(self.eio_socket, EngineIOSocket):
            self.eio_socket.send = self.send_packet
            self.eio_socket.poll = self.poll

    def poll(self) -> list[Any]:
        """python-engineio's wait for queued packets; the writer is busy until it polls again.

        Upstream, a writer that waits ping interval + ping timeout without a packet ends the
        connection: pings go through the queue, so silence meant a client that stopped answering
        them. Pings are written directly here, so the writer ends the connection only when a ping
        is actually unanswered for longer than the ping timeout.
        """
        self.writer_busy = False
        eio_socket = self.eio_socket
        while True:
            try:
                packets = EngineIOSocket.poll(eio_socket)
            except engineio_exceptions.QueueEmpty:
                last_ping = eio_socket.last_ping
                unanswered = (last_ping is not None
                              and time.time() - last_ping > eio_socket.server.ping_timeout)
                if eio_socket.closed or unanswered:
                    raise
                continue
            self.writer_busy = bool(packets)
            return packets

    def send_packet(self, pkt: Any) -> None:
        """python-engineio's Socket.send: written now if nothing is ahead of it, else queued."""
        eio_socket = self.eio_socket
        if not eio_socket.check_ping_timeout():
            return
        raw = self.raw_socket
        if raw is None:
            raw = self.raw_socket = getattr(getattr(getattr(self, "ws", None), "sock", None),
                                            "_sock", None)
        if (raw is None or not eio_socket.upgraded or self.writer_busy
                or not eio_socket.queue.empty() or not self.ws.connected):
            eio_socket.queue.put(pkt)
            return
        data = packet_frame(pkt)
        try:
            sent = raw.send(data)
        except OSError:  # full (BlockingIOError) or broken: the writer task sends or fails
            sent = 0
        if sent < len(data):
            eio_socket.queue.put(QueuedFrame(data[sent:]))

    def send(self, message: str | bytes) -> None:
        """The writer task's send (and the upgrade's probe answer): blocks only this task."""
        if not self.ws.connected:
            raise OSError("the WebSocket is closed")
        data = message if isinstance(message, Framed) else framed(message)
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
