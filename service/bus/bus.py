"""The bus between nodes: a channel per room and per user, subscribed where they are served.

Guarantees (the anchors: Centrifuge's Redis broker, Socket.IO's sharded Redis adapter)
- Pub/sub is at most once. Durability comes from the streams: a room's messages and a user's
  inbox are stored and published in one atomic script (store/messages.py), so what a channel
  carries is what its stream holds, in the same order.
- A node subscribes to the channels it serves: the local membership (realtime/manager.py)
  subscribes a room's channel when its first local connection joins the room and unsubscribes it
  when the last one leaves, and a user's channel while it holds a connection of that user. It
  receives nothing for rooms and users it does not serve. `subscribe` returns only once Redis
  confirmed the subscription, so whatever is stored after that reaches the node live, and
  whatever was stored before is in the join's `missed`.
- Live order is stored order: every node, the publisher's included, delivers stored messages
  from its subscription, never locally first, and drops one whose id is not newer than the last
  it delivered on that channel (`deliver` gets each once, in id order).
- A lost subscription (the connection dropped, Redis restarted, CLIENT KILL, a master failed
  over, a slot moved and Redis sent `sunsubscribe`) is noticed, reported (`ready`), and repaired:
  the node reads the slot map again, subscribes every channel it still serves (batched), and for
  each, before any newer live message, replays from its stream what it missed after the last id
  it delivered there (the stream is read through `replay`, given by the store). Events that are
  not stored (presence, typing, emitted events) published while a subscription was down are
  lost: at most once.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import redis

from ..errors import ServiceError
from ..primitives import bus_format
from ..primitives.ids import parse_id
from ..store.topology import Address, Topology
from . import channels
from .channels import Channel
from .link import Link

SUBSCRIBE_TIMEOUT_S = 5.0
RESUBSCRIBE_EVERY_S = 1.0
REPLAY_PAGE = 500
log = logging.getLogger("service.bus")
# (local room, event args, the sid to skip or None, stored id or None) -> connections reached
Deliver = Callable[[str | None, bytes, str | None, str | None], int | None]
# (channel, after id, at most) -> the frames of what its stream holds after that id, oldest first
Replay = Callable[[Channel, str, int], list[bytes]]


class Bus:
    def __init__(self, node: str, topology: Topology, replay: Replay, deliver: Deliver,
                 on_control: Callable[[dict[str, Any]], None],
                 spawn: Callable[..., Any], sleep: Callable[[float], None],
                 reachable: Callable[[Address], bool] = lambda address: True):
        self.node = node
        self.reachable = reachable  # whether a master answers now (store/health.py)
        self.topology = topology
        self.replay = replay
        self.deliver = deliver
        self.on_control = on_control
        self.spawn = spawn
        self.sleep = sleep
        self._lock = threading.RLock()
        self.wanted: set[str] = set()  # channels subscribed for this node's connections
        # subscribed for as long as the node runs: every connection's, and the node's canary
        self.always = {channel.name: channel
                       for channel in (channels.BROADCAST, channels.canary(node))}
        self.known: dict[str, Channel] = dict(self.always)
        self.by_bytes: dict[bytes, Channel] = {name.encode(): channel
                                               for name, channel in self.always.items()}
        self.links: dict[Address, Link] = {}
        self.link_of: dict[str, Link] = {}  # channel -> the link it is (being) subscribed on
        self.subscribed: set[str] = set()  # confirmed
        self.waiters: dict[str, threading.Event] = {}
        self.lost: dict[str, float] = {}  # channel -> when its subscription was lost
        self.delivered: dict[str, str] = {}  # channel -> newest stored id delivered here
        self.unknown_frames = 0
        # (stored id or None, connections reached) after each frame delivered: the metrics
        self.on_delivered: Callable[[str | None, int], None] | None = None
        self.replayed = 0
        self.resubscribes = 0
        self.connect_failures = 0  # links in a row that could not connect
        self._repairing = False
        self.closed = False

    # ---- life ------------------------------------------------------------------------------

    def start(self) -> None:
        """Subscribe the broadcast and canary channels; a Redis not there yet is retried."""
        with self._lock:
            now = time.time()
            for name in self.always:
                self.lost[name] = now
        self._repair_soon()

    def ready(self) -> tuple[bool, str]:
        with self._lock:
            if self.lost:
                return False, f"{len(self.lost)} bus subscriptions are being restored"
            if not self.subscribed.issuperset(self.always):
                return False, "the bus is not subscribed yet"
        return True, "ready"

    def keep(self, wanted: list[Channel]) -> None:
        """Keep `wanted` (the node's canary channels) subscribed for as long as the node runs,
        besides the broadcast channel; canary channels kept before and not wanted now are
        unsubscribed."""
        names = {channel.name for channel in wanted}
        dropped: list[tuple[Link, str]] = []
        with self._lock:
            if self.closed:
                return
            added = [channel for channel in wanted if channel.name not in self.always]
            for channel in added:
                self.always[channel.name] = self.known[channel.name] = channel
                self.by_bytes[channel.name.encode()] = channel
                self.lost.setdefault(channel.name, time.time())  # the repair subscribes it
            for name in [name for name, channel in self.always.items()
                         if channel.kind == channels.CANARY and name not in names]:
                del self.always[name]
                self.lost.pop(name, None)
                self.subscribed.discard(name)
                link = self.link_of.pop(name, None)
                if link is not None:
                    dropped.append((link, name))
        for link, name in dropped:
            if not link.closed:
                link.unsubscribe([name])
        if added:
            self._repair_soon()

    def subscribed_by_kind(self) -> dict[str, int]:
        """How many channels are subscribed now, by kind (room, user, all, canary)."""
        counts = dict.fromkeys((channels.ROOM, channels.USER, channels.ALL, channels.CANARY), 0)
        with self._lock:
            for name in self.subscribed:
                channel = self.known.get(name)
                if channel is not None:
                    counts[channel.kind] += 1
        return counts

    def reconnect(self, channel: Channel) -> bool:
        """Drop the connection `channel` is subscribed on, as if Redis had closed it: every
        channel on it is subscribed again on a new one and replayed (for a connection that
        stays open but delivers nothing). False if the channel is not subscribed on one."""
        with self._lock:
            link = self.link_of.get(channel.name)
        if link is None or link.closed:
            return False
        link.fail(ConnectionError("the connection delivered nothing"))
        return True

    def close(self) -> None:
        """Unsubscribe everything by closing the links; nothing is restored after this."""
        with self._lock:
            self.closed = True
            self.lost.clear()
            links, self.links = list(self.links.values()), {}
        for link in links:
            link.close()

    # ---- channels served here ----------------------------------------------------------------

    def subscribe(self, channel: Channel) -> bool:
        """Serve `channel` on this node; returns when subscribed (True if it is new here).
        Raises ServiceError('unavailable') if Redis does not confirm it in time, at once when the
        channel's master is known to be unreachable. Subscribing a channel already wanted, or
        being subscribed, only waits for its confirmation."""
        if channel.name not in self.subscribed and not self._reachable(channel.name):
            raise ServiceError("unavailable", "this node cannot reach the message bus now, "
                               "try again")
        with self._lock:
            new = channel.name not in self.wanted
            self.wanted.add(channel.name)
            if channel.name not in self.known:
                self.known[channel.name] = channel
                self.by_bytes[channel.name.encode()] = channel
            if channel.name in self.subscribed:
                return False
            waiter = self.waiters.get(channel.name)
            if waiter is None:
                waiter = self.waiters[channel.name] = threading.Event()
                if channel.name not in self.lost:
                    self._subscribe([channel.name])
        if not waiter.wait(SUBSCRIBE_TIMEOUT_S):
            if new:
                self.unsubscribe(channel)
            raise ServiceError("unavailable", "the message bus did not confirm the subscription "
                               "in time, try again")
        return new

    def _reachable(self, name: str) -> bool:
        try:
            return self.reachable(self.topology.address_of(name))
        except redis.RedisError:  # the slot map is unknown: not known to be unreachable
            return True

    def unsubscribe(self, channel: Channel) -> None:
        """This node no longer serves `channel`."""
        with self._lock:
            if channel.name not in self.wanted:
                return
            self.wanted.discard(channel.name)
            self.delivered.pop(channel.name, None)
            self.lost.pop(channel.name, None)
            self.subscribed.discard(channel.name)
            link = self.link_of.pop(channel.name, None)
        if link is not None and not link.closed:
            link.unsubscribe([channel.name])

    def serves(self, channel: Channel) -> bool:
        return channel.name in self.wanted

    def start_from(self, channel: Channel, last_id: str | None) -> None:
        """Where live delivery on a channel new to this node starts: messages up to `last_id`
        were stored before it was served (if a subscription is lost, replay starts there)."""
        if last_id:
            self.delivered.setdefault(channel.name, last_id)

    def _wanted(self, name: str) -> bool:
        return name in self.always or name in self.wanted

    def _subscribe(self, names: list[str]) -> None:
        """Queue SSUBSCRIBEs on the link of each channel's master (called holding the lock)."""
        by_address: dict[Address, list[str]] = {}
        for name in names:
            by_address.setdefault(self.topology.address_of(name), []).append(name)
        for address, batch in by_address.items():
            link = self.links.get(address)
            if link is None or link.closed:
                link = self.links[address] = Link(self.topology, address, self, self.spawn)
            for name in batch:
                self.link_of[name] = link
            link.subscribe(batch)

    # ---- what the links report ---------------------------------------------------------------

    def on_subscribed(self, link: Link, name: str) -> None:
        with self._lock:
            if self.link_of.get(name) is not link or not self._wanted(name):
                return
            self.connect_failures = 0
            self.subscribed.add(name)
            lost_at = self.lost.pop(name, None)
            waiter = self.waiters.pop(name, None)
        if lost_at is not None:
            try:
                self._replay(name, lost_at)
            except (redis.RedisError, ServiceError) as exc:  # Redis went away again
                log.warning("node=%s could not replay %s yet (%s); subscribing again",
                            self.node, name, exc.__class__.__name__)
                link.close()
                return
        if waiter is not None:
            waiter.set()

    def on_unsubscribed(self, link: Link, name: str) -> None:
        return None  # `unsubscribe` already forgot it; a later subscribe subscribes again

    def on_refused(self, link: Link, name: str, error: str) -> None:
        log.warning("node=%s redis refused the subscription of %s: %s", self.node, name, error)
        self._lose([name], link)

    def on_dropped(self, link: Link, name: str) -> None:
        log.info("node=%s redis dropped %s (its slot moved); subscribing again", self.node, name)
        self._lose([name], link)

    def on_link_lost(self, link: Link, error: BaseException) -> None:
        with self._lock:
            if self.closed:
                return
            if self.links.get(link.address) is link:
                del self.links[link.address]
            names = [name for name, on in self.link_of.items() if on is link]
        if link.connection is None:  # it never connected: said once until a link connects
            self.connect_failures += 1
            if self.connect_failures == 1:
                log.error("node=%s cannot reach redis at %s:%d to restore %d bus channels (%s); "
                          "retrying every %.0f s", self.node, *link.address, len(names),
                          error.__class__.__name__, RESUBSCRIBE_EVERY_S)
        elif names:
            log.error("node=%s lost its bus connection to %s:%d (%s); %d channels to restore",
                      self.node, *link.address, error.__class__.__name__, len(names))
        self._lose(names, link)

    def _lose(self, names: list[str], link: Link) -> None:
        now = time.time()
        with self._lock:
            if self.closed:
                return
            for name in names:
                if self.link_of.get(name) is link:
                    del self.link_of[name]
                self.subscribed.discard(name)
                if self._wanted(name):
                    self.lost.setdefault(name, now)
        self._repair_soon()

    def _repair_soon(self) -> None:
        with self._lock:
            if self._repairing or not self.lost or self.closed:
                return
            self._repairing = True
        self.spawn(self._repair)

    def _repair(self) -> None:
        """Subscribe every lost channel again, every RESUBSCRIBE_EVERY_S until all are back."""
        failures = 0
        try:
            while True:
                with self._lock:
                    if self.closed:
                        return
                    pending = [name for name in self.lost
                               if self._wanted(name) and name not in self.link_of]
                    for name in [name for name in self.lost if not self._wanted(name)]:
                        del self.lost[name]
                    if not self.lost:
                        return
                if pending:
                    try:
                        self.topology.refresh()
                        with self._lock:
                            self._subscribe(pending)
                        self.resubscribes += 1
                        failures = 0
                    except (redis.RedisError, OSError) as exc:
                        if failures == 0:
                            log.error("node=%s cannot reach redis to restore %d bus channels "
                                      "(%s); retrying every %.0f s", self.node, len(pending),
                                      exc.__class__.__name__, RESUBSCRIBE_EVERY_S)
                        failures += 1
                self.sleep(RESUBSCRIBE_EVERY_S)
        finally:
            with self._lock:
                self._repairing = False
            self._repair_soon()

    # ---- frames --------------------------------------------------------------------------------

    def on_frame(self, channel_name: bytes, payload: bytes) -> None:
        channel = self.by_bytes.get(channel_name)
        if channel is None:
            return
        try:
            frame = bus_format.decode(payload)
        except bus_format.UnknownFrame as exc:
            self.unknown_frames += 1
            if self.unknown_frames in (1, 10, 100) or self.unknown_frames % 1000 == 0:
                log.warning("node=%s dropped %d frames it cannot read on %s (%s)", self.node,
                            self.unknown_frames, channel.name, exc)
            return
        self.handle(channel, frame)

    def handle(self, channel: Channel, frame: bus_format.Frame) -> None:
        """Deliver a frame to this node's connections of its channel (live or replayed)."""
        if frame.kind == bus_format.CONTROL:
            self.on_control(frame.control())
            return
        skip = None
        if frame.skip:
            node, _, sid = frame.skip.partition("|")
            if node == self.node:
                skip = sid
        stored_id = frame.stored_id
        if stored_id is not None and channel.replayable:
            name = channel.name
            newest = self.delivered.get(name)
            if newest is not None and parse_id(stored_id) <= parse_id(newest):
                return
            self.delivered[name] = stored_id
        reached = self.deliver(channel.local_room, frame.body, skip, stored_id)
        if self.on_delivered is not None:
            self.on_delivered(stored_id, reached or 0)

    # ---- recovery ------------------------------------------------------------------------------

    def _replay(self, name: str, lost_at: float) -> None:
        """Deliver, in id order, what `name`'s stream got after the last id delivered here."""
        channel = self.known.get(name)
        if channel is None or not channel.replayable:
            return
        after = self.delivered.get(name) or f"{max(0, int(lost_at * 1000) - 2000)}-0"
        replayed = 0
        while True:
            frames = self.replay(channel, after, REPLAY_PAGE)
            for payload in frames:
                frame = bus_format.decode(payload)
                self.handle(channel, frame)
                after = frame.stored_id or after
            replayed += len(frames)
            if len(frames) < REPLAY_PAGE:
                break
        self.replayed += replayed
        if replayed:
            log.info("node=%s replayed %d messages of %s published while it was not subscribed",
                     self.node, replayed, name)
