"""What the app's backend does to users (PROTOCOL.md, "Rooms your app controls"): add and remove
members, end a user's connections, on every node at once.

Guarantees
- Storage first: `remove_member` answers once the removal is stored (the user's sends to the room
  are refused from then on, on every node: bus/broker.py `remove_member`), then tells the nodes.
- The nodes are told with one control message on the user's channel, which every node holding a
  connection of the user serves (bus/channels.py); each acts on its own connections
  (namespace.py: `removed`, `disconnect_user`). Like every bus message it is at most once: a node
  whose subscription is down at that moment misses it, and then only the stored removal holds
  (the user's sends there are refused; it still receives the room's messages until it
  reconnects).
- Every change of membership made here is recorded by the store as a webhook `member` event, in
  the same step as the change (store/rules.py), when webhooks are on.
"""

from __future__ import annotations

from ..bus import channels
from ..bus.broker import Broker

REMOVED = "removed"  # control message: take a user's connections out of a room
DISCONNECT_USER = "disconnect_user"  # control message: end a user's connections
REMOVED_REASON = "the app removed you from this room"
DISCONNECTED_REASON = "the app ended this connection"


def add_member(broker: Broker, room: str, user: str) -> None:
    broker.add_member(room, user)


def remove_member(broker: Broker, room: str, user: str, reason: str = REMOVED_REASON) -> None:
    """Remove `user` from `room`: stored, then every connection of the user receives
    `removed {room, reason}` and leaves the room."""
    broker.remove_member(room, user)
    broker.control(channels.user(user), {REMOVED: {"user": user, "room": room,
                                                   "reason": reason}})


def disconnect_user(broker: Broker, user: str, reason: str = DISCONNECTED_REASON) -> None:
    """Every connection of `user` receives `expired {reason}` and is disconnected."""
    broker.control(channels.user(user), {DISCONNECT_USER: {"user": user, "reason": reason}})
