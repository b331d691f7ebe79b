"""The Broker on Redis: the store's streams and scripts, and the bus's sharded pub/sub.

Each call is the store's or the bus's, with the guarantees broker.py states; the store's
modules say how Redis keeps them (store/messages.py for order and acknowledgements, store/
presence.py, store/members.py, store/conversations.py), the bus how they travel (bus/bus.py).
"""

from __future__ import annotations

import logging
from typing import Any

from ..errors import ServiceError
from ..primitives import bus_format
from ..store.conversations import Conversation
from ..store.failures import redis_errors
from ..store.members import ReadMoved, RoomState
from ..store.messages import Resumed, Stored
from ..store.presence import Joined
from ..store.rules import Access, Rules
from ..store.store import Store
from .bus import Bus
from .channels import Channel
from .emitter import Emitter

log = logging.getLogger("service")


class RedisBroker:
    def __init__(self, store: Store, bus: Bus, emitter: Emitter):
        self.store = store
        self.bus = bus
        self.emitter = emitter
        self.pending_leaves: list[tuple[str, str, str]] = []  # (room, user, connection)

    # ---- messages ----------------------------------------------------------------------------

    def publish(self, room: str, user: str, text: str, client_id: str | None, *,
                enforce_rules: bool = False) -> Stored:
        return self.store.messages.publish(room, user, text, client_id,
                                           enforce_rules=enforce_rules)

    def find_sent(self, room: str, user: str, client_id: str) -> Stored | None:
        return self.store.messages.find_sent(room, user, client_id)

    def find_direct(self, sender: str, recipient: str, client_id: str) -> Stored | None:
        return self.store.messages.find_direct(sender, recipient, client_id)

    def direct_from_app(self, recipient: str, text: str, client_id: str | None) -> Stored:
        return self.store.messages.direct_from_app(recipient, text, client_id)

    def direct(self, sender: str, recipient: str, text: str, client_id: str | None,
               connection: str) -> Stored:
        return self.store.messages.direct(sender, recipient, text, client_id, connection)

    def history(self, room: str, before: str | None, limit: int) -> list[dict[str, Any]]:
        return self.store.messages.history(room, before, limit)

    def after(self, room: str, after: str | None, limit: int) -> list[dict[str, Any]]:
        return self.store.messages.after(room, after, limit)

    def resume(self, room: str, since: str | None) -> Resumed:
        return self.store.messages.resume_room(room, since)

    def inbox(self, user: str, since: str | None) -> Resumed:
        return self.store.conversations.inbox(user, since)

    def last_inbox_id(self, user: str) -> str | None:
        return self.store.messages.last_inbox_id(user)

    # ---- subscriptions -----------------------------------------------------------------------

    def subscribe(self, channel: Channel) -> bool:
        return self.bus.subscribe(channel)

    def unsubscribe(self, channel: Channel) -> None:
        self.bus.unsubscribe(channel)

    def start_from(self, channel: Channel, last_id: str | None) -> None:
        self.bus.start_from(channel, last_id)

    # ---- presence and membership -------------------------------------------------------------

    def join(self, room: str, user: str, connection: str, admission: str = "") -> Joined:
        members = self.store.members
        members.add(user, room)
        joined = self.store.presence.join(room, user, connection, member=True,
                                          admission=admission)
        members.add(user, room)  # again: a leave on another device can come in between
        return joined

    def leave(self, room: str, user: str, connection: str) -> None:
        try:
            self.store.presence.leave(room, user, connection)
        except ServiceError:
            self.pending_leaves.append((room, user, connection))

    def retry_leaves(self) -> None:
        """Do the leaves that storage could not take when they happened (the heartbeat calls
        this once Redis answers again); raises ServiceError while it still cannot."""
        while self.pending_leaves:
            room, user, connection = self.pending_leaves[0]
            self.store.presence.leave(room, user, connection)
            self.pending_leaves.pop(0)

    def present(self, room: str) -> list[str]:
        return self.store.presence.members(room)

    def end_membership(self, room: str, user: str) -> bool:
        return self.store.members.leave(room, user)

    def rooms(self, user: str) -> list[RoomState]:
        return self.store.members.rooms(user)

    def read_room(self, room: str, user: str, message_id: str) -> ReadMoved:
        return self.store.members.read(room, user, message_id)

    # ---- rooms the app controls -----------------------------------------------------------

    def rules(self, room: str) -> Rules:
        return self.store.rules.get(room)

    def set_rules(self, room: str, private: bool | None, read_only: bool | None) -> Rules:
        return self.store.rules.set(room, private, read_only)

    def access(self, room: str, user: str) -> Access:
        return self.store.rules.access(room, user)

    def add_member(self, room: str, user: str) -> None:
        self.store.rules.add_member(room, user)

    def remove_member(self, room: str, user: str) -> None:
        self.store.rules.remove_member(room, user)
        self.store.members.unlist(user, room)

    def remember_join(self, room: str, user: str, ttl_s: int) -> None:
        self.store.rules.remember_join(room, user, ttl_s)

    # ---- conversations -----------------------------------------------------------------------

    def conversation(self, owner: str, other: str, before: str | None,
                     limit: int) -> list[dict[str, Any]]:
        return self.store.conversations.history(owner, other, before, limit)

    def conversations(self, owner: str) -> list[Conversation]:
        return self.store.conversations.list(owner)

    def read_conversation(self, owner: str, other: str, message_id: str) -> ReadMoved:
        return self.store.conversations.read(owner, other, message_id)

    # ---- events ------------------------------------------------------------------------------

    def event(self, channel: Channel, name: str, data: dict[str, Any], skip: str | None) -> None:
        with redis_errors():
            self.emitter.publish(channel, bus_format.event(name, data, skip=skip))

    def control(self, channel: Channel, body: dict[str, Any]) -> None:
        with redis_errors():
            self.emitter.control(channel, body)

    # ---- browser sessions' sockets -----------------------------------------------------------

    def add_socket(self, session_id: str, socket: str) -> bool:
        return self.store.sessions.add_socket(session_id, socket)

    def remove_socket(self, session_id: str, socket: str) -> None:
        self.store.sessions.remove_socket(session_id, socket)
