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
  password, client name) and spoken through resp.py, as the bus's links speak theirs.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any

import hiredis
import redis

from .resp import Call, RespConnection


class Pipeline:
    def __init__(self, connect: Callable[[], redis.Connection], timeout_s: float):
        self.connect = connect
        self.timeout_s = timeout_s
        self._lock = threading.Lock()
        self._link: RespConnection | None = None

    def execute(self, *args: Any) -> Any:
        """Run one command and return its reply (see the module's guarantees)."""
        result = self.execute_all([args])[0]
        if isinstance(result, BaseException):
            raise result
        return result

    def execute_all(self, commands: Sequence[Sequence[Any]]) -> list[Any]:
        """Run commands back to back; each reply, or the exception for that command."""
        calls = [Call() for _ in commands]
        packed = b"".join(hiredis.pack_command(tuple(command)) for command in commands)
        with self._lock:  # one writer at a time keeps commands and waiting calls in step
            link = self._link
            if link is None or link.closed:
                link = self._link = RespConnection(self.connect(), encoding="utf-8")
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
