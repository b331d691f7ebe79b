"""Emit Socket.IO events to connections on every node, from a node or from any Python process.

What Flask-SocketIO's write-only `SocketIO(message_queue=...)` gives its users, for this
cluster's bus: a worker, a cron job or the application's own code publishes an event to a room,
a user or every connection, and each node that serves them delivers it to its connections.

    from service.bus.emitter import Emitter

    emitter = Emitter.connect("redis://:password@127.0.0.1:8079/0")   # or cluster_nodes=[...]
    emitter.to_room("lobby", "announcement", {"text": "maintenance at 18:00"})
    emitter.to_user("alice", "notice", {"text": "your export is ready"})
    emitter.to_all("reload", {"reason": "new version"})

Guarantees: at most once, like all pub/sub. These events are not stored; a connection that is
not connected when one is published never gets it. Chat messages that must survive belong in
the room's stream: `POST /api/rooms/{room}/messages` (or the `send` event) stores and delivers
them, in order, with missed-message recovery. Data must be JSON (no binary attachments). On a
Redis Cluster each channel is a shard channel, published on the master of its slot.
"""

from __future__ import annotations

from typing import Any

import redis
from redis.cluster import ClusterNode, RedisCluster

from ..primitives import bus_format
from ..primitives.names import ROOM_RULE, USER_RULE, is_room, is_user
from . import channels
from .channels import Channel

# Socket.IO's own events: a client library would treat them as its lifecycle
RESERVED_EVENTS = frozenset({"connect", "connect_error", "disconnect", "disconnecting",
                             "newListener", "removeListener"})


class Emitter:
    def __init__(self, client: Any):
        """`client`: a redis-py Redis or RedisCluster (a node passes its store's)."""
        self.client = client

    @classmethod
    def connect(cls, redis_url: str | None = None, *,
                cluster_nodes: list[tuple[str, int]] | None = None,
                password: str | None = None, username: str | None = None) -> Emitter:
        """An emitter for one Redis (`redis_url`) or a Redis Cluster (`cluster_nodes`)."""
        if cluster_nodes:
            return cls(RedisCluster(startup_nodes=[ClusterNode(h, p) for h, p in cluster_nodes],
                                    password=password, username=username))
        if redis_url is None:
            raise ValueError("give redis_url or cluster_nodes")
        return cls(redis.Redis.from_url(redis_url))

    def to_room(self, room: str, event: str, data: Any) -> None:
        self.emit(event, data, room=room)

    def to_user(self, user: str, event: str, data: Any) -> None:
        self.emit(event, data, user=user)

    def to_all(self, event: str, data: Any) -> None:
        self.emit(event, data)

    def emit(self, event: str, data: Any, *, room: str | None = None,
             user: str | None = None) -> None:
        """Publish `event` with `data` to a room's connections, a user's, or (neither) all.

        Raises ValueError for a bad event name, room or user, or data that is not JSON, and
        redis.RedisError when Redis does not take it."""
        if not isinstance(event, str) or not 1 <= len(event) <= 64 or event in RESERVED_EVENTS:
            raise ValueError(f"event must be a name of 1-64 characters, not one of Socket.IO's "
                             f"own ({', '.join(sorted(RESERVED_EVENTS))}): {event!r}")
        if room is not None and user is not None:
            raise ValueError("emit to a room or to a user, not both")
        if room is not None:
            if not is_room(room):
                raise ValueError(f"room must be {ROOM_RULE}, got {room!r}")
            channel = channels.room(room)
        elif user is not None:
            if not is_user(user):
                raise ValueError(f"user must be {USER_RULE}, got {user!r}")
            channel = channels.user(user)
        else:
            channel = channels.BROADCAST
        try:
            frame = bus_format.event(event, data)
        except TypeError as error:
            raise ValueError(f"data must be JSON: {error}") from None
        self.publish(channel, frame)

    def control(self, channel: Channel, body: dict[str, Any]) -> None:
        """A message for the nodes serving `channel` (primitives/bus_format.py, kind `c`)."""
        self.publish(channel, bus_format.control(body))

    def publish(self, channel: Channel, frame: bytes) -> None:
        self.client.spublish(channel.name, frame)

    def close(self) -> None:
        self.client.close()
