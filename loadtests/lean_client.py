"""A lean Socket.IO client for capacity probes: thousands of connections in one gevent process.

python-socketio's client spends threads, queues and a full Engine.IO stack on every connection;
a probe that must hold ten thousand idle connections or receive a room's every broadcast needs
less. This speaks exactly what the probes use of PROTOCOL.md over a WebSocket only (Socket.IO v5,
Engine.IO v4): connect with a token, `welcome`, `join` and `send` with acknowledgements, `message`
events; it answers the server's pings. Not a general client: no long-polling, no binary packets;
the one reconnection is LeanSender's, after a lost ack, with jittered exponential backoff
(backoff.py).
"""

from __future__ import annotations

import base64
import itertools
import os
import struct
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import gevent
import orjson
from gevent import socket
from gevent.event import AsyncResult
from gevent.lock import Semaphore

from loadtests import backoff
from loadtests.resend import ACK_TIMEOUT_S, RECONNECT_S, Unacknowledged, until_acknowledged

OPEN, CLOSE, PING, PONG, MESSAGE = "0", "1", "2", "3", "4"
CONNECT, EVENT, ACK, CONNECT_ERROR = "0", "2", "3", "4"


class ConnectRefused(Exception):
    """The server refused the Socket.IO connection (its `connect_error` message)."""


def _mask(payload: bytes) -> bytes:
    key = os.urandom(4)
    length = len(payload)
    repeated = (key * (length // 4 + 1))[:length]
    masked = (int.from_bytes(payload, "big") ^ int.from_bytes(repeated, "big")).to_bytes(
        length, "big")
    return key + masked


def client_frame(text: str) -> bytes:
    payload = text.encode()
    length = len(payload)
    if length < 126:
        header = bytes((0x81, 0x80 | length))
    elif length < 1 << 16:
        header = struct.pack("!BBH", 0x81, 0x80 | 126, length)
    else:
        header = struct.pack("!BBQ", 0x81, 0x80 | 127, length)
    return header + _mask(payload)


class LeanClient:
    def __init__(self, url: str, token: str, node_key: str | None = None,
                 on_message: Callable[[dict[str, Any], float], None] | None = None,
                 source_address: str | None = None):
        self.url, self.token, self.node_key = url, token, node_key
        self.source_address = source_address  # e.g. 127.0.0.2: more than one port range's worth
        self.on_message = on_message
        self.node: str | None = None
        self.sock: socket.socket | None = None
        self._buffer = b""
        self._acks: dict[int, AsyncResult] = {}
        self._ack_ids = itertools.count()
        self._reader: gevent.Greenlet | None = None
        self._writing = Semaphore()  # the reader's pongs and the caller's events share the socket
        self.closed = False
        self.error: BaseException | None = None  # why the connection ended, if it did

    # ---- connection ----------------------------------------------------------------------

    def connect(self, timeout: float = 30) -> None:
        """WebSocket handshake, Engine.IO open, Socket.IO connect with the token, `welcome`."""
        parts = urlsplit(self.url)
        query = "EIO=4&transport=websocket" + (f"&node_key={self.node_key}"
                                               if self.node_key else "")
        with gevent.Timeout(timeout):
            self.sock = socket.create_connection(
                (parts.hostname, parts.port or 80),
                source_address=(self.source_address, 0) if self.source_address else None)
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            key = base64.b64encode(os.urandom(16)).decode()
            self.sock.sendall((f"GET /socket.io/?{query} HTTP/1.1\r\n"
                               f"Host: {parts.netloc}\r\nUpgrade: websocket\r\n"
                               f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                               "Sec-WebSocket-Version: 13\r\n\r\n").encode())
            head = self._read_until(b"\r\n\r\n")
            if not head.startswith(b"HTTP/1.1 101"):
                raise ConnectRefused(head.split(b"\r\n", 1)[0].decode(errors="replace"))
            if not self._read_packet().startswith(OPEN):
                raise ConnectRefused("no Engine.IO open packet")
            self.send_text(MESSAGE + CONNECT + orjson.dumps({"token": self.token}).decode())
            while True:
                packet = self._read_packet()
                if packet.startswith(MESSAGE + CONNECT_ERROR):
                    raise ConnectRefused(packet[2:])
                if packet.startswith(MESSAGE + EVENT):
                    name, data = orjson.loads(packet[2:])
                    if name == "welcome":
                        self.node = data["node"]
                        break
                elif packet == PING:
                    self.send_text(PONG)
        self._reader = gevent.spawn(self._read_forever)

    def close(self) -> None:
        self.closed = True
        if self.sock is not None:
            self.sock.close()
        if self._reader is not None:
            self._reader.kill(block=False)

    # ---- events --------------------------------------------------------------------------

    def call(self, event: str, data: dict[str, Any], timeout: float = 30) -> Any:
        """Emit `event` and return its acknowledgement's answer."""
        if self.closed:
            raise ConnectionError(f"the connection is closed ({self.error!r})")
        ack_id = next(self._ack_ids)
        result = self._acks[ack_id] = AsyncResult()
        self.send_text(f"{MESSAGE}{EVENT}{ack_id}" + orjson.dumps([event, data]).decode())
        try:
            return result.get(timeout=timeout)
        finally:
            self._acks.pop(ack_id, None)

    def send_text(self, text: str) -> None:
        with self._writing:
            self.sock.sendall(client_frame(text))

    # ---- reading -------------------------------------------------------------------------

    def _read_forever(self) -> None:
        try:
            while not self.closed:
                self._dispatch(self._read_packet())
        except gevent.GreenletExit:
            pass
        except Exception as exc:  # whatever ends the reading ends the connection, with its reason
            self.error = exc
        finally:
            self.closed = True
            for result in self._acks.values():
                result.set_exception(ConnectionError(f"the connection ended ({self.error!r})"))

    def _dispatch(self, packet: str) -> None:
        if packet == PING:
            self.send_text(PONG)
        elif packet.startswith(MESSAGE + EVENT):
            received = time.time()
            name, data = orjson.loads(packet[2:])
            if name == "message" and self.on_message is not None:
                self.on_message(data, received)
        elif packet.startswith(MESSAGE + ACK):
            body = packet[2:]
            digits = len(body) - len(body.lstrip("0123456789"))
            result = self._acks.get(int(body[:digits]))
            if result is not None:
                result.set(orjson.loads(body[digits:])[0])
        elif packet == CLOSE:
            raise ConnectionError("the server closed the session")

    def _read_until(self, marker: bytes) -> bytes:
        while marker not in self._buffer:
            self._fill()
        head, _, self._buffer = self._buffer.partition(marker)
        return head

    def _take(self, count: int) -> bytes:
        while len(self._buffer) < count:
            self._fill()
        data, self._buffer = self._buffer[:count], self._buffer[count:]
        return data

    def _fill(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("the server closed the connection")
        self._buffer += chunk

    def _read_packet(self) -> str:
        """The next text frame's payload (control frames answered or ended on)."""
        while True:
            first, second = self._take(2)
            length = second & 0x7F
            if length == 126:
                length = struct.unpack("!H", self._take(2))[0]
            elif length == 127:
                length = struct.unpack("!Q", self._take(8))[0]
            payload = self._take(length)
            opcode = first & 0x0F
            if opcode == 0x1:
                return payload.decode()
            if opcode == 0x8:
                raise ConnectionError("the server closed the WebSocket")
            if opcode == 0x9:  # a WebSocket ping: answer with a masked pong
                with self._writing:
                    self.sock.sendall(bytes((0x8A, 0x80 | len(payload))) + _mask(payload))


class LeanSender:
    """A LeanClient that sends to one room. A send whose ack is lost (ACK_TIMEOUT_S, or the
    connection dropped first) is sent again with the same client_id (resend.py), on a new
    connection in the room when its own dropped; `retries` counts those resends."""

    def __init__(self, connect: Callable[[], LeanClient], room: str) -> None:
        self._connect, self.room = connect, room  # `connect`: a new, unconnected LeanClient
        self.retries = 0
        self.client = self._joined()

    @property
    def node(self) -> str | None:
        return self.client.node

    def _joined(self) -> LeanClient:
        client = self._connect()
        try:
            client.connect(timeout=RECONNECT_S)
            answer = client.call("join", {"room": self.room}, timeout=ACK_TIMEOUT_S)
            if not answer.get("ok"):
                raise ConnectRefused(f"join refused: {answer}")
        except BaseException:
            client.close()
            raise
        return client

    def send(self, payload: dict[str, Any]) -> dict[str, Any]:
        """The answer to `payload` (its room, text and client_id), sent again while its ack is
        lost; Unacknowledged when no ack came after the resends."""
        try:
            answer, resent = until_acknowledged(
                lambda: self.client.call("send", payload, timeout=ACK_TIMEOUT_S), self.recover)
        except Unacknowledged as lost:
            self.retries += lost.resent
            raise
        self.retries += resent
        return answer

    def close(self) -> None:
        self.client.close()

    def recover(self) -> bool:
        """Ready to send again: still connected (the ack only timed out), or connected anew and in
        the room within RECONNECT_S."""
        if not self.client.closed:
            return True
        self.client.close()
        deadline = time.monotonic() + RECONNECT_S
        waits = backoff.delays()
        while True:
            try:
                self.client = self._joined()
                return True
            except (Exception, gevent.Timeout):  # refused, reset or timed out: again, for a while
                if time.monotonic() >= deadline:
                    return False
                gevent.sleep(min(next(waits), max(0.0, deadline - time.monotonic())))
