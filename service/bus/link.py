"""One pub/sub connection of a node to one Redis master, holding its shard-channel subscriptions.

A writer task sends what callers queued, all of it in one write: subscribe and unsubscribe calls
made in the same turn of the event loop go out together, one SSUBSCRIBE or SUNSUBSCRIBE per
channel (a Redis Cluster refuses channels of different slots in one command). The connection is
the store's kind (store/resp.py), whose reader hands each reply to the command that asked for it
and the rest to this link, which reports to the bus in the order Redis sent them:

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

import logging
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

import hiredis
import redis

from ..store.resp import Call, RespConnection
from ..store.topology import Address, Topology

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
        self.resp: RespConnection | None = None
        self.sent: dict[Call, tuple[bytes, str]] = {}  # (command, channel) awaiting a reply
        self.outbox: list[tuple[bytes, str]] = []
        self.wake = threading.Event()
        self.closed = False
        self._lost_reported = False
        self._lock = threading.Lock()
        spawn(self._run)

    @property
    def connection(self) -> Any:
        """The connection once open (None before: a link that never connected)."""
        return None if self.resp is None else self.resp.connection

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
        if self.resp is not None:
            self.resp.fail(redis.ConnectionError("the link was closed"))

    def fail(self, error: BaseException) -> None:
        """End the link and report it lost (once), whatever its tasks are doing."""
        self.close()
        self._lost(error)

    # ---- tasks ----------------------------------------------------------------------------

    def _run(self) -> None:
        """Connect, then write what is queued until the link ends."""
        try:
            connection = self.topology.connect(self.address, "bus")
        except Exception as exc:  # Redis unreachable: the bus tries again on a new link
            self._lost(exc)
            return
        if self.closed:
            connection.disconnect()
            return
        self.resp = RespConnection(connection, on_push=self._push, on_lost=self._lost,
                                   spawn=self.spawn)
        self._write_forever(self.resp)

    def _write_forever(self, resp: RespConnection) -> None:
        try:
            while not self.closed:
                self.wake.wait(CHECK_EVERY_S)
                self.wake.clear()
                with self._lock:
                    batch, self.outbox = self.outbox, []
                if batch:
                    calls = [Call(self._replied) for _ in batch]
                    self.sent.update(zip(calls, batch, strict=True))
                    commands: list[tuple[Any, ...]] = list(batch)
                    resp.send(calls, b"".join(map(hiredis.pack_command, commands)))
                if resp.waiting and (time.monotonic() - resp.last_reply_at > REPLY_TIMEOUT_S):
                    raise redis.TimeoutError(
                        f"Redis answered nothing for {REPLY_TIMEOUT_S:g} s while "
                        f"{len(resp.waiting)} subscriptions waited for confirmation")
        except Exception as exc:  # the reader sees the same connection end
            resp.fail(exc)

    def _push(self, reply: Any) -> bool:
        """A message Redis sent by itself: a frame, or a channel it dropped (its slot moved)."""
        if not (isinstance(reply, list) and len(reply) == 3):
            return False
        kind = reply[0]
        if kind == b"smessage":
            self.listener.on_frame(reply[1], reply[2])
            return True
        if kind == b"sunsubscribe":
            channel = reply[1].decode()
            resp = self.resp
            head = self.sent.get(resp.waiting[0]) if resp is not None and resp.waiting else None
            if head != (b"SUNSUBSCRIBE", channel):
                self.listener.on_dropped(self, channel)
                return True
        return False

    def _replied(self, call: Call) -> None:
        command, channel = self.sent.pop(call, (b"", ""))
        if call.error is not None:
            if isinstance(call.error, redis.ResponseError):
                self.listener.on_refused(self, channel, str(call.error))
            return  # the connection ended: reported once, as lost
        if command == b"SSUBSCRIBE":
            self.listener.on_subscribed(self, channel)
        else:
            self.listener.on_unsubscribed(self, channel)

    def _lost(self, error: BaseException) -> None:
        with self._lock:
            if self._lost_reported:
                return
            self._lost_reported = True
        self.closed = True
        self.wake.set()
        self.listener.on_link_lost(self, error)
