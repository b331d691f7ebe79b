"""The bus's channels: one per room, one per user, one for every connection, one per node.

A node subscribes to a room's channel while it holds a connection that joined the room, and to a
user's channel while it holds a connection of that user; the broadcast channel always. Each
channel delivers to one Socket.IO room of the node (`local_room`), and the stored messages of a
room or user channel can be replayed from its stream. A node's canary channel carries only the
delivery canaries (bus/canary.py), never an event for connections.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..store import keys

ROOM, USER, ALL, CANARY = "room", "user", "all", "canary"
ROOM_PREFIX, USER_PREFIX = "r:", "u:"  # of Socket.IO rooms, so none equals a sid or another's


def socketio_room(room: str) -> str:
    """The Socket.IO room of a chat room."""
    return ROOM_PREFIX + room


def user_room(user: str) -> str:
    """The Socket.IO room that holds every connection of a user on this node."""
    return USER_PREFIX + user


@dataclass(frozen=True, slots=True)
class Channel:
    name: str  # the Redis shard channel
    kind: str  # ROOM, USER or ALL
    target: str  # the room or user name; "" for ALL

    @property
    def local_room(self) -> str | None:
        """The Socket.IO room this channel's events go to; None: every connection."""
        if self.kind == ROOM:
            return socketio_room(self.target)
        if self.kind == USER:
            return user_room(self.target)
        return None

    @property
    def replayable(self) -> bool:
        """Whether stored messages on it can be read back (a room's log, a user's inbox)."""
        return self.kind in (ROOM, USER)


def room(name: str) -> Channel:
    return Channel(keys.room_channel(name), ROOM, name)


def user(name: str) -> Channel:
    return Channel(keys.user_channel(name), USER, name)


def canary(node: str, shard: int = 0) -> Channel:
    return Channel(keys.canary_channel(node, shard), CANARY, node)


BROADCAST = Channel(keys.BROADCAST_CHANNEL, ALL, "")


def parse(name: str) -> Channel | None:
    """The channel of a Redis channel name, or None for a name that is not one of the bus's."""
    if name == BROADCAST.name:
        return BROADCAST
    target = keys.hash_tag(name)
    for kind, make in ((ROOM, keys.room_channel), (USER, keys.user_channel)):
        if name == make(target):
            return Channel(name, kind, target)
    return None
