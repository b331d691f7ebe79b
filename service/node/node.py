"""What one node holds: its settings, its store, its bus, its connections and its heartbeat."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from flask import Flask, current_app

from ..bus import channels
from ..bus.bus import Bus
from ..bus.emitter import Emitter
from ..errors import ServiceError
from ..realtime.connection import Connection
from ..realtime.ratelimit import TokenBucket
from ..settings import Settings
from ..store.migrate import migrate_layout
from ..store.store import Store
from ..tokens import TokenSigner
from ..transport import compat

log = logging.getLogger("service")


def spawn(target: Any, *args: Any) -> None:
    """A background task in any async mode (gevent and eventlet make threads green)."""
    threading.Thread(target=target, args=args, daemon=True).start()


class Node:
    def __init__(self, settings: Settings):
        self.settings = settings
        self.name = settings.node_name
        self.started_ms = int(time.time() * 1000)
        self.store = Store(settings.redis_target, settings.node_name, settings.room_history_max,
                           settings.async_mode, settings.ack_replicas, settings.ack_timeout_ms)
        self.server: Any = None  # python-socketio's Server, once Flask-SocketIO made it
        self.bus = Bus(self.name, self.store.topology, self.store.messages,
                       deliver=self._deliver, deliver_to=self._deliver_to,
                       on_control=self._on_control, spawn=spawn, sleep=time.sleep)
        self.emitter = Emitter(self.store.client)
        self.signer = TokenSigner(settings.secret_key, settings.token_ttl_s)
        self.connections: dict[str, Connection] = {}
        self.pending_leaves: list[tuple[str, str, str]] = []  # (room, user, sid) to retry
        self.draining = False  # set on SIGTERM: no new sessions, connections handed over
        self.in_flight = 0  # Socket.IO events being handled right now
        self._cleaned_leftovers = False
        self._migrated = False
        self._redis_was_down = False

    def init_app(self, app: Flask) -> None:
        app.extensions["node"] = self

    def start(self, server: Any, background: bool = True) -> None:
        """Serve through python-socketio's `server`; with `background`, subscribe the bus and
        heartbeat (tests of one app leave both off)."""
        self.server = server
        self.store.start()
        if background:
            self.bus.start()
            spawn(self.heartbeat_forever)

    # ---- delivery from the bus --------------------------------------------------------------

    def _deliver(self, room: str | None, event_args: bytes, skip: list[str]) -> None:
        compat.broadcast(self.server, room, event_args, skip)

    def _deliver_to(self, sid: str, event_args: bytes) -> None:
        compat.send_to(self.server, sid, event_args)

    def _on_control(self, body: dict[str, Any]) -> None:
        """Nodes tell each other: `disconnect` these connections (`node|sid`: a log-out)."""
        for target in body.get("disconnect", []):
            node, _, sid = str(target).partition("|")
            if node == self.name and sid in self.connections:
                self.server.disconnect(sid, namespace="/")

    def disconnect_everywhere(self, user: str, sockets: list[str]) -> None:
        """Disconnect connections (`node|sid`) of `user` on whichever node holds them."""
        if sockets:
            self.emitter.control(channels.user(user), {"disconnect": sockets})

    # ---- connections ----------------------------------------------------------------------------

    def new_bucket(self) -> TokenBucket:
        return TokenBucket(self.settings.rate_limit_per_s, self.settings.rate_limit_burst)

    def leave_presence(self, room: str, user: str, sid: str) -> None:
        """Remove presence now, or later from the heartbeat if Redis is down."""
        try:
            self.store.presence.leave(room, user, sid)
        except ServiceError:
            self.pending_leaves.append((room, user, sid))

    def ready(self) -> tuple[bool, str]:
        if self.draining:
            return False, "draining"
        if not self.store.ping():
            return False, "redis does not answer"
        return self.bus.ready()

    # ---- heartbeat ------------------------------------------------------------------------------

    def beat(self) -> None:
        """One heartbeat: migrate and clear leftovers once, mark alive, reap dead nodes, retry
        leaves."""
        if not self._migrated:
            migrate_layout(self.store.client, self.name)
            self._migrated = True
        if not self._cleaned_leftovers:
            removed = self.store.nodes.reap_own_leftovers()
            self._cleaned_leftovers = True
            if removed:
                log.info("node=%s cleared %d presence entries left by a previous run",
                         self.name, removed)
        nodes = self.store.nodes
        nodes.heartbeat(len(self.connections), self.started_ms, self.settings.node_ttl_s)
        for dead, removed in nodes.reap_dead(self.settings.node_ttl_s).items():
            log.warning("node=%s reaped dead node %s (%d presence entries)", self.name, dead,
                        removed)
        while self.pending_leaves:
            room, user, sid = self.pending_leaves[0]
            self.store.presence.leave(room, user, sid)
            self.pending_leaves.pop(0)

    def heartbeat_forever(self) -> None:
        while True:
            try:
                self.beat()
                if self._redis_was_down:
                    log.info("node=%s redis is reachable again", self.name)
                self._redis_was_down = False
            except ServiceError:
                if not self._redis_was_down:
                    log.error("node=%s heartbeat failed: redis is unavailable", self.name)
                self._redis_was_down = True
            except Exception:
                log.exception("node=%s heartbeat failed", self.name)
            time.sleep(self.settings.heartbeat_interval_s)


def current_node() -> Node:
    return current_app.extensions["node"]
