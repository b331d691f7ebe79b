"""One open connection to one Redis server, speaking RESP through hiredis: the one both the
store's pipelined connection (pipeline.py) and the bus's subscriber links (bus/link.py) use.

redis-py opens the connection (its URL, TLS, password and client name: store/topology.py); from
then on commands go out as packed bytes and one reader task parses every reply with hiredis.

Guarantees
- Redis answers a connection's commands in the order they were sent: each reply goes to the
  call that waits at the head of the line. `send` queues the calls before writing, so a reply
  can never arrive before its call.
- A reply the owner takes as a push (`on_push` returns True: a pub/sub message, a `sunsubscribe`
  Redis sent by itself) goes to the owner, not to a call.
- Anything that ends the connection (a failed write or read, Redis closing it, `fail`) fails
  every call still waiting with the first reason, once, and reports it to `on_lost`, once.
- Blocking happens through `threading` and the socket, which gevent and eventlet make
  cooperative.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

import hiredis
import redis

from ..transport.compat import raw_socket

READ_BYTES = 65536


class Call:
    """A command's reply to come: waited for (`done`), or handed to `on_reply` once it came."""

    __slots__ = ("done", "error", "on_reply", "reply")

    def __init__(self, on_reply: Callable[[Call], None] | None = None) -> None:
        self.done = threading.Event()
        self.reply: Any = None
        self.error: BaseException | None = None
        self.on_reply = on_reply

    def resolve(self, reply: Any) -> None:
        if isinstance(reply, hiredis.ReplyError):
            self.error = redis.ResponseError(str(reply))
        else:
            self.reply = reply
        self._done()

    def reject(self, error: BaseException) -> None:
        self.error = error
        self._done()

    def _done(self) -> None:
        self.done.set()
        if self.on_reply is not None:
            self.on_reply(self)


class RespConnection:
    def __init__(self, connection: redis.Connection, *, encoding: str | None = None,
                 on_push: Callable[[Any], bool] | None = None,
                 on_lost: Callable[[BaseException], None] | None = None,
                 spawn: Callable[..., Any] | None = None):
        self.connection = connection
        self.sock = raw_socket(connection)
        self.sock.settimeout(None)  # lateness is the owner's to judge, not the socket's
        self.reader = hiredis.Reader(encoding=encoding) if encoding else hiredis.Reader()
        self.on_push = on_push
        self.on_lost = on_lost
        self.waiting: deque[Call] = deque()
        self.failure: BaseException | None = None
        self.last_reply_at = time.monotonic()
        run = spawn or (lambda target: threading.Thread(target=target, name="redis-reader",
                                                        daemon=True).start())
        run(self._read_replies)

    @property
    def closed(self) -> bool:
        return self.failure is not None

    def send(self, calls: Sequence[Call], commands: bytes) -> None:
        """Queue `calls` for the replies to `commands` (packed), then write them in one go."""
        self.waiting.extend(calls)
        try:
            self.sock.sendall(commands)
        except OSError as exc:
            self.fail(redis.ConnectionError(f"writing to Redis failed: {exc}"))

    def _read_replies(self) -> None:
        reader, on_push = self.reader, self.on_push
        try:
            while True:
                data = self.sock.recv(READ_BYTES)
                if not data:
                    raise redis.ConnectionError("Redis closed the connection")
                self.last_reply_at = time.monotonic()
                reader.feed(data)
                while (reply := reader.gets()) is not False:
                    if on_push is not None and on_push(reply):
                        continue
                    self.waiting.popleft().resolve(reply)
        except Exception as exc:  # whatever ends the connection fails its calls
            if not isinstance(exc, redis.RedisError):
                exc = redis.ConnectionError(f"reading from Redis failed: {exc}")
            self.fail(exc)

    def fail(self, error: BaseException) -> None:
        """End the connection; every waiting call fails with the first reason (a late reply's
        timeout stays a timeout even though the reader then sees the connection close)."""
        first = self.failure is None
        if first:
            self.failure = error
        failure = self.failure or error
        if first:
            with contextlib.suppress(OSError):
                self.sock.shutdown(socket.SHUT_RDWR)  # wakes the reader, in any async mode
            with contextlib.suppress(Exception):
                self.connection.disconnect()
        while True:
            try:
                call = self.waiting.popleft()
            except IndexError:  # the reader may be emptying it too
                break
            call.reject(failure)
        if first and self.on_lost is not None:
            self.on_lost(error)
