"""One node: its parts, built and wired together, and whether it serves.

Each part owns what it does and says so in its module: the store (Redis), its probe of Redis
(store/health.py), the bus between nodes (bus/bus.py), the Broker the handlers ask
(bus/redis_broker.py), the local membership and delivery (realtime/manager.py), the connections
and their expiry (realtime/connections.py), the handlers (realtime/namespace.py), the registry
heartbeat (store/heartbeat.py), the delivery canary (bus/canary.py), the decision to hand
clients over when cut off from Redis (node/cut_off.py), the webhook sender (hooks/webhooks.py,
with WEBHOOK_URL). The node builds them, connects their
callbacks, runs their loops, and answers whether it serves (readiness, the session gate).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from flask import Flask

from ..app_tokens import AppTokens
from ..bus import channels
from ..bus.bus import Bus
from ..bus.canary import Canary
from ..bus.emitter import Emitter
from ..bus.redis_broker import RedisBroker
from ..hooks.delivery import Poster
from ..hooks.hooks import Hooks
from ..hooks.webhooks import WebhookSender
from ..realtime.connections import Connections
from ..realtime.manager import NAMESPACE, RoomsManager
from ..realtime.metrics import Metrics
from ..realtime.namespace import Limits, RoomsNamespace
from ..settings import Settings
from ..store.failures import redis_errors
from ..store.heartbeat import Heartbeat
from ..store.store import Store
from ..tokens import TokenSigner
from ..transport import compat
from ..transport.environ import kept_environ
from ..web.context import KEY as WEB_KEY
from ..web.context import WebContext
from .cut_off import CutOff
from .handover import hand_over
from .node_metrics import NodeState

log = logging.getLogger("service")


def spawn(target: Any, *args: Any, **kwargs: Any) -> None:
    """A background task in any async mode (gevent and eventlet make threads green)."""
    threading.Thread(target=target, args=args, kwargs=kwargs, daemon=True).start()


class Node:
    def __init__(self, settings: Settings):
        self.settings = settings
        self.name = settings.node_name
        # first: keys that cannot be read stop the start before anything connects
        self.app_tokens = AppTokens.from_settings(settings)
        self.store = Store(settings.redis_target, settings.node_name, settings.room_history_max,
                           settings.async_mode, settings.ack_replicas, settings.ack_timeout_ms,
                           settings.ack_min_replicas, app_users=settings.app_jwts,
                           rooms_default_private=settings.rooms_default == "private",
                           webhook_retry_s=settings.webhook_retry_s if settings.webhook_url
                           else None)
        self.webhooks: WebhookSender | None = None
        if settings.webhook_url and settings.hook_secret:
            self.webhooks = WebhookSender(
                self.store.webhooks,
                Poster(settings.webhook_url, settings.hook_secret, settings.hook_timeout_s,
                       node=self.name),
                node=self.name, retry_s=settings.webhook_retry_s,
                batch_max=settings.webhook_batch_max, sweep_s=settings.webhook_sweep_s,
                timeout_s=settings.hook_timeout_s)
            self.store.webhooks.on_indexed = self.webhooks.wake
        self.health = self.store.health
        self.metrics = Metrics()
        self.manager = RoomsManager(subscribe=lambda channel: self.bus.subscribe(channel),
                                    unsubscribe=lambda channel: self.bus.unsubscribe(channel))
        messages = self.store.messages
        self.bus = Bus(self.name, self.store.topology,
                       replay=lambda channel, after, limit: messages.frames_after(
                           channel.kind, channel.target, after, limit),
                       deliver=self.manager.deliver, on_control=self._on_control, spawn=spawn,
                       sleep=time.sleep, reachable=self.health.reachable)
        self.bus.on_delivered = self.metrics.delivered_frame
        self.emitter = Emitter(self.store.client)
        self.broker = RedisBroker(self.store, self.bus, self.emitter)
        self.connections = Connections()
        self.signer = TokenSigner(settings.secret_key, settings.token_ttl_s)
        self.hooks = Hooks.from_settings(settings, self.metrics.hooks)
        topology = self.store.topology
        self.canary = Canary(self.name, self._publish_control, lambda: self.heartbeat.peers,
                             settings.canary_interval_s, settings.canary_deadline_s,
                             masters=topology.masters, route=topology.address_of)
        self.heartbeat = Heartbeat(
            self.store, settings.node_url, settings.heartbeat_interval_s, settings.node_ttl_s,
            figures=lambda: (len(self.connections), self.stats()),
            after_beat=[lambda live: self.canary.forget_peers(set(live)),
                        lambda _live: self.broker.retry_leaves()])
        self.cut_off = CutOff(self.name, settings.redis_lost_grace_s, self.health.down_for,
                              lambda: self.heartbeat.peer_urls, self._hand_over_cut_off)
        self.metrics.watch(NodeState(self))
        self.server: Any = None  # python-socketio's Server, once Flask-SocketIO made it
        self.namespace: RoomsNamespace | None = None
        self.draining = False  # set on SIGTERM: no new sessions, connections handed over

    # ---- wiring -------------------------------------------------------------------------------

    def init_app(self, app: Flask) -> None:
        app.extensions["node"] = self
        app.extensions[WEB_KEY] = WebContext(
            name=self.name, settings=self.settings, broker=self.broker, store=self.store,
            health=self.health, metrics=self.metrics, signer=self.signer, ready=self.ready,
            refusal=self.refusal, disconnect_everywhere=self.disconnect_everywhere)

    def serve(self, app: Flask, server: Any, background: bool = True) -> None:
        """Handle python-socketio's `server`'s events; with `background`, run the probe, the
        bus, the heartbeat, the canary, connection expiry, the cut-off check and the webhook
        sender (tests of one app leave them off)."""
        self.server = server
        settings = self.settings
        self.namespace = RoomsNamespace(
            app=app, node=self.name, broker=self.broker, manager=self.manager,
            connections=self.connections, signer=self.signer, metrics=self.metrics,
            limits=Limits(settings.max_text_chars, settings.rate_limit_per_s,
                          settings.rate_limit_burst),
            spawn=server.start_background_task, app_tokens=self.app_tokens,
            own_accounts=settings.own_accounts, hooks=self.hooks,
            join_hook_cache_s=settings.join_hook_cache_s)
        server.register_namespace(self.namespace)
        compat.guard_incoming_packets(server, self._on_malformed)
        # a session keeps only the environ keys its handlers read (long-polling ones too)
        compat.lean_connect_environ(server, kept_environ)
        self.store.start()
        if background:
            closed = self.closed
            spawn(self.health.watch_forever, closed, time.sleep)
            self.bus.start()
            spawn(self.heartbeat.forever, closed)
            spawn(self.canary.keep_listening, self.bus, closed)
            spawn(self.connections.expire_forever, self._end_expired, closed, self.name)
            spawn(self.cut_off.forever, closed)
            if self.webhooks is not None:
                spawn(self.webhooks.forever, closed)

    def _on_malformed(self, eio_sid: str, error: Exception) -> None:
        log.warning("node=%s dropped a malformed Socket.IO packet from %s (%s)", self.name,
                    eio_sid, error.__class__.__name__)

    def closed(self) -> bool:
        return self.bus.closed

    def _on_control(self, body: dict[str, Any]) -> None:
        """Nodes tell each other: a delivery `canary` (bus/canary.py); the rest is about
        connections, the handlers' (RoomsNamespace.on_control: a user left a room, a log-out,
        the app removed a user from a room or ends its connections)."""
        if "canary" in body:
            self.canary.heard(body["canary"])
        if self.namespace is not None:
            self.namespace.on_control(body)

    def _publish_control(self, channel: Any, body: dict[str, Any]) -> None:
        with redis_errors():
            self.emitter.control(channel, body)

    def disconnect_everywhere(self, user: str, sockets: list[str]) -> None:
        """Disconnect connections (`node|sid`) of `user` on whichever node holds them."""
        if sockets:
            self.emitter.control(channels.user(user), {"disconnect": sockets})

    def _end_expired(self, sid: str, reason: str) -> None:
        self.server.emit("expired", {"reason": reason}, to=sid, namespace=NAMESPACE)
        self.server.disconnect(sid, namespace=NAMESPACE)

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
        return hand_over(self.server, self.connections.sids(), sleep=time.sleep,
                         spread_s=self.settings.handover_spread_s,
                         busy_wait_s=self.settings.drain_timeout_s,
                         busy=self.connections.busy, keep_going=keep_going)

    def stop_webhooks(self) -> None:
        """Let the webhook sender finish its batch in flight and stop (draining)."""
        if self.webhooks is None:
            return
        if self.webhooks.stop(self.settings.hook_timeout_s + 5):
            log.info("node=%s webhook sender stopped", self.name)
        else:
            log.warning("node=%s webhook sender did not stop in time; its leases expire by "
                        "themselves", self.name)

    def _hand_over_cut_off(self) -> int:
        return self.hand_over(keep_going=lambda: self.health.down_for() > 0)

    # ---- what the cluster page shows ------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        """This node's figures for the registry (the cluster page reads every node's)."""
        accepted_per_s, delivered_per_s = self.metrics.rates()
        p99 = self.metrics.delivery_p99_s()
        by_transport = compat.connections_by_transport(self.server)
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
            "hooks": self.metrics.hooks.totals() if self.hooks.asks_joins or
            self.hooks.asks_sends else None,
            "webhooks": None if self.webhooks is None else webhook_figures(self.webhooks),
        }


def webhook_figures(sender: WebhookSender) -> dict[str, Any]:
    """What the cluster page shows of a node's webhook sender."""
    counts = sender.counts
    return {"delivered": counts.events["delivered"], "failed": counts.events["failed"],
            "batches": sum(counts.batches.values()), "retries": counts.retries,
            "dropped": counts.dropped, "pending": counts.pending,
            "oldest_pending_s": round(counts.oldest_pending_s, 1)}

