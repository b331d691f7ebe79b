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
from .cut_off import CutOff
from .handover import hand_over
from .metrics import Metrics, transports

log = logging.getLogger("service")
EXPIRY_CHECK_S = 0.5
CUT_OFF_CHECK_S = 0.5
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
                           settings.async_mode, settings.ack_replicas, settings.ack_timeout_ms,
                           settings.ack_min_replicas)
        self.health = self.store.health
        self.server: Any = None  # python-socketio's Server, once Flask-SocketIO made it
        self.metrics = Metrics()
        self.bus = Bus(self.name, self.store.topology, self.store.messages,
                       deliver=self._deliver, deliver_to=self._deliver_to,
                       on_control=self._on_control, spawn=spawn, sleep=time.sleep,
                       reachable=self.health.reachable)
        self.bus.on_delivered = self.metrics.delivered_frame
        self.emitter = Emitter(self.store.client)
        self.peers: list[str] = []  # the other live nodes, as of the last heartbeat
        self.peer_urls: dict[str, str] = {}  # where the live nodes are reached, likewise
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
        self.busy: dict[str, int] = {}  # sid -> Socket.IO events of it being handled now
        self.cut_off = CutOff(self.name, settings.redis_lost_grace_s, self.health.down_for,
                              lambda: self.peer_urls, self._hand_over_cut_off)
        self._cleaned_leftovers = False
        self._migrated = False
        self._beat_failed: str | None = None  # why the last heartbeat failed, if it did
        self._counted: tuple[float, float, float] | None = None  # (when, accepted, delivered)

    def init_app(self, app: Flask) -> None:
        app.extensions["node"] = self

    def start(self, server: Any, background: bool = True) -> None:
        """Serve through python-socketio's `server`; with `background`, subscribe the bus and
        heartbeat (tests of one app leave both off)."""
        self.server = server
        self.store.start()
        if background:
            spawn(self.health.watch_forever, lambda: self.bus.closed, time.sleep)
            self.bus.start()
            spawn(self.heartbeat_forever)
            spawn(self.canary_forever)
            spawn(self.expire_forever)
            spawn(self.cut_off_forever)

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

    # ---- serving or not ---------------------------------------------------------------------

    def refusal(self) -> str | None:
        """Why new sessions are refused now (the session gate answers 503), or None."""
        if self.draining:
            return "this node is shutting down; connect again"
        if self.cut_off.active or (self.health.probes and not self.health.up()):
            return "this node cannot reach Redis now; connect again (another node will answer)"
        return None

    def ready(self) -> tuple[bool, str]:
        """Whether this node serves, from what it already knows: never waits on Redis."""
        if self.draining:
            return False, "draining"
        if self.cut_off.active:
            return False, "cut off from redis: connections handed over to the other nodes"
        if not self.health.probes:
            return False, "redis not probed yet"
        if not self.health.up():
            return False, f"redis does not answer: {', '.join(self.health.unreachable())}"
        ready, reason = self.bus.ready()
        if ready and self.canary.deaf():
            return False, (f"the bus has not delivered this node's own canary for "
                           f"{self.canary.silent_for():.1f} s")
        return ready, reason

    def hand_over(self, keep_going: Callable[[], bool] = lambda: True) -> int:
        """End every connection's transport spread over HANDOVER_SPREAD_S (handover.py): their
        clients reconnect through the front door to other nodes. How many were ended."""
        return hand_over(self.server, list(self.connections), sleep=time.sleep,
                         spread_s=self.settings.handover_spread_s,
                         busy_wait_s=self.settings.drain_timeout_s,
                         busy=lambda sid: self.busy.get(sid, 0) > 0, keep_going=keep_going)

    def _hand_over_cut_off(self) -> int:
        return self.hand_over(keep_going=lambda: self.health.down_for() > 0)

    def cut_off_forever(self) -> None:
        while not self.bus.closed:
            try:
                self.cut_off.check()
            except Exception:
                log.exception("node=%s could not check whether it is cut off", self.name)
            time.sleep(CUT_OFF_CHECK_S)

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
            "cut_off": self.cut_off.active,
            "redis": self.health.summary(),
        }

    # ---- heartbeat ------------------------------------------------------------------------------

    def beat(self) -> None:
        """One heartbeat: migrate and clear leftovers once, mark alive, learn the live nodes,
        reap dead nodes, retry leaves."""
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
                        self.stats(), url=self.settings.node_url)
        live = nodes.live_names(self.settings.node_ttl_s)
        known = {name: url for name, url in self.peer_urls.items() if name in live}
        self.peer_urls = {**known, **nodes.urls([name for name in live if name not in known])}
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
        """Beat every HEARTBEAT_INTERVAL_S; a failure is logged when it starts and when it ends
        (the Redis probe says whether Redis answers at all: store/health.py)."""
        while True:
            try:
                self.beat()
                if self._beat_failed is not None:
                    log.info("node=%s heartbeat goes through again", self.name)
                self._beat_failed = None
            except ServiceError as error:
                if self._beat_failed is None:
                    log.error("node=%s heartbeat failed: %s", self.name, error.message)
                self._beat_failed = error.message
            except Exception:
                log.exception("node=%s heartbeat failed", self.name)
            time.sleep(self.settings.heartbeat_interval_s)


def current_node() -> Node:
    return current_app.extensions["node"]
