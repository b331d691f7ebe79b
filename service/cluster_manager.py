"""python-socketio's RedisManager, extended for this cluster.

- Its connections carry a client name, so readiness can ask Redis itself whether this node's
  subscription is live (`Store.subscriber_count`).
- When Redis goes away it resubscribes every RESUBSCRIBE_EVERY_S seconds, not with upstream's
  backoff growing to 60 s, so a node is serving again within seconds of Redis coming back.
- A connection that is joining a room with `since` gets no live `message` for that room until its
  join is answered: live messages are held back, those already in the answer's `missed` dropped,
  and the rest delivered after the answer; a message in `missed` that reaches the subscription
  only after the answer is not delivered again. So a resuming client sees every message exactly
  once and in id order.
- Nothing published while the subscription was down is silently lost: once resubscribed, and
  before any newer live message, every room and inbox with a connection on this node is replayed
  from the store after the newest id this node delivered there (or, for one it never delivered
  to, from RECOVERY_MARGIN_MS before the loss). Live messages at or below an id already delivered
  are dropped, so the replay and the live stream meet without duplicates.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator
from typing import Any

import socketio
from engineio import packet as eio_packet
from engineio.exceptions import SocketIsClosedError
from redis import exceptions as redis_exceptions

from . import fast_json
from .errors import ServiceError
from .store import Store, parse_id, socketio_room
from .subscription import Subscription

RESUBSCRIBE_EVERY_S = 1.0
RECOVERY_MARGIN_MS = 2000
RECOVERY_PAGE = 500
log = logging.getLogger("service.queue")


def as_list(skip_sid: Any) -> list[Any]:
    """python-socketio's `skip_sid` (None, one sid or a list) as a list."""
    return [] if skip_sid is None else skip_sid if isinstance(skip_sid, list) else [skip_sid]


class ClusterManager(socketio.RedisManager):
    def __init__(self, url: str, channel: str, node: str, store: Store,
                 redis_options: dict[str, Any] | None = None):
        self.node = node
        self.store = store
        self.client_name = f"{node}:queue"
        super().__init__(url, channel=channel, logger=log, json=fast_json,
                         redis_options={**(redis_options or {}), "client_name": self.client_name})
        self._held: dict[str, dict[str, list[dict[str, Any]]]] = {}  # socketio room -> sid -> held
        self._delivered: dict[str, str] = {}  # socketio room -> newest id this node delivered
        self._answered: dict[str, dict[str, str]] = {}  # socketio room -> sid -> newest id in join
        self._lost_at_ms: int | None = None

    def _listen(self) -> Iterator[bytes]:
        subscription: Subscription | None = None
        failures = 0
        while True:
            try:
                if subscription is None:
                    self._redis_connect()  # the client python-socketio publishes with
                    subscription = Subscription(self.redis, self.channel)
                    if self._lost_at_ms is not None:
                        self._recover_or_log(self._lost_at_ms)
                        self._lost_at_ms = None
                    failures = 0
                yield from subscription.payloads()
            except Exception as exc:  # any failure means: connect again
                if failures == 0:
                    log.error("node=%s lost the message queue (%s); resubscribing every %.0f s",
                              self.node, exc.__class__.__name__, RESUBSCRIBE_EVERY_S)
                if self._lost_at_ms is None:
                    self._lost_at_ms = int(time.time() * 1000)
                failures += 1
                if subscription is not None:
                    subscription.close()
                    subscription = None
                time.sleep(RESUBSCRIBE_EVERY_S)

    def hold(self, sid: str, room: str) -> None:
        """Start holding back live messages of `room` for `sid`."""
        self._held.setdefault(socketio_room(room), {})[sid] = []

    def release(self, sid: str, room: str, after_id: str | None) -> None:
        """Deliver what was held for `sid` in `room` above id `after_id`, then stop holding."""
        key = socketio_room(room)
        held_by_sid = self._held.get(key, {})
        held = held_by_sid.pop(sid, [])
        if not held_by_sid:
            self._held.pop(key, None)
        if after_id:
            self._answered.setdefault(key, {})[sid] = after_id
        floor = parse_id(after_id) if after_id else (-1, -1)
        for message in held:
            if parse_id(message["id"]) > floor:
                socketio.Manager.emit(self, "message", message, namespace="/", room=sid)

    def forget(self, sid: str) -> None:
        """Drop everything held or remembered for a connection that went away."""
        for table in (self._held, self._answered):
            for key in [key for key, sids in table.items() if sid in sids]:
                table[key].pop(sid, None)
                if not table[key]:
                    del table[key]

    def prune(self) -> None:
        """Forget delivery positions of rooms that no longer have a connection on this node."""
        live = self.rooms.get("/", {})
        for key in [key for key in self._delivered if key not in live]:
            del self._delivered[key]

    def _recover_or_log(self, lost_at_ms: int) -> None:
        """Recover; a Redis failure propagates (resubscribe and try again), a bug is logged."""
        try:
            replayed = self._recover(lost_at_ms)
        except (redis_exceptions.RedisError, ServiceError):
            raise  # Redis is away again (the store reports it as `unavailable`): resubscribe
        except Exception:
            log.exception("node=%s could not replay what it missed", self.node)
            return
        log.info("node=%s resubscribed to the message queue; replayed %d messages published "
                 "meanwhile", self.node, replayed)

    def _recover(self, lost_at_ms: int) -> int:
        """Replay, in id order, what this node's rooms and inboxes got while it was deaf."""
        fallback = f"{max(0, lost_at_ms - RECOVERY_MARGIN_MS)}-0"
        replayed = 0
        for key in list(self.rooms.get("/", {})):
            kind, _, name = key.partition(":") if isinstance(key, str) else ("", "", "")
            if kind not in ("r", "u") or not name:
                continue
            after = self._delivered.get(key, fallback)
            while True:
                if kind == "r":
                    batch = self.store.after(name, after, RECOVERY_PAGE)
                else:
                    batch = self.store.inbox_after(name, after, RECOVERY_PAGE)
                for message in batch:
                    self._handle_emit({
                        "method": "emit", "event": "message" if kind == "r" else "direct",
                        "data": [message], "namespace": "/", "room": key, "skip_sid": None,
                    })
                replayed += len(batch)
                if len(batch) < RECOVERY_PAGE:
                    break
                after = batch[-1]["id"]
        return replayed

    def _first_delivery(self, message: dict[str, Any]) -> bool:
        """Remember the newest id delivered per room or inbox; False for one already delivered."""
        event = message.get("event")
        if event not in ("message", "direct"):
            return True
        data = message["data"][0]
        key = message["room"] if event == "message" else "u:" + data["to"]
        newest = self._delivered.get(key)
        if newest is not None and parse_id(data["id"]) <= parse_id(newest):
            return False
        self._delivered[key] = data["id"]
        return True

    def _catching_up(self, room: str, data: dict[str, Any]) -> list[str]:
        """Connections of `room` that must not get this live message now: those held (it is kept
        for them) and those whose join answer already carried it (published before their join,
        it can reach this node's subscription after the answer)."""
        skip: list[str] = []
        held_by_sid = self._held.get(room)
        if held_by_sid:
            for held in held_by_sid.values():
                held.append(data)
            skip.extend(held_by_sid)
        answered = self._answered.get(room)
        if answered:
            position = parse_id(data["id"])
            for sid, upto in list(answered.items()):
                if position <= parse_id(upto):
                    skip.append(sid)
                else:  # every later message of the room is newer still
                    del answered[sid]
            if not answered:
                del self._answered[room]
        return skip

    def _handle_emit(self, message: dict[str, Any]) -> None:
        if not self._first_delivery(message):
            return
        if message.get("event") == "message" and (self._held or self._answered):
            skip = self._catching_up(message["room"], message["data"][0])
            if skip:
                message = {**message, "skip_sid": [*as_list(message.get("skip_sid")), *skip]}
        if message.get("callback") or message.get("binary") or message.get("namespace") != "/":
            super()._handle_emit(message)
        else:
            self._deliver(message["event"], message["data"], message.get("room"),
                          message.get("skip_sid"))

    def _deliver(self, event: str, data: list[Any], room: Any, skip_sid: Any) -> None:
        """python-socketio's broadcast, for the JSON events every node delivers all the time.

        Upstream builds a Socket.IO packet (scanning the payload for binary parts) and hands it
        to each recipient through three layers; here the packet is encoded once (text: these
        payloads come from JSON, so they hold nothing binary) and given straight to each
        recipient's Engine.IO socket, which writes it at once (fast_websocket.py).
        """
        if "/" not in self.rooms:
            return
        packet = eio_packet.Packet(eio_packet.MESSAGE, "2" + fast_json.dumps([event, *data]))
        skip = as_list(skip_sid)
        sockets = self.server.eio.sockets
        for sid, eio_sid in self.get_participants("/", room):
            if sid in skip:
                continue
            eio_socket = sockets.get(eio_sid)
            if eio_socket is not None and not eio_socket.closed:
                with contextlib.suppress(SocketIsClosedError):  # closing meanwhile: skip it only
                    eio_socket.send(packet)
