"""python-socketio's RedisManager, extended for this cluster.

- Its connections carry a client name, so readiness can ask Redis itself whether this node's
  subscription is live (`Store.subscriber_count`).
- When Redis goes away it resubscribes every RESUBSCRIBE_EVERY_S seconds, not with upstream's
  backoff growing to 60 s, so a node is serving again within seconds of Redis coming back.
- A connection that is joining a room with `since` gets no live `message` for that room until its
  join is answered: live messages are held back, those already in the answer's `missed` dropped,
  and the rest delivered after the answer, so a resuming client sees every message exactly once
  and in id order.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import Any

import socketio

from .store import parse_id, socketio_room

RESUBSCRIBE_EVERY_S = 1.0
log = logging.getLogger("service.queue")


class ClusterManager(socketio.RedisManager):
    def __init__(self, url: str, channel: str, node: str):
        self.node = node
        self.client_name = f"{node}:queue"
        super().__init__(url, channel=channel, logger=log,
                         redis_options={"client_name": self.client_name})
        self._held: dict[str, dict[str, list[dict[str, Any]]]] = {}  # socketio room -> sid -> held

    def _redis_listen_with_retries(self) -> Iterator[dict[str, Any]]:
        subscribed = False
        failures = 0
        while True:
            try:
                if not subscribed:
                    self._redis_connect()
                    self.pubsub.subscribe(self.channel)
                    subscribed = True
                    if failures:
                        log.info("node=%s resubscribed to the message queue", self.node)
                    failures = 0
                yield from self.pubsub.listen()
            except Exception as exc:  # any failure means: connect again
                if failures == 0:
                    log.error("node=%s lost the message queue (%s); resubscribing every %.0f s",
                              self.node, exc.__class__.__name__, RESUBSCRIBE_EVERY_S)
                failures += 1
                subscribed = False
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
        floor = parse_id(after_id) if after_id else (-1, -1)
        for message in held:
            if parse_id(message["id"]) > floor:
                socketio.Manager.emit(self, "message", message, namespace="/", room=sid)

    def forget(self, sid: str) -> None:
        """Drop everything held for a connection that went away."""
        for key in [key for key, sids in self._held.items() if sid in sids]:
            self._held[key].pop(sid, None)
            if not self._held[key]:
                del self._held[key]

    def _handle_emit(self, message: dict[str, Any]) -> None:
        held_by_sid = self._held and message.get("event") == "message" and self._held.get(
            message.get("room")  # type: ignore[arg-type] - room messages name one room
        )
        if held_by_sid:
            for held in held_by_sid.values():
                held.append(message["data"][0])
            message = {**message, "skip_sid": list(held_by_sid)}
        super()._handle_emit(message)
