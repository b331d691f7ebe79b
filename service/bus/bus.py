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
from dataclasses import dataclass
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


@dataclass(eq=False)
class Subscription:
    """A channel this node serves, and where its subscription stands."""

    channel: Channel
    permanent: bool  # the broadcast and canary channels: served for as long as the node runs
    link: Link | None = None  # the link it is (being) subscribed on
    confirmed: bool = False  # Redis confirmed the subscription on `link`
    lost_at: float | None = None  # when its subscription was lost: the repair restores it
    delivered: str | None = None  # the newest stored id delivered here
    waiter: threading.Event | None = None  # set when confirmed, for `subscribe` to return


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
        self.served: dict[str, Subscription] = {}
        self._by_bytes: dict[bytes, Subscription] = {}  # the same, by the name Redis sends
        self.links: dict[Address, Link] = {}
        self._serve(channels.BROADCAST, permanent=True)
        self._serve(channels.canary(node), permanent=True)
        self.unknown_frames = 0
        # (stored id or None, connections reached) after each frame delivered: the metrics
        self.on_delivered: Callable[[str | None, int], None] | None = None
        self.replayed = 0
        self.resubscribes = 0
        self.connect_failures = 0  # links in a row that could not connect
        self._repairing = False
        self.closed = False

    def _serve(self, channel: Channel, permanent: bool) -> Subscription:
        subscription = Subscription(channel, permanent)
        self.served[channel.name] = self._by_bytes[channel.name.encode()] = subscription
        return subscription

    def _forget(self, subscription: Subscription) -> Link | None:
        """Stop serving a channel (called holding the lock): the link to unsubscribe it on."""
        name = subscription.channel.name
        del self.served[name], self._by_bytes[name.encode()]
        return subscription.link

    # ---- life ------------------------------------------------------------------------------

    def start(self) -> None:
        """Subscribe the broadcast and canary channels; a Redis not there yet is retried."""
        with self._lock:
            now = time.time()
            for subscription in self.served.values():
                subscription.lost_at = now
        self._repair_soon()

    def ready(self) -> tuple[bool, str]:
        with self._lock:
            restoring = self.restoring()
            if restoring:
                return False, f"{restoring} bus subscriptions are being restored"
            if not all(subscription.confirmed for subscription in self.served.values()
                       if subscription.permanent):
                return False, "the bus is not subscribed yet"
        return True, "ready"

    def restoring(self) -> int:
        """How many subscriptions were lost and are not restored yet."""
        with self._lock:
            return sum(subscription.lost_at is not None for subscription in self.served.values())

    def keep(self, wanted: list[Channel]) -> None:
        """Keep `wanted` (the node's canary channels) subscribed for as long as the node runs,
        besides the broadcast channel; canary channels kept before and not wanted now are
        unsubscribed."""
        names = {channel.name for channel in wanted}
        dropped: list[tuple[Link, str]] = []
        with self._lock:
            if self.closed:
                return
            added = [channel for channel in wanted if channel.name not in self.served]
            for channel in added:
                self._serve(channel, permanent=True).lost_at = time.time()  # the repair does it
            for subscription in [subscription for name, subscription in self.served.items()
                                 if subscription.channel.kind == channels.CANARY
                                 and name not in names]:
                link = self._forget(subscription)
                if link is not None:
                    dropped.append((link, subscription.channel.name))
        for link, name in dropped:
            if not link.closed:
                link.unsubscribe([name])
        if added:
            self._repair_soon()

    def subscribed_by_kind(self) -> dict[str, int]:
        """How many channels are subscribed now, by kind (room, user, all, canary)."""
        counts = dict.fromkeys((channels.ROOM, channels.USER, channels.ALL, channels.CANARY), 0)
        with self._lock:
            for subscription in self.served.values():
                if subscription.confirmed:
                    counts[subscription.channel.kind] += 1
        return counts

    def reconnect(self, channel: Channel) -> bool:
        """Drop the connection `channel` is subscribed on, as if Redis had closed it: every
        channel on it is subscribed again on a new one and replayed (for a connection that
        stays open but delivers nothing). False if the channel is not subscribed on one."""
        with self._lock:
            subscription = self.served.get(channel.name)
            link = subscription.link if subscription is not None else None
        if link is None or link.closed:
            return False
        link.fail(ConnectionError("the connection delivered nothing"))
        return True

    def close(self) -> None:
        """Unsubscribe everything by closing the links; nothing is restored after this."""
        with self._lock:
            self.closed = True
            for subscription in self.served.values():
                subscription.lost_at = None
            links, self.links = list(self.links.values()), {}
        for link in links:
            link.close()

    # ---- channels served here ----------------------------------------------------------------

    def subscribe(self, channel: Channel) -> bool:
        """Serve `channel` on this node; returns when subscribed (True if it is new here).
        Raises ServiceError('unavailable') if Redis does not confirm it in time, at once when the
        channel's master is known to be unreachable. Subscribing a channel already served, or
        being subscribed, only waits for its confirmation."""
        with self._lock:
            subscription = self.served.get(channel.name)
            confirmed = subscription is not None and subscription.confirmed
        if not confirmed and not self._reachable(channel.name):
            raise ServiceError("unavailable", "this node cannot reach the message bus now, "
                               "try again")
        with self._lock:
            subscription = self.served.get(channel.name)
            new = subscription is None
            if subscription is None:
                subscription = self._serve(channel, permanent=False)
            if subscription.confirmed:
                return False
            waiter = subscription.waiter
            if waiter is None:
                waiter = subscription.waiter = threading.Event()
                if subscription.lost_at is None:
                    self._subscribe([subscription])
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
            subscription = self.served.get(channel.name)
            if subscription is None or subscription.permanent:
                return
            link = self._forget(subscription)
        if link is not None and not link.closed:
            link.unsubscribe([channel.name])

    def serves(self, channel: Channel) -> bool:
        return channel.name in self.served

    def start_from(self, channel: Channel, last_id: str | None) -> None:
        """Where live delivery on a channel new to this node starts: messages up to `last_id`
        were stored before it was served (if a subscription is lost, replay starts there)."""
        with self._lock:
            subscription = self.served.get(channel.name)
            if last_id and subscription is not None and subscription.delivered is None:
                subscription.delivered = last_id

    def _subscribe(self, subscriptions: list[Subscription]) -> None:
        """Queue SSUBSCRIBEs on the link of each channel's master (called holding the lock)."""
        by_address: dict[Address, list[Subscription]] = {}
        for subscription in subscriptions:
            address = self.topology.address_of(subscription.channel.name)
            by_address.setdefault(address, []).append(subscription)
        for address, batch in by_address.items():
            link = self.links.get(address)
            if link is None or link.closed:
                link = self.links[address] = Link(self.topology, address, self, self.spawn)
            for subscription in batch:
                subscription.link = link
            link.subscribe([subscription.channel.name for subscription in batch])

    # ---- what the links report ---------------------------------------------------------------

    def on_subscribed(self, link: Link, name: str) -> None:
        with self._lock:
            subscription = self.served.get(name)
            if subscription is None or subscription.link is not link:
                return
            self.connect_failures = 0
            subscription.confirmed = True
            lost_at, subscription.lost_at = subscription.lost_at, None
            waiter, subscription.waiter = subscription.waiter, None
        if lost_at is not None:
            try:
                self._replay(subscription, lost_at)
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
            names = [name for name, subscription in self.served.items()
                     if subscription.link is link]
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
                subscription = self.served.get(name)
                if subscription is None or subscription.link is not link:
                    continue
                subscription.link = None
                subscription.confirmed = False
                if subscription.lost_at is None:
                    subscription.lost_at = now
        self._repair_soon()

    def _repair_soon(self) -> None:
        with self._lock:
            if self._repairing or self.closed or not self.restoring():
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
                    lost = [subscription for subscription in self.served.values()
                            if subscription.lost_at is not None]
                    if not lost:
                        return
                    pending = [subscription for subscription in lost if subscription.link is None]
                if pending:
                    try:
                        self.topology.refresh()
                        with self._lock:
                            self._subscribe([subscription for subscription in pending
                                             if self.served.get(subscription.channel.name)
                                             is subscription and subscription.link is None])
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
        subscription = self._by_bytes.get(channel_name)
        if subscription is None:
            return
        try:
            frame = bus_format.decode(payload)
        except bus_format.UnknownFrame as exc:
            self.unknown_frames += 1
            if self.unknown_frames in (1, 10, 100) or self.unknown_frames % 1000 == 0:
                log.warning("node=%s dropped %d frames it cannot read on %s (%s)", self.node,
                            self.unknown_frames, subscription.channel.name, exc)
            return
        self._handle(subscription, frame)

    def handle(self, channel: Channel, frame: bus_format.Frame) -> None:
        """Deliver a frame to this node's connections of its channel (live or replayed); a
        channel not served here delivers nothing."""
        subscription = self.served.get(channel.name)
        if subscription is not None:
            self._handle(subscription, frame)

    def _handle(self, subscription: Subscription, frame: bus_format.Frame) -> None:
        if frame.kind == bus_format.CONTROL:
            self.on_control(frame.control())
            return
        skip = None
        if frame.skip:
            node, _, sid = frame.skip.partition("|")
            if node == self.node:
                skip = sid
        channel = subscription.channel
        stored_id = frame.stored_id
        if stored_id is not None and channel.replayable:
            newest = subscription.delivered
            if newest is not None and parse_id(stored_id) <= parse_id(newest):
                return
            subscription.delivered = stored_id
        reached = self.deliver(channel.local_room, frame.body, skip, stored_id)
        if self.on_delivered is not None:
            self.on_delivered(stored_id, reached or 0)

    # ---- recovery ------------------------------------------------------------------------------

    def _replay(self, subscription: Subscription, lost_at: float) -> None:
        """Deliver, in id order, what the channel's stream got after the last id delivered
        here."""
        channel = subscription.channel
        if not channel.replayable:
            return
        after = subscription.delivered or f"{max(0, int(lost_at * 1000) - 2000)}-0"
        replayed = 0
        while True:
            frames = self.replay(channel, after, REPLAY_PAGE)
            for payload in frames:
                frame = bus_format.decode(payload)
                self._handle(subscription, frame)
                after = frame.stored_id or after
            replayed += len(frames)
            if len(frames) < REPLAY_PAGE:
                break
        self.replayed += replayed
        if replayed:
            log.info("node=%s replayed %d messages of %s published while it was not subscribed",
                     self.node, replayed, channel.name)
