"""This node's state as Prometheus gauges, read when `/metrics` is scraped (the counters are
realtime/metrics.py's): connections, the bus, the canary, each Redis master as this node's probe
sees it, the cut-off and drain states, the webhook sender (zero while WEBHOOK_URL is unset)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Protocol

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from ..bus.bus import Bus
from ..bus.canary import Canary
from ..hooks.delivery import OUTCOMES
from ..hooks.webhooks import Counts, WebhookSender
from ..settings import Settings
from ..store.health import RedisHealth
from ..transport.compat import connections_by_transport
from ..transport.websocket import transport_of
from .cut_off import CutOff

# every metric /metrics carries, for the dashboards and their tests
NAMES = (
    "rooms_connections", "rooms_rooms", "rooms_bus_channels", "rooms_bus_up",
    "rooms_bus_lost_channels", "rooms_bus_resubscribes_total", "rooms_bus_replayed_total",
    "rooms_messages_accepted_total", "rooms_messages_delivered_total", "rooms_publish_seconds",
    "rooms_delivery_seconds", "rooms_errors_total", "rooms_rate_limited_total", "rooms_draining",
    "rooms_redis_up", "rooms_canary_lag_seconds", "rooms_canary_lost_total",
    "rooms_canary_heard_age_seconds", "rooms_canary_sent_total", "rooms_node_info",
    "rooms_redis_master_up", "rooms_redis_replicas_in_sync", "rooms_redis_writes_degraded",
    "rooms_redis_memory_full", "rooms_redis_memory_used_bytes", "rooms_redis_maxmemory_bytes",
    "rooms_redis_oom_refusals_total", "rooms_cut_off", "rooms_handed_over_total",
    "rooms_hook_calls_total", "rooms_hook_seconds",
    "rooms_webhook_batches_total", "rooms_webhook_events_total", "rooms_webhook_retries_total",
    "rooms_webhook_dropped_total", "rooms_webhook_pending_outboxes",
    "rooms_webhook_oldest_pending_seconds", "rooms_transport_tasks", "rooms_transport_paused",
)


class Observed(Protocol):
    """What the gauges read of a node (node.py's Node is one)."""

    name: str
    settings: Settings
    server: Any
    bus: Bus
    canary: Canary
    health: RedisHealth
    cut_off: CutOff
    draining: bool
    webhooks: WebhookSender | None


class NodeState(Collector):
    """Gauges and counters read from the node when scraped."""

    def __init__(self, node: Observed):
        self.node = node

    def collect(self) -> Iterator[Metric]:
        node, bus, canary = self.node, self.node.bus, self.node.canary
        connections = GaugeMetricFamily("rooms_connections", "Socket.IO connections held",
                                        labels=["transport"])
        for transport, count in connections_by_transport(node.server).items():
            connections.add_metric([transport], count)
        yield connections
        served = transport_of(node.server.eio) if node.server is not None else None
        yield GaugeMetricFamily("rooms_transport_tasks",
                                "WebSocket connections with a task handling their events now "
                                "(an idle connection has none)",
                                value=served.tasks if served else 0)
        yield GaugeMetricFamily("rooms_transport_paused",
                                "WebSocket connections whose reading waits for their task",
                                value=served.paused if served else 0)
        by_kind = bus.subscribed_by_kind()
        yield GaugeMetricFamily("rooms_rooms", "Chat rooms with a connection on this node",
                                value=by_kind["room"])
        channels_family = GaugeMetricFamily("rooms_bus_channels", "Bus channels subscribed",
                                            labels=["kind"])
        for kind, count in by_kind.items():
            channels_family.add_metric([kind], count)
        yield channels_family
        ready, _ = bus.ready()
        yield GaugeMetricFamily("rooms_bus_up", "1 when every bus subscription is live",
                                value=int(ready))
        yield GaugeMetricFamily("rooms_bus_lost_channels",
                                "Bus channels lost and being subscribed again",
                                value=bus.restoring())
        yield CounterMetricFamily("rooms_bus_resubscribes", "Rounds of subscribing lost channels",
                                  value=bus.resubscribes)
        yield CounterMetricFamily("rooms_bus_replayed",
                                  "Messages replayed from streams after a lost subscription",
                                  value=bus.replayed)
        yield GaugeMetricFamily("rooms_draining", "1 while the node drains",
                                value=int(node.draining))
        health = node.health
        yield GaugeMetricFamily("rooms_redis_up", "1 when every Redis master answered its last "
                                "probe", value=int(health.probes > 0 and health.up()))
        yield from _masters(health, node.settings.ack_replicas)
        yield GaugeMetricFamily("rooms_cut_off", "1 while this node, cut off from Redis, hands "
                                "its connections to the others", value=int(node.cut_off.active))
        yield CounterMetricFamily("rooms_handed_over", "Connections handed over because this "
                                  "node was cut off from Redis", value=node.cut_off.handed_over)
        lag = GaugeMetricFamily("rooms_canary_lag_seconds", "Lag of the newest canary heard",
                                labels=["source"])
        lost = CounterMetricFamily("rooms_canary_lost", "Canaries never heard",
                                   labels=["source"])
        for source in ("self", "peer"):
            lag.add_metric([source], canary.lag_s[source])
            lost.add_metric([source], canary.lost[source])
        yield lag
        yield lost
        yield GaugeMetricFamily("rooms_canary_heard_age_seconds",
                                "Seconds since this node last heard its own canary",
                                value=canary.silent_for())
        yield CounterMetricFamily("rooms_canary_sent", "Canaries published",
                                  value=canary.sent)
        info = GaugeMetricFamily("rooms_node_info", "This node", labels=["node", "async_mode"])
        info.add_metric([node.name, node.settings.async_mode], 1)
        yield info
        yield from _webhooks(node.webhooks.counts if node.webhooks is not None else Counts())


def _webhooks(counts: Counts) -> Iterator[Metric]:
    """This node's webhook sender (hooks/webhooks.py); pending outboxes and the oldest event's
    age are the whole cluster's, as the index last told this node."""
    batches = CounterMetricFamily("rooms_webhook_batches", "Webhook requests sent, by outcome",
                                  labels=["outcome"])
    for outcome in OUTCOMES:
        batches.add_metric([outcome], counts.batches[outcome])
    yield batches
    events = CounterMetricFamily("rooms_webhook_events", "Webhook events sent, by whether their "
                                 "batch was delivered (a failed one is sent again)",
                                 labels=["outcome"])
    for outcome, value in counts.events.items():
        events.add_metric([outcome], value)
    yield events
    yield CounterMetricFamily("rooms_webhook_retries", "Rooms and inboxes put off after a "
                              "failed webhook request", value=counts.retries)
    yield CounterMetricFamily("rooms_webhook_dropped", "Webhook events older than "
                              "WEBHOOK_RETRY_S, dropped undelivered", value=counts.dropped)
    yield GaugeMetricFamily("rooms_webhook_pending_outboxes", "Rooms and inboxes with "
                            "undelivered webhook events, cluster-wide", value=counts.pending)
    yield GaugeMetricFamily("rooms_webhook_oldest_pending_seconds", "Age of the oldest "
                            "undelivered webhook event, cluster-wide",
                            value=counts.oldest_pending_s)


def _masters(health: Any, wanted: int) -> Iterator[Metric]:
    """Each Redis master as the node's probe last saw it (store/health.py)."""
    families = {
        "up": GaugeMetricFamily("rooms_redis_master_up", "1 when the master answered its last "
                                "probe from this node", labels=["master"]),
        "in_sync": GaugeMetricFamily("rooms_redis_replicas_in_sync", "The master's replicas "
                                     "online and acknowledging", labels=["master"]),
        "degraded": GaugeMetricFamily("rooms_redis_writes_degraded", "1 when writes are "
                                      "acknowledged after fewer replicas than ACK_REPLICAS",
                                      labels=["master"]),
        "full": GaugeMetricFamily("rooms_redis_memory_full", "1 when the master refuses writes "
                                  "for want of memory", labels=["master"]),
        "used": GaugeMetricFamily("rooms_redis_memory_used_bytes", "The master's used_memory",
                                  labels=["master"]),
        "max": GaugeMetricFamily("rooms_redis_maxmemory_bytes", "The master's maxmemory (0: no "
                                 "limit)", labels=["master"]),
    }
    for (host, port), state in sorted(list(health.masters.items())):
        master = [f"{host}:{port}"]
        in_sync = state.in_sync if state.in_sync is not None else 0
        families["up"].add_metric(master, int(state.reachable))
        families["in_sync"].add_metric(master, in_sync)
        families["degraded"].add_metric(master, int(state.reachable and state.in_sync is not None
                                                    and in_sync < wanted))
        families["full"].add_metric(master, int(state.full))
        families["used"].add_metric(master, state.used_memory)
        families["max"].add_metric(master, state.maxmemory)
    yield from families.values()
    yield CounterMetricFamily("rooms_redis_oom_refusals", "Writes Redis refused for want of "
                              "memory", value=health.oom_refusals)
