"""The node registry: which nodes are alive, and reaping the presence of those that died.

Guarantees
- A node that heartbeats every `heartbeat_interval_s` is listed as live for `ttl_s` after each
  beat (`nodes` sorted set by last beat, `node:{name}` hash with its figures).
- A node silent for `ttl_s` is reaped by one live node at a time: the reaper takes a lease
  (`node:{name}:reaper`, SET NX with an expiry), visits every room the dead node recorded and
  removes its connections there, announcing leaves (presence.py), then drops the record and the
  registry entry. A reaper that dies half way lets its lease expire and another one starts
  again; reaping a room twice changes nothing.
- A node reaps others only after its own heartbeats have gone through for `ttl_s` without a
  break: after an outage of Redis, or of this node's path to it, the other nodes are given a
  full `ttl_s` to beat again before they count as dead, so no live node's presence is reaped
  because Redis was away for everyone.
- The heartbeat goes on while Redis refuses writes for want of memory (lua/bookkeeping.lua), so
  a full Redis does not make live nodes look dead.
- At start a node reaps what its own previous run left behind.
"""

from __future__ import annotations

import json
import time
from typing import Any

from . import keys
from .failures import redis_errors
from .presence import Presence
from .scripts import Scripts

LEASE_MS = 30_000


class NodeRegistry:
    def __init__(self, client: Any, scripts: Scripts, presence: Presence, node: str,
                 monotonic: Any = time.monotonic):
        self.client = client
        self.scripts = scripts
        self.presence = presence
        self.node = node
        self.monotonic = monotonic
        self._beating_since: float | None = None  # first beat of the current unbroken run

    def heartbeat(self, connections: int, started_ms: int, ttl_s: float,
                  stats: dict[str, Any] | None = None, url: str = "") -> None:
        """Mark this node alive for ttl_s with its connection count, where peers reach it
        (`url`) and its figures (`stats`, for the cluster page)."""
        now_ms = int(time.time() * 1000)
        info = keys.node_info(self.node)
        fields = {"connections": connections, "started": started_ms, "beat": now_ms,
                  "url": url, "stats": json.dumps(stats or {})}
        try:
            with redis_errors():
                self.scripts.bookkeeping("ZADD", keys.NODES, now_ms, self.node)
                self.scripts.bookkeeping("HSET", info, *[part for pair in fields.items()
                                                         for part in pair])
                self.scripts.bookkeeping("PEXPIRE", info, int(ttl_s * 1000))
        except Exception:
            self._beating_since = None
            raise
        if self._beating_since is None:
            self._beating_since = self.monotonic()

    def live_names(self, ttl_s: float) -> list[str]:
        """The nodes that beat within ttl_s."""
        cutoff = int((time.time() - ttl_s) * 1000)
        with redis_errors():
            return list(self.client.zrangebyscore(keys.NODES, cutoff, "+inf"))

    def live(self, ttl_s: float, stats: bool = False) -> list[dict[str, Any]]:
        """The live nodes, `{node, connections, started}` each; with `stats`, also `beat` (ms)
        and the figures of their last heartbeat."""
        names = self.live_names(ttl_s)
        with redis_errors(), self.client.pipeline(transaction=False) as pipe:
            for name in names:
                pipe.hgetall(keys.node_info(name))
            infos = pipe.execute()
        nodes = []
        for name, info in zip(names, infos, strict=True):
            if not info:
                continue
            entry: dict[str, Any] = {"node": name, "connections": int(info.get("connections", 0)),
                                     "started": int(info.get("started", 0))}
            if stats:
                entry["beat"] = int(info.get("beat", 0))
                entry["url"] = info.get("url", "")
                entry.update(json.loads(info.get("stats") or "{}"))
            nodes.append(entry)
        return nodes

    def urls(self, names: list[str]) -> dict[str, str]:
        """Where these nodes said they can be reached, by name (those that said)."""
        with redis_errors(), self.client.pipeline(transaction=False) as pipe:
            for name in names:
                pipe.hget(keys.node_info(name), "url")
            urls = pipe.execute()
        return {name: url for name, url in zip(names, urls, strict=True) if url}

    def reap_dead(self, ttl_s: float) -> dict[str, int]:
        """Reap nodes silent for ttl_s whose lease this node gets; connections removed, by node.
        Nothing while this node's own heartbeats have not gone through for ttl_s unbroken."""
        if self._beating_since is None or self.monotonic() - self._beating_since < ttl_s:
            return {}
        cutoff = int((time.time() - ttl_s) * 1000)
        reaped = {}
        with redis_errors():
            dead = self.client.zrangebyscore(keys.NODES, "-inf", f"({cutoff}")
        for name in dead:
            if name == self.node:
                continue
            with redis_errors():
                leased = self.client.set(keys.node_reaper(name), self.node, nx=True, px=LEASE_MS)
            if not leased:
                continue
            removed = self._reap_rooms(name)
            with redis_errors():
                score = self.client.zscore(keys.NODES, name)
                if score is not None and score < cutoff:  # it did not come back meanwhile
                    self.client.zrem(keys.NODES, name)
                self.client.delete(keys.node_reaper(name))
            reaped[name] = removed
        return reaped

    def reap_own_leftovers(self) -> int:
        """At start: forget presence a previous run of this node left behind."""
        return self._reap_rooms(self.node)

    def _reap_rooms(self, node: str) -> int:
        with redis_errors():
            rooms = self.client.smembers(keys.node_rooms(node))
        removed = sum(self.presence.reap(node, room) for room in sorted(rooms))
        if rooms:
            with redis_errors():
                self.client.srem(keys.node_rooms(node), *rooms)
        return removed
