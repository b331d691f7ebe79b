"""This node's Prometheus metrics (`/metrics`, web/metrics.py).

Counters and histograms are updated on the message path, once per event or per delivered frame
(never per recipient); gauges are read from the node's state when scraped, so they cost nothing
between scrapes. Each app has a registry of its own (tests build several apps in one process).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from ..errors import CODES
from ..primitives.ids import parse_id

if TYPE_CHECKING:
    from .node import Node

disable_created_metrics()  # the `_created` series double what is exported and say little
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
LATENCY_BUCKETS = (.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1.0, 2.5, 5.0, 10.0)
MESSAGE_KINDS = ("room", "direct", "api")
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
)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.accepted = Counter("rooms_messages_accepted", "Messages stored and published",
                                ["kind"], registry=self.registry)
        self.delivered = Counter("rooms_messages_delivered",
                                 "Events written to this node's connections",
                                 registry=self.registry)
        self.publish_seconds = Histogram("rooms_publish_seconds",
                                         "Storing and publishing an accepted message",
                                         buckets=LATENCY_BUCKETS, registry=self.registry)
        self.delivery_seconds = Histogram("rooms_delivery_seconds",
                                          "From stored to delivered on this node",
                                          buckets=LATENCY_BUCKETS, registry=self.registry)
        self.errors = Counter("rooms_errors", "Error answers, by the contract's code", ["code"],
                              registry=self.registry)
        self.rate_limited = Counter("rooms_rate_limited", "Events refused by the rate limit",
                                    registry=self.registry)
        for kind in MESSAGE_KINDS:
            self.accepted.labels(kind)
        for code in CODES:
            self.errors.labels(code)
        self._window = _Window(self.delivery_seconds)

    def watch(self, node: Node) -> None:
        self.registry.register(_NodeState(node))

    def error(self, code: str) -> None:
        self.errors.labels(code if code in CODES else "bad_request").inc()
        if code == "rate_limited":
            self.rate_limited.inc()

    def delivered_frame(self, stored_id: str | None, recipients: int) -> None:
        """A frame went to `recipients` connections; a stored one's id carries when it was
        stored (Redis's clock, milliseconds)."""
        if recipients:
            self.delivered.inc(recipients)
        if stored_id is not None:
            stored_ms = parse_id(stored_id)[0]
            self.delivery_seconds.observe(max(0.0, time.time() - stored_ms / 1000))

    def totals(self) -> tuple[float, float]:
        """Messages accepted (of every kind) and deliveries, since the node started."""
        return _total(self.accepted), _total(self.delivered)

    def delivery_p99_s(self) -> float | None:
        """The 99th percentile of deliveries since the previous call (None: none)."""
        return self._window.quantile(0.99)

    def render(self) -> bytes:
        return generate_latest(self.registry)


def _total(counter: Counter) -> float:
    return sum(sample.value for metric in counter.collect() for sample in metric.samples
               if sample.name.endswith("_total"))


class _Window:
    """A quantile of a histogram's observations between two calls (bucket resolution,
    interpolated within the bucket as Prometheus's histogram_quantile does)."""

    def __init__(self, histogram: Histogram):
        self.histogram = histogram
        self.previous: list[float] = []

    def quantile(self, q: float) -> float | None:
        counts = [(float(sample.labels["le"]), sample.value)
                  for sample in next(iter(self.histogram.collect())).samples
                  if sample.name.endswith("_bucket")]
        previous = self.previous or [0.0] * len(counts)
        self.previous = [count for _, count in counts]
        window = [(bound, count - before)
                  for (bound, count), before in zip(counts, previous, strict=True)]
        total = window[-1][1]
        if total <= 0:
            return None
        rank = q * total
        lower_bound, lower_count = 0.0, 0.0
        for bound, count in window:
            if count >= rank:
                if bound == float("inf"):
                    return lower_bound
                share = (rank - lower_count) / (count - lower_count) if count > lower_count else 1
                return lower_bound + (bound - lower_bound) * share
            lower_bound, lower_count = bound, count
        return lower_bound


class _NodeState(Collector):
    """Gauges and counters read from the node when scraped."""

    def __init__(self, node: Node):
        self.node = node

    def collect(self) -> Iterator[Metric]:
        node, bus, canary = self.node, self.node.bus, self.node.canary
        connections = GaugeMetricFamily("rooms_connections", "Socket.IO connections held",
                                        labels=["transport"])
        for transport, count in transports(node.server).items():
            connections.add_metric([transport], count)
        yield connections
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
                                value=len(bus.lost))
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


def transports(server: Any) -> dict[str, int]:
    """Connections by transport: WebSocket (from the start or upgraded) or long-polling."""
    counts = {"websocket": 0, "polling": 0}
    if server is None:
        return counts
    for eio_socket in list(server.eio.sockets.values()):
        counts["websocket" if eio_socket.upgraded else "polling"] += 1
    return counts

