"""One Redis connection that every task of a node shares, its commands pipelined.

redis-py checks a connection out of its pool for every command, polls it for stray data, runs the
call through retry and deprecation layers and reads the reply in the calling task: about 150 us
of CPU per call on these machines, and a quarter of a node's CPU in the chat load test (py-spy,
README, performance). The store's scripts, which every sent message runs, go through this
instead: the calling task writes its command, packed by hiredis, and waits; one reader task parses
the replies with hiredis and hands each to its caller. Commands of concurrent tasks share the
connection without waiting for each other's replies.

Guarantees
- Redis answers a connection's commands in the order they were sent, so each caller gets the reply
  to its own command.
- A caller waits at most `timeout_s`. If the connection fails or a reply is late, every command
  still waiting fails with redis.ConnectionError or redis.TimeoutError (whether Redis ran it is
  unknown, as with any client), the connection is dropped and the next command opens a new one.
- An error reply raises redis.ResponseError, as redis-py does; replies are decoded as UTF-8.
- Commands given together (`execute_all`) are written back to back in one write, so nothing of
  another task comes between them (`ASKING` before a command, `WAIT` after a write).
- The connection is opened by the caller's factory (store/topology.py: URL or cluster node, TLS,
  password, client name). Blocking happens through `threading`, which gevent and eventlet make
  cooperative.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

import hiredis
import redis

from ..transport.compat import raw_socket

READ_BYTES = 65536


class _Call:
    __slots__ = ("done", "error", "reply")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.reply: Any = None
        self.error: BaseException | None = None

    def resolve(self, reply: Any) -> None:
        if isinstance(reply, hiredis.ReplyError):
            self.error = redis.ResponseError(str(reply))
        else:
            self.reply = reply
        self.done.set()

    def reject(self, error: BaseException) -> None:
        self.error = error
        self.done.set()


class _Link:
    """One open connection, the calls waiting on it in order, and the task reading its replies."""

    def __init__(self, connection: redis.Connection):
        self.connection = connection
        self.sock = raw_socket(connection)
        self.sock.settimeout(None)  # lateness is each caller's timeout, not the socket's
        self.waiting: deque[_Call] = deque()
        self.failure: BaseException | None = None
        threading.Thread(target=self._read_replies, name="redis-pipeline", daemon=True).start()

    def send(self, calls: Sequence[_Call], commands: bytes) -> None:
        self.waiting.extend(calls)
        try:
            self.sock.sendall(commands)
        except OSError as exc:
            self.fail(redis.ConnectionError(f"writing to Redis failed: {exc}"))

    def _read_replies(self) -> None:
        reader = hiredis.Reader(encoding="utf-8")
        try:
            while True:
                data = self.sock.recv(READ_BYTES)
                if not data:
                    raise redis.ConnectionError("Redis closed the connection")
                reader.feed(data)
                while (reply := reader.gets()) is not False:
                    self.waiting.popleft().resolve(reply)
        except Exception as exc:  # whatever ends the connection fails its calls
            if not isinstance(exc, redis.RedisError):
                exc = redis.ConnectionError(f"reading from Redis failed: {exc}")
            self.fail(exc)

    def fail(self, error: BaseException) -> None:
        """End the link; every waiting call fails with the first reason (a late reply's timeout
        stays a timeout even though the reader then sees the connection close)."""
        if self.failure is None:
            self.failure = error
            with contextlib.suppress(OSError):
                self.sock.shutdown(socket.SHUT_RDWR)  # wakes the reader, in any async mode
            self.connection.disconnect()
        while True:
            try:
                call = self.waiting.popleft()
            except IndexError:  # in threading mode the reader may be emptying it too
                return
            call.reject(self.failure)


class Pipeline:
    def __init__(self, connect: Callable[[], redis.Connection], timeout_s: float):
        self.connect = connect
        self.timeout_s = timeout_s
        self._lock = threading.Lock()
        self._link: _Link | None = None

    def execute(self, *args: Any) -> Any:
        """Run one command and return its reply (see the module's guarantees)."""
        result = self.execute_all([args])[0]
        if isinstance(result, BaseException):
            raise result
        return result

    def execute_all(self, commands: Sequence[Sequence[Any]]) -> list[Any]:
        """Run commands back to back; each reply, or the exception for that command."""
        calls = [_Call() for _ in commands]
        packed = b"".join(hiredis.pack_command(tuple(command)) for command in commands)
        with self._lock:  # one writer at a time keeps commands and waiting calls in step
            link = self._link
            if link is None or link.failure is not None:
                link = self._link = _Link(self.connect())
            link.send(calls, packed)
        last = calls[-1]
        if not last.done.wait(self.timeout_s):
            link.fail(redis.TimeoutError(f"Redis did not answer within {self.timeout_s:g} s"))
        for call in calls:
            call.done.wait()  # resolved now: by fail(), or by replies that came just in time
        return [call.error if call.error is not None else call.reply for call in calls]

    def close(self) -> None:
        with self._lock:
            if self._link is not None:
                self._link.fail(redis.ConnectionError("the pipeline was closed"))
                self._link = None
