"""Liveness of long-polling sessions without python-engineio's service task (gevent mode).

python-engineio's `monitor_clients` task, started by the first long-polling session, visits every
session of the node in turn, WebSocket ones too, sleeping ping timeout / sessions between two:
at 15,000 sessions it cost 31.9 ms of CPU a second, more than their pings. A node turns it off
(`monitor_clients=False`, `server_options`): WebSocket sessions have the transport's heartbeat
(heartbeat.py), and long-polling ones are kept here.

What the service task did for a long-polling session, and what does it here:
- python-engineio pings a long-polling session itself (its `_send_ping` task queues a PING one
  ping interval after the last PONG) but nothing of it gives up on an unanswered PING: only the
  service task's visit (`check_ping_timeout`) or a later send to the session closed it. Here each
  long-polling session is filed on a timing wheel of its own (heartbeat.Heartbeat: one task for
  the node, started by the first long-polling session, that visits only the sessions that are
  due) and closed with PING_TIMEOUT within a tick of its PING's deadline, so a client that
  vanished is closed ping interval + ping timeout after its last PONG.
- A request for a session whose PING is past its deadline closes it first (and is answered 400,
  an unknown session), so the deadline is exact for a client that comes back late.
- A closed session that stayed in python-engineio's sessions table (closed by a CLOSE packet in
  a POST, with no poll to end) leaves it at the next visit.

A session's visits: while its next PING waits for the ping interval (python-engineio does not say
since when), every ping timeout; the PING then goes out after the visit, so its deadline (PING +
ping timeout) comes after the next one, which is filed at that deadline. A session that upgrades
to WebSocket is the transport's from then on, and one that is gone is dropped.

Eventlet and threading modes keep python-engineio's own service task (`server_options`), which
their WebSocket sessions (python-engineio's) rely on too.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs

from . import compat
from .heartbeat import Heartbeat

log = logging.getLogger("service.transport")


def server_options(async_mode: str) -> dict[str, Any]:
    """python-engineio's options (through python-socketio or Flask-SocketIO): its service task
    only where `install` keeps nothing (eventlet, threading)."""
    return {"monitor_clients": async_mode != "gevent"}


class _Watch:
    """One long-polling session on the wheel."""

    __slots__ = ("owner", "sid")

    def __init__(self, owner: PollingLiveness, sid: str):
        self.owner, self.sid = owner, sid

    def on_timer(self, now: float) -> float | None:
        return self.owner.visit(self.sid, now)


class PollingLiveness:
    def __init__(self, eio: Any, heartbeat: Heartbeat, spawn: Callable[..., Any]):
        self.eio, self.heartbeat, self.spawn = eio, heartbeat, spawn
        self.ping_timeout_s = float(eio.ping_timeout)
        self.started = False

    def opened(self, sid: str) -> None:
        """A new session (python-engineio's connect event, accepted): filed if it polls."""
        socket = compat.session_of(self.eio, sid)
        if socket is None or not compat.is_polling(socket):
            return  # a WebSocket: the transport's heartbeat keeps it
        if not self.started:
            self.started = True
            self.spawn(self.heartbeat.run_forever)
        self.heartbeat.schedule(_Watch(self, sid), time.monotonic() + self.ping_timeout_s)

    def visit(self, sid: str, now: float) -> float | None:
        """The wheel's visit: when to come back, or None when the session is no longer ours."""
        socket = compat.session_of(self.eio, sid)
        if socket is None or not compat.is_polling(socket):
            return None  # gone, or upgraded: the transport's heartbeat has it
        if socket.closed:
            compat.forget_closed(self.eio, socket)
            return None
        if socket.closing:
            return now + self.ping_timeout_s  # its disconnect handlers run: forget it after
        sent_at = compat.unanswered_ping_at(socket)
        if sent_at is None:
            return now + self.ping_timeout_s  # the next PING goes out after this visit
        due_in = sent_at + self.ping_timeout_s - time.time()
        if due_in >= 0:
            return now + due_in
        # the disconnect handlers (Redis calls) run in a task of their own, not the wheel's
        self.spawn(self.close, socket, True)
        return None

    def close(self, socket: Any, refile: bool = False) -> None:
        """Close a session whose PING is past its deadline; if a PONG came meanwhile, it lives
        on (filed again when `refile`: it left the wheel for this)."""
        if compat.close_if_ping_timed_out(self.eio, socket):
            log.info("sid=%s long-polling session closed: its PING went unanswered for %.0f s",
                     socket.sid, self.ping_timeout_s)
        elif refile:
            self.heartbeat.schedule(_Watch(self, socket.sid),
                                    time.monotonic() + self.ping_timeout_s)

    def check_request(self, environ: dict[str, Any]) -> None:
        """Before python-engineio serves a request of a session: close the session if its PING
        is past its deadline (the wheel's visit may be up to a tick away)."""
        query = environ.get("QUERY_STRING", "")
        if "sid=" not in query:
            return
        sids = parse_qs(query).get("sid")
        socket = compat.session_of(self.eio, sids[0]) if sids else None
        if socket is None or socket.closing or not compat.is_polling(socket):
            return
        sent_at = compat.unanswered_ping_at(socket)
        if sent_at is not None and time.time() - sent_at > self.ping_timeout_s:
            self.close(socket)

    def wrap(self, handle: Callable[..., Any]) -> Callable[..., Any]:
        def handle_request(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
            self.check_request(environ)
            return handle(environ, start_response)

        return handle_request


def install(eio: Any, *, spawn: Callable[..., Any]) -> PollingLiveness | None:
    """Keep this Engine.IO server's long-polling sessions' liveness here (gevent mode, with
    `server_options`' `monitor_clients=False`); None in other modes, where python-engineio's
    service task does."""
    if eio.async_mode != "gevent":
        return None
    interval, timeout = float(eio.ping_interval), float(eio.ping_timeout)
    tick = min(1.0, interval / 4, timeout / 4)
    return attach(eio, Heartbeat(tick, sleep=eio.sleep), spawn)


def attach(eio: Any, heartbeat: Heartbeat, spawn: Callable[..., Any]) -> PollingLiveness:
    """`install`'s work, on a given wheel (its task started by `spawn` with the first
    long-polling session)."""
    liveness = PollingLiveness(eio, heartbeat, spawn)
    compat.watch_session_opens(eio, liveness.opened)
    compat.wrap_requests(eio, liveness.wrap)
    return liveness
