"""A node cut off from Redis hands its clients to nodes that still reach it.

A node that cannot reach Redis can serve no one: every send, join and resume needs it. Its
clients, though, stay connected to it (nothing tells them to leave) and get `unavailable` or no
answer, while the other nodes could serve them.

Guarantees
- While a Redis master is unreachable from this node (store/health.py), it takes no new session
  (the session gate answers 503, which the front door passes on).
- Once that has lasted `grace_s` (REDIS_LOST_GRACE_S) and another live node says that it reaches
  Redis (its /readyz body), the node is cut off: it hands its connections over (handover.py,
  spread over HANDOVER_SPREAD_S), so their clients reconnect through the front door to nodes
  that can serve them and resume with `since`. While it stays cut off it hands over whatever
  connected meanwhile at every check.
- When no other node reaches Redis either, Redis is down for everyone: connections stay, since
  moving them would serve no one and would make a storm of reconnections when Redis returns.
- When Redis answers again, the node stops handing over and takes sessions at once.
"""

from __future__ import annotations

import json
import logging
import random
import time
from collections.abc import Callable
from typing import Any

import urllib3

log = logging.getLogger("service")
CHECK_EVERY_S = 0.5
ASK_PEERS = 3  # at most this many other nodes are asked, chosen at random
PEER_TIMEOUT = urllib3.Timeout(connect=1.0, read=1.0)


class PeerView:
    """Whether other nodes reach Redis, asked over HTTP (their /readyz body's `redis.up`)."""

    def __init__(self, own_name: str):
        self.own_name = own_name
        self.http = urllib3.PoolManager(num_pools=8, maxsize=1, retries=False,
                                        timeout=PEER_TIMEOUT)

    def reaches_redis(self, urls: dict[str, str]) -> str | None:
        """The name of a live node that says it reaches Redis, or None."""
        others = [(name, url) for name, url in urls.items() if name != self.own_name]
        for name, url in random.sample(others, min(ASK_PEERS, len(others))):
            try:
                answer = self.http.request("GET", f"{url}/readyz")
                body = json.loads(answer.data)
            except (urllib3.exceptions.HTTPError, ValueError, OSError):
                continue
            if isinstance(body, dict) and isinstance(body.get("redis"), dict) and body[
                    "redis"].get("up") is True:
                return name
        return None


class CutOff:
    """The decision, checked every few tenths of a second by the node (`check`)."""

    def __init__(self, node_name: str, grace_s: float, down_for: Callable[[], float],
                 peer_urls: Callable[[], dict[str, str]], hand_over: Callable[[], int],
                 peers: PeerView | Any = None):
        self.node_name = node_name
        self.grace_s = grace_s
        self.down_for = down_for  # seconds Redis has been unreachable from here
        self.peer_urls = peer_urls  # the live nodes' URLs as of the last heartbeat
        self.hand_over = hand_over  # ends this node's connections (spread); how many
        self.peers = peers or PeerView(node_name)
        self.active = False  # handing over, or done and waiting for Redis
        self.handed_over = 0

    def check(self) -> None:
        down = self.down_for()
        if down == 0.0:
            if self.active:
                log.info("node=%s reaches redis again: taking sessions again", self.node_name)
            self.active = False
            return
        if down < self.grace_s:
            return
        if not self.active:
            healthy = self.peers.reaches_redis(self.peer_urls())
            if healthy is None:
                return  # Redis is down for everyone, or no one else is there: keep the clients
            log.error("node=%s has not reached redis for %.1f s while %s does: handing its "
                      "connections over to the other nodes", self.node_name, down, healthy)
            self.active = True
        ended = self.hand_over()  # what connected meanwhile, too
        if ended:
            self.handed_over += ended
            log.info("node=%s handed %d connections over", self.node_name, ended)

    def forever(self, closed: Callable[[], bool]) -> None:
        while not closed():
            try:
                self.check()
            except Exception:
                log.exception("node=%s could not check whether it is cut off", self.node_name)
            time.sleep(CHECK_EVERY_S)
