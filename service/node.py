"""What one node holds: its settings, its store, its Socket.IO connections and its heartbeat."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

from flask import Flask, current_app

from .cluster_manager import ClusterManager
from .errors import ServiceError
from .ratelimit import TokenBucket
from .settings import Settings
from .store import Store, client_options
from .tokens import TokenSigner

QUEUE_CHANNEL = "flask-socketio"
log = logging.getLogger("service")


@dataclass
class Connection:
    """A Socket.IO connection held by this node."""

    user: str
    expires_at: float | None  # token expiry; None for browser sessions (ended by log-out)
    session_id: str | None
    bucket: TokenBucket
    rooms: set[str] = field(default_factory=set)


class Node:
    def __init__(self, settings: Settings):
        self.settings = settings
        self.name = settings.node_name
        self.started_ms = int(time.time() * 1000)
        self.store = Store(settings.redis_url, settings.node_name, QUEUE_CHANNEL,
                           settings.room_history_max, settings.async_mode)
        self.manager = ClusterManager(settings.redis_url, QUEUE_CHANNEL, settings.node_name,
                                      self.store, client_options(settings.async_mode))
        self.signer = TokenSigner(settings.secret_key, settings.token_ttl_s)
        self.connections: dict[str, Connection] = {}
        self.pending_leaves: list[tuple[str, str, str]] = []  # (room, user, sid) to retry
        self.draining = False  # set on SIGTERM: no new sessions, connections handed over
        self.in_flight = 0  # Socket.IO events being handled right now
        self._cleaned_leftovers = False
        self._redis_was_down = False

    def init_app(self, app: Flask) -> None:
        app.extensions["node"] = self

    def new_bucket(self) -> TokenBucket:
        return TokenBucket(self.settings.rate_limit_per_s, self.settings.rate_limit_burst)

    def leave_presence(self, room: str, user: str, sid: str) -> None:
        """Remove presence now, or later from the heartbeat if Redis is down."""
        try:
            self.store.leave(room, user, sid)
        except ServiceError:
            self.pending_leaves.append((room, user, sid))

    def ready(self) -> tuple[bool, str]:
        if self.draining:
            return False, "draining"
        if not self.store.ping():
            return False, "redis does not answer"
        if self.store.subscriber_count(self.manager.client_name) < 1:
            return False, "message-queue subscription is not live"
        return True, "ready"

    def beat(self) -> None:
        """One heartbeat: clear leftovers once, mark alive, reap dead nodes, retry leaves."""
        if not self._cleaned_leftovers:
            removed = self.store.reap_own_leftovers()
            self._cleaned_leftovers = True
            if removed:
                log.info("node=%s cleared %d presence entries left by a previous run",
                         self.name, removed)
        self.store.heartbeat(len(self.connections), self.started_ms, self.settings.node_ttl_s)
        for dead, removed in self.store.reap_dead_nodes(self.settings.node_ttl_s).items():
            log.warning("node=%s reaped dead node %s (%d presence entries)", self.name, dead,
                        removed)
        self.manager.prune()
        while self.pending_leaves:
            room, user, sid = self.pending_leaves[0]
            self.store.leave(room, user, sid)
            self.pending_leaves.pop(0)

    def heartbeat_forever(self, sleep) -> None:
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
            sleep(self.settings.heartbeat_interval_s)


def current_node() -> Node:
    return current_app.extensions["node"]
