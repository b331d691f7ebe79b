"""This node's Prometheus counters and histograms, and the registry `/metrics` renders.

They are updated on the message path, once per event or per delivered frame (never per
recipient); gauges of the node's state are read when scraped (node/node_metrics.py), so they
cost nothing between scrapes. Each app has a registry of its own (tests build several apps in
one process).
"""

from __future__ import annotations

import time

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.registry import Collector

from ..errors import CODES
from ..hooks.metrics import HookMetrics
from ..primitives.ids import parse_id

disable_created_metrics()  # the `_created` series double what is exported and say little
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
LATENCY_BUCKETS = (.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1.0, 2.5, 5.0, 10.0)
MESSAGE_KINDS = ("room", "direct", "api")


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
        self.hooks = HookMetrics(self.registry)  # the app's join and send hooks
        for kind in MESSAGE_KINDS:
            self.accepted.labels(kind)
        for code in CODES:
            self.errors.labels(code)
        self._window = _Window(self.delivery_seconds)
        self._counted: tuple[float, float, float] | None = None  # (when, accepted, delivered)

    def watch(self, collector: Collector) -> None:
        """Also export what `collector` reads when scraped."""
        self.registry.register(collector)

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

    def rates(self) -> tuple[float, float]:
        """Messages accepted and deliveries per second since the previous call (0 the first
        time)."""
        now = time.monotonic()
        accepted, delivered = self.totals()
        accepted_per_s = delivered_per_s = 0.0
        if self._counted is not None:
            then, accepted_then, delivered_then = self._counted
            elapsed = max(now - then, 1e-3)
            accepted_per_s = (accepted - accepted_then) / elapsed
            delivered_per_s = (delivered - delivered_then) / elapsed
        self._counted = (now, accepted, delivered)
        return accepted_per_s, delivered_per_s

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
