"""This node's heartbeat in the registry: kept alive, and what it learns of the other nodes.

Guarantees
- Every `interval_s` the node marks itself alive for `ttl_s` with its figures and its URL
  (nodes.py); a beat that fails is logged when failures start and when they end.
- Before its first beat it brings data of an older key layout over (once, cluster-wide) and
  clears the presence its own previous run left behind.
- After each beat: `peers` and `peer_urls` are the other live nodes and where they are reached,
  dead nodes are reaped (by the registry's rules), and every `after_beat` hook runs with the
  names of the live nodes.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from ..errors import ServiceError
from .migrate import migrate_layout
from .store import Store

log = logging.getLogger("service")
Figures = Callable[[], tuple[int, dict[str, Any]]]  # (connections, figures for the cluster page)


class Heartbeat:
    def __init__(self, store: Store, url: str, interval_s: float, ttl_s: float,
                 figures: Figures, after_beat: list[Callable[[list[str]], None]]):
        self.store = store
        self.node = store.node
        self.url = url
        self.interval_s = interval_s
        self.ttl_s = ttl_s
        self.figures = figures
        self.after_beat = after_beat
        self.started_ms = int(time.time() * 1000)
        self.peers: list[str] = []  # the other live nodes, as of the last beat
        self.peer_urls: dict[str, str] = {}  # where the live nodes are reached, likewise
        self._migrated = False
        self._cleaned_leftovers = False
        self._failed: str | None = None  # why the last beat failed, if it did

    def beat(self) -> None:
        if not self._migrated:
            migrate_layout(self.store.client, self.node)
            self._migrated = True
        nodes = self.store.nodes
        if not self._cleaned_leftovers:
            removed = nodes.reap_own_leftovers()
            self._cleaned_leftovers = True
            if removed:
                log.info("node=%s cleared %d presence entries left by a previous run",
                         self.node, removed)
        connections, figures = self.figures()
        nodes.heartbeat(connections, self.started_ms, self.ttl_s, figures, url=self.url)
        live = nodes.live_names(self.ttl_s)
        known = {name: url for name, url in self.peer_urls.items() if name in live}
        self.peer_urls = {**known, **nodes.urls([name for name in live if name not in known])}
        self.peers = [name for name in live if name != self.node]
        for dead, removed in nodes.reap_dead(self.ttl_s).items():
            log.warning("node=%s reaped dead node %s (%d presence entries)", self.node, dead,
                        removed)
        for hook in self.after_beat:
            hook(live)

    def forever(self, closed: Callable[[], bool]) -> None:
        while not closed():
            try:
                self.beat()
                if self._failed is not None:
                    log.info("node=%s heartbeat goes through again", self.node)
                self._failed = None
            except ServiceError as error:
                if self._failed is None:
                    log.error("node=%s heartbeat failed: %s", self.node, error.message)
                self._failed = error.message
            except Exception:
                log.exception("node=%s heartbeat failed", self.node)
            time.sleep(self.interval_s)
