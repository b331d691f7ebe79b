"""The delivery canary: proof that the bus delivers, not only that Redis lists a subscription.

A node subscribed in Redis's eyes can still hear nothing (a connection that stays open but
delivers nothing, a stalled reader: python-socketio's #1581, the Socket.IO Redis adapter's #446).
Every `interval_s` the node publishes a numbered canary on each of its own canary channels, one
per Redis master (so every bus connection it keeps carries one), and one on a peer's channel,
taking the live peers in turn; it records what it hears.

Guarantees
- `silent_for()` is the longest time since this node last heard its own canary on one of its
  channels (since the channel was first wanted, before the first). Past `deadline_s` the node is
  not ready (`deaf()`), and `to_reconnect()` names the silent channels, at most once per deadline
  each, so the bus drops the connection they travel on: every channel on it is subscribed again on
  a new connection and replays what its stream got meanwhile.
- Lag is the receiving node's clock minus the sender's at publishing: a peer's includes the skew
  between the two machines' clocks. A gap in one sender's numbers on one channel counts as lost
  canaries; a canary is numbered only once Redis took it, so a Redis outage is not loss.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Callable
from typing import Any

import redis

from ..errors import ServiceError
from . import channels
from .bus import Bus
from .channels import Channel

log = logging.getLogger("service.bus")
SELF, PEER = "self", "peer"
SHARD_SEARCH = 100_000  # tags tried to find a canary channel on each master (a few suffice)
Publish = Callable[[Channel, dict[str, Any]], None]  # a control frame on a channel


class Canary:
    def __init__(self, node: str, publish: Publish, peers: Callable[[], list[str]],
                 interval_s: float, deadline_s: float,
                 masters: Callable[[], list[Any]] = lambda: [None],
                 route: Callable[[str], Any] = lambda name: None,
                 clock: Callable[[], float] = time.time,
                 monotonic: Callable[[], float] = time.monotonic):
        self.node = node
        self.channel = channels.canary(node)  # where peers send theirs
        self.publish = publish
        self.peers = peers
        self.interval_s = interval_s
        self.deadline_s = deadline_s
        self.masters = masters  # the Redis masters now
        self.route = route  # channel name -> the master serving it
        self.clock = clock
        self.monotonic = monotonic
        self.sent = 0
        self.lag_s = {SELF: 0.0, PEER: 0.0}  # of the newest canary heard
        self.lost = {SELF: 0, PEER: 0}
        self.own: list[Channel] = []
        self._own_for: set[Any] = set()  # the masters `own` was chosen for
        self.heard_at: dict[str, float] = {}  # own channel -> when its canary was last heard
        self.reconnected_at: dict[str, float] = {}
        self.numbers: dict[str, itertools.count[int]] = {}  # target channel -> next number
        self.last_heard: dict[str, int] = {}  # "sender|channel" -> newest number heard
        self._peer_turn = 0
        self.own_channels()

    # ---- where ------------------------------------------------------------------------------

    def own_channels(self) -> list[Channel]:
        """This node's canary channels: one on each Redis master (chosen again when the masters
        change)."""
        masters = set(self.masters())
        if masters == self._own_for and self.own:
            return self.own
        found: dict[Any, Channel] = {}
        for shard in range(SHARD_SEARCH):
            channel = channels.canary(self.node, shard)
            found.setdefault(self.route(channel.name), channel)
            if masters <= found.keys():
                break
        self.own = [found[master] for master in sorted(masters, key=str) if master in found]
        self._own_for = masters
        now = self.monotonic()
        names = {channel.name for channel in self.own}
        self.heard_at = {name: self.heard_at.get(name, now) for name in names}
        return self.own

    # ---- sending --------------------------------------------------------------------------------

    def send(self) -> None:
        """One round: a canary on each of this node's channels, and one to the next live peer."""
        for channel in self.own:
            self._send_to(channel)
        peers = sorted(peer for peer in self.peers() if peer != self.node)
        if peers:
            self._peer_turn = (self._peer_turn + 1) % len(peers)
            self._send_to(channels.canary(peers[self._peer_turn]))

    def _send_to(self, channel: Channel) -> None:
        numbers = self.numbers.setdefault(channel.name, itertools.count(1))
        number = next(numbers)
        body = {"canary": {"from": self.node, "ch": channel.name, "n": number,
                           "ms": int(self.clock() * 1000)}}
        try:
            self.publish(channel, body)
        except ServiceError:
            self.numbers[channel.name] = itertools.count(number)  # not taken: reuse the number
            raise
        self.sent += 1

    # ---- hearing --------------------------------------------------------------------------------

    def heard(self, canary: Any) -> None:
        """A canary arrived on one of this node's channels (from the bus's control frames)."""
        if not isinstance(canary, dict):
            return
        sender, number, sent_ms = canary.get("from"), canary.get("n"), canary.get("ms")
        channel = canary.get("ch", self.channel.name)
        if not isinstance(sender, str) or not isinstance(channel, str) or not isinstance(
                number, int) or not isinstance(sent_ms, int | float):
            return
        source = SELF if sender == self.node else PEER
        key = f"{sender}|{channel}"
        previous = self.last_heard.get(key)
        if previous is not None and number > previous + 1:
            self.lost[source] += number - previous - 1
        if previous is None or number > previous:
            self.last_heard[key] = number
        self.lag_s[source] = max(0.0, self.clock() - sent_ms / 1000)
        if source == SELF and channel in self.heard_at:
            self.heard_at[channel] = self.monotonic()

    def forget_peers(self, live: set[str]) -> None:
        """Drop the numbering of peers that are no longer live (their names do not come back)."""
        keep = live | {self.node}
        targets = {channels.canary(name).name for name in keep} | set(self.heard_at)
        self.numbers = {name: count for name, count in self.numbers.items() if name in targets}
        self.last_heard = {key: number for key, number in self.last_heard.items()
                           if key.partition("|")[0] in keep}

    # ---- judging ---------------------------------------------------------------------------------

    def silent_for(self) -> float:
        now = self.monotonic()
        return max((now - heard for heard in self.heard_at.values()), default=0.0)

    def deaf(self) -> bool:
        return self.silent_for() > self.deadline_s

    def to_reconnect(self) -> list[Channel]:
        """Own channels silent past the deadline whose connection was not dropped within the
        last deadline."""
        now = self.monotonic()
        silent = []
        for channel in self.own:
            quiet = now - self.heard_at.get(channel.name, now) > self.deadline_s
            recent = now - self.reconnected_at.get(channel.name, -1e18) < self.deadline_s
            if quiet and not recent:
                self.reconnected_at[channel.name] = now
                silent.append(channel)
        return silent

    # ---- the loop --------------------------------------------------------------------------------

    def keep_listening(self, bus: Bus, closed: Callable[[], bool]) -> None:
        """Send the canary every `interval_s`; drop a bus connection that stays deaf."""
        while not closed():
            try:
                bus.keep(self.own_channels())
                self.send()
            except (ServiceError, redis.RedisError, OSError):
                pass  # Redis is down or its slot map unknown: readiness and the probe say so
            except Exception:
                log.exception("node=%s could not send the canary", self.node)
            if bus.ready()[0]:
                for channel in self.to_reconnect():
                    log.error("node=%s has not heard its own canary on %s for %.1f s although "
                              "Redis lists the subscription: that bus connection is deaf; "
                              "reconnecting it", self.node, channel.name, self.silent_for())
                    bus.reconnect(channel)
            time.sleep(self.interval_s)
