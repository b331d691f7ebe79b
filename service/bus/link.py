"""One pub/sub connection of a node to one Redis master, holding its shard-channel subscriptions.

A writer task sends what callers queued, all of it in one write: subscribe and unsubscribe calls
made in the same turn of the event loop go out together, one SSUBSCRIBE or SUNSUBSCRIBE per
channel (a Redis Cluster refuses channels of different slots in one command). A reader task
parses replies with hiredis and reports to the bus, in the order Redis sent them:

- `smessage`: a frame published on a subscribed channel;
- a confirmation, matched to the command that asked for it (replies come in command order);
- an error reply for a command (MOVED after a slot moved, for one): the channel is refused;
- `sunsubscribe` that nobody asked for: Redis dropped the channel (its slot moved away).

The connection is opened by the writer task, never by the caller, so a Redis that does not
answer holds up no one but the link. Anything that ends the connection (Redis gone, CLIENT KILL,
a protocol error, a connect that fails) reports the link lost, once; the bus then subscribes
every channel again on a new link. The connection has no read timeout: a quiet channel is not a
failure (TCP keepalive finds a dead peer). But a command that waits for its reply while nothing
at all comes back for REPLY_TIMEOUT_S ends the link: a path to Redis that swallows what is sent
(a cut network, a stalled proxy) would otherwise leave subscriptions unconfirmed for ever.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any, Protocol

import hiredis
import redis

from ..store.topology import Address, Topology
from ..transport.compat import raw_socket

READ_BYTES = 65536
REPLY_TIMEOUT_S = 4.0
CHECK_EVERY_S = 1.0
log = logging.getLogger("service.bus")


class LinkListener(Protocol):
    def on_frame(self, channel: bytes, payload: bytes) -> None: ...
    def on_subscribed(self, link: Link, channel: str) -> None: ...
    def on_unsubscribed(self, link: Link, channel: str) -> None: ...
    def on_refused(self, link: Link, channel: str, error: str) -> None: ...
    def on_dropped(self, link: Link, channel: str) -> None: ...
    def on_link_lost(self, link: Link, error: BaseException) -> None: ...


class Link:
    def __init__(self, topology: Topology, address: Address, listener: LinkListener,
                 spawn: Callable[..., Any]):
        self.topology = topology
        self.address = address
        self.listener = listener
        self.spawn = spawn
        self.connection: redis.Connection | None = None
        self.sock: Any = None
        self.reader = hiredis.Reader()
        # (command, channel) awaiting a reply, and when it was sent
        self.sent: deque[tuple[bytes, str, float]] = deque()
        self.outbox: list[tuple[bytes, str]] = []
        self.last_reply_at = time.monotonic()
        self.wake = threading.Event()
        self.closed = False
        self._lost_reported = False
        self._lock = threading.Lock()
        spawn(self._run)

    # ---- asked by the bus -----------------------------------------------------------------

    def subscribe(self, channels: list[str]) -> None:
        self._queue(b"SSUBSCRIBE", channels)

    def unsubscribe(self, channels: list[str]) -> None:
        self._queue(b"SUNSUBSCRIBE", channels)

    def _queue(self, command: bytes, channels: list[str]) -> None:
        with self._lock:
            self.outbox.extend((command, channel) for channel in channels)
        self.wake.set()

    def close(self) -> None:
        self.closed = True
        self.wake.set()
        if self.sock is not None:
            with contextlib.suppress(OSError):
                self.sock.shutdown(socket.SHUT_RDWR)  # wakes the reader
        if self.connection is not None:
            self.connection.disconnect()

    def fail(self, error: BaseException) -> None:
        """End the link and report it lost (once), whatever its tasks are doing."""
        self.close()
        self._lost(error)

    # ---- tasks ----------------------------------------------------------------------------

    def _run(self) -> None:
        """Connect, then write what is queued until the link ends."""
        try:
            self.connection = self.topology.connect(self.address, "bus")
            self.sock = raw_socket(self.connection)
            self.sock.settimeout(None)
        except Exception as exc:  # Redis unreachable: the bus tries again on a new link
            self._lost(exc)
            return
        if self.closed:
            self.connection.disconnect()
            return
        self.last_reply_at = time.monotonic()
        self.spawn(self._read_forever)
        self._write_forever()

    def _write_forever(self) -> None:
        try:
            while not self.closed:
                self.wake.wait(CHECK_EVERY_S)
                self.wake.clear()
                now = time.monotonic()
                with self._lock:
                    batch, self.outbox = self.outbox, []
                    # before sending: the reply may come at once
                    self.sent.extend((command, channel, now) for command, channel in batch)
                if batch:
                    commands: list[tuple[Any, ...]] = [(command, channel)
                                                       for command, channel in batch]
                    self.sock.sendall(b"".join(map(hiredis.pack_command, commands)))
                if self.sent:
                    waiting_since = max(self.sent[0][2], self.last_reply_at)
                    if time.monotonic() - waiting_since > REPLY_TIMEOUT_S:
                        raise redis.TimeoutError(
                            f"Redis answered nothing for {REPLY_TIMEOUT_S:g} s while "
                            f"{len(self.sent)} subscriptions waited for confirmation")
        except Exception as exc:  # the reader sees the same connection end
            self._lost(exc)

    def _read_forever(self) -> None:
        reader, sock, listener = self.reader, self.sock, self.listener
        try:
            while True:
                reply = reader.gets()
                if reply is False:
                    chunk = sock.recv(READ_BYTES)
                    if not chunk:
                        raise redis.ConnectionError("Redis closed the bus connection")
                    reader.feed(chunk)
                    self.last_reply_at = time.monotonic()
                    continue
                if isinstance(reply, list) and len(reply) == 3 and reply[0] == b"smessage":
                    listener.on_frame(reply[1], reply[2])
                elif isinstance(reply, hiredis.ReplyError):
                    _command, channel, _at = self.sent.popleft()
                    listener.on_refused(self, channel, str(reply))
                elif isinstance(reply, list) and len(reply) == 3:
                    self._confirmed(reply[0], reply[1].decode())
        except Exception as exc:  # whatever ends the connection ends the link
            self._lost(exc)

    def _confirmed(self, kind: bytes, channel: str) -> None:
        command = b"SSUBSCRIBE" if kind == b"ssubscribe" else b"SUNSUBSCRIBE"
        if self.sent and self.sent[0][:2] == (command, channel):
            self.sent.popleft()
            if kind == b"ssubscribe":
                self.listener.on_subscribed(self, channel)
            else:
                self.listener.on_unsubscribed(self, channel)
        elif kind == b"sunsubscribe":  # pushed by Redis: the channel's slot left this master
            self.listener.on_dropped(self, channel)

    def _lost(self, error: BaseException) -> None:
        with self._lock:
            if self._lost_reported:
                return
            self._lost_reported = True
        self.closed = True
        self.wake.set()
        if self.connection is not None:
            with contextlib.suppress(Exception):
                self.connection.disconnect()
        self.listener.on_link_lost(self, error)
