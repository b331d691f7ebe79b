"""What one node holds: its settings, its store, its bus, its connections and its heartbeat."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import redis
from flask import Flask, current_app

from ..bus import channels
from ..bus.bus import Bus
from ..bus.canary import Canary
from ..bus.emitter import Emitter
from ..errors import ServiceError
from ..realtime.connection import Connection
from ..realtime.expiry import Expiries
from ..realtime.ratelimit import TokenBucket
from ..settings import Settings
from ..store.failures import redis_errors
from ..store.migrate import migrate_layout
from ..store.store import Store
from ..tokens import TokenSigner
from ..transport import compat
from .metrics import Metrics, transports

log = logging.getLogger("service")
EXPIRY_CHECK_S = 0.5
EXPIRED_REASON = "token expired: refresh it (the refresh event) before it expires"


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
        self.metrics = Metrics()
        self.bus = Bus(self.name, self.store.topology, self.store.messages,
                       deliver=self._deliver, deliver_to=self._deliver_to,
                       on_control=self._on_control, spawn=spawn, sleep=time.sleep)
        self.bus.on_delivered = self.metrics.delivered_frame
        self.emitter = Emitter(self.store.client)
        self.peers: list[str] = []  # the other live nodes, as of the last heartbeat
        topology = self.store.topology
        self.canary = Canary(self.name, self._publish_control, lambda: self.peers,
                             settings.canary_interval_s, settings.canary_deadline_s,
                             masters=topology.masters, route=topology.address_of)
        self.metrics.watch(self)
        self.signer = TokenSigner(settings.secret_key, settings.token_ttl_s)
        self.connections: dict[str, Connection] = {}
        self.expiries = Expiries()
        # the user left a room on one connection ({user, room, from}): realtime/handlers.py
        self.on_left: Callable[[dict[str, Any]], None] | None = None
        self.pending_leaves: list[tuple[str, str, str]] = []  # (room, user, sid) to retry
        self.draining = False  # set on SIGTERM: no new sessions, connections handed over
        self.in_flight = 0  # Socket.IO events being handled right now
        self._cleaned_leftovers = False
        self._migrated = False
        self.redis_up: bool | None = None  # as of the last heartbeat; None before the first
        self._counted: tuple[float, float, float] | None = None  # (when, accepted, delivered)

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
            spawn(self.canary_forever)
            spawn(self.expire_forever)

    # ---- delivery from the bus --------------------------------------------------------------

    def _deliver(self, room: str | None, event_args: bytes, skip: list[str]) -> int:
        return compat.broadcast(self.server, room, event_args, skip)

    def _deliver_to(self, sid: str, event_args: bytes) -> None:
        if compat.send_to(self.server, sid, event_args):
            self.metrics.delivered.inc()

    def _on_control(self, body: dict[str, Any]) -> None:
        """Nodes tell each other: `disconnect` these connections (`node|sid`: a log-out); a
        delivery `canary` (bus/canary.py); a user `left` a room (its connections leave it)."""
        if "canary" in body:
            self.canary.heard(body["canary"])
        if "left" in body and self.on_left is not None:
            self.on_left(body["left"])
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

    def admit(self, sid: str, connection: Connection) -> None:
        """Serve `connection` here; if its credentials expire, it is told and disconnected."""
        self.connections[sid] = connection
        if connection.expires_at is not None:
            self.expiries.watch(sid, connection.expires_at)

    def extend(self, connection: Connection, sid: str, expires_at: float) -> None:
        """A refreshed token: the connection lasts until the later of its two expiries."""
        if connection.expires_at is not None and expires_at > connection.expires_at:
            connection.expires_at = expires_at
            self.expiries.watch(sid, expires_at)

    def release(self, sid: str) -> Connection | None:
        """This node no longer serves connection `sid`; the connection it was, if any."""
        self.expiries.forget(sid)
        return self.connections.pop(sid, None)

    def expire_due(self, now: float) -> int:
        """Send `expired` to each connection whose credentials expired unrefreshed, and end it;
        how many."""
        ended = 0
        for sid in self.expiries.due(now):
            try:
                self.server.emit("expired", {"reason": EXPIRED_REASON}, to=sid, namespace="/")
                self.server.disconnect(sid, namespace="/")
                ended += 1
            except Exception:
                log.exception("node=%s could not end expired connection %s", self.name, sid)
        return ended

    def expire_forever(self) -> None:
        while not self.bus.closed:
            try:
                if ended := self.expire_due(time.time()):
                    log.info("node=%s ended %d connections whose token expired", self.name, ended)
            except Exception:
                log.exception("node=%s could not end expired connections", self.name)
            time.sleep(EXPIRY_CHECK_S)

    def ready(self) -> tuple[bool, str]:
        if self.draining:
            return False, "draining"
        if not self.store.ping():
            return False, "redis does not answer"
        ready, reason = self.bus.ready()
        if ready and self.canary.deaf():
            return False, (f"the bus has not delivered this node's own canary for "
                           f"{self.canary.silent_for():.1f} s")
        return ready, reason

    # ---- the delivery canary --------------------------------------------------------------------

    def _publish_control(self, channel: Any, body: dict[str, Any]) -> None:
        with redis_errors():
            self.emitter.control(channel, body)

    def canary_forever(self) -> None:
        """Send the canary every CANARY_INTERVAL_S; drop a bus connection that stays deaf."""
        while not self.bus.closed:
            try:
                self.bus.keep(self.canary.own_channels())
                self.canary.send()
            except (ServiceError, redis.RedisError, OSError):
                pass  # Redis is down or its slot map unknown: readiness and the heartbeat say so
            except Exception:
                log.exception("node=%s could not send the canary", self.name)
            if self.bus.ready()[0]:
                for channel in self.canary.to_reconnect():
                    log.error("node=%s has not heard its own canary on %s for %.1f s although "
                              "Redis lists the subscription: that bus connection is deaf; "
                              "reconnecting it", self.name, channel.name,
                              self.canary.silent_for())
                    self.bus.reconnect(channel)
            time.sleep(self.settings.canary_interval_s)

    # ---- what the cluster page shows ------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        """This node's figures for the registry (the cluster page reads every node's)."""
        now = time.monotonic()
        accepted, delivered = self.metrics.totals()
        accepted_per_s = delivered_per_s = 0.0
        if self._counted is not None:
            then, accepted_then, delivered_then = self._counted
            elapsed = max(now - then, 1e-3)
            accepted_per_s = (accepted - accepted_then) / elapsed
            delivered_per_s = (delivered - delivered_then) / elapsed
        self._counted = (now, accepted, delivered)
        p99 = self.metrics.delivery_p99_s()
        by_transport = transports(self.server)
        return {
            "websocket": by_transport["websocket"], "polling": by_transport["polling"],
            "rooms": self.bus.subscribed_by_kind()["room"],
            "accepted_per_s": round(accepted_per_s, 2),
            "delivered_per_s": round(delivered_per_s, 2),
            "delivery_p99_ms": None if p99 is None else round(p99 * 1000, 2),
            "canary_lag_ms": round(self.canary.lag_s["self"] * 1000, 2),
            "canary_peer_lag_ms": round(self.canary.lag_s["peer"] * 1000, 2),
            "canary_silent_s": round(self.canary.silent_for(), 2),
            "canary_deaf": self.canary.deaf(),
            "canary_lost": self.canary.lost["self"] + self.canary.lost["peer"],
            "bus_up": self.bus.ready()[0],
            "draining": self.draining,
        }

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
        nodes.heartbeat(len(self.connections), self.started_ms, self.settings.node_ttl_s,
                        self.stats())
        live = nodes.live_names(self.settings.node_ttl_s)
        self.peers = [name for name in live if name != self.name]
        self.canary.forget_peers(set(live))
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
                if self.redis_up is False:
                    log.info("node=%s redis is reachable again", self.name)
                self.redis_up = True
            except ServiceError:
                if self.redis_up is not False:
                    log.error("node=%s heartbeat failed: redis is unavailable", self.name)
                self.redis_up = False
            except Exception:
                log.exception("node=%s heartbeat failed", self.name)
            time.sleep(self.settings.heartbeat_interval_s)


def current_node() -> Node:
    return current_app.extensions["node"]
