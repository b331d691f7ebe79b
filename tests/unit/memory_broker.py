"""The Broker (service/bus/broker.py) in memory, one node's worth, for the handlers' unit tests:
fast, and exact about what each call promises. What it publishes goes to `deliver` (the node's
local membership, realtime/manager.py) when a channel is subscribed, as the bus would hand it
on; control messages go to `on_control`. Redis's own behaviour (replication, failover, slots)
is the Redis broker's and the cluster suites' to prove."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from service.bus import channels
from service.bus.channels import Channel
from service.errors import ServiceError
from service.primitives import bus_format
from service.primitives.ids import parse_id
from service.store.conversations import Conversation
from service.store.members import ReadMoved, RoomState
from service.store.messages import IDEMPOTENCY_S, RESUME_LIMIT, Resumed, Stored
from service.store.presence import Joined
from service.store.rules import Access, Rules

UNREAD_MAX = 1000


@dataclass
class Stream:
    entries: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    trimmed: str | None = None  # the newest id retention dropped

    def newest(self) -> str | None:
        return self.entries[-1][0] if self.entries else None


class MemoryBroker:
    def __init__(self, node: str, users: set[str], history_max: int = 10_000,
                 default_private: bool = False, *, app_users: bool = False):
        self.node = node
        self.default_private = default_private
        self.rules_: dict[str, dict[str, bool]] = {}  # room -> private, read_only as set
        self.added: dict[str, set[str]] = {}  # room -> users the app added
        self.admitted: dict[str, set[str]] = {}  # room -> users who may send while private
        self.removed: dict[str, set[str]] = {}  # room -> removed, not joined since
        self.hook_allowed: dict[tuple[str, str], float] = {}  # (room, user) -> until
        self.member_events: list[tuple[str, str, str]] = []  # (room, user, action)
        self.users = users  # the accounts that exist
        self.app_users = app_users  # app JWTs are on: any user name is a user
        self.history_max = history_max
        self.deliver: Callable[[str | None, bytes, str | None, str | None], Any] = (
            lambda *args: None)
        self.on_control: Callable[[dict[str, Any]], None] = lambda body: None
        self.rooms_: dict[str, Stream] = {}
        self.inboxes: dict[str, Stream] = {}
        self.talks: dict[tuple[str, str], Stream] = {}  # (owner, other) -> conversation
        self.sent: dict[tuple[Any, ...], tuple[Stored, float]] = {}  # idempotency records
        self.present_: dict[str, dict[str, str]] = {}  # room -> connection -> user
        self.members: dict[str, dict[str, str]] = {}  # room -> user -> joined after id
        self.user_rooms: dict[str, set[str]] = {}
        self.reads: dict[tuple[str, str], str] = {}  # (room or @other, user) -> id
        self.unread: dict[tuple[str, str], int] = {}  # (owner, other) -> count
        self.served: set[str] = set()
        self.started_from: dict[str, str | None] = {}
        self.sessions: dict[str, set[str]] = {}
        self.ended_sessions: set[str] = set()
        self._last_ms = 0
        self._seq = 0

    # ---- ids and streams ---------------------------------------------------------------------

    def _next_id(self) -> str:
        now = max(int(time.time() * 1000), self._last_ms)
        self._seq = self._seq + 1 if now == self._last_ms else 0
        self._last_ms = now
        return f"{now}-{self._seq}"

    def _append(self, stream: Stream, fields: dict[str, Any], message_id: str) -> None:
        stream.entries.append((message_id, fields))
        if len(stream.entries) > self.history_max:
            stream.trimmed = stream.entries.pop(0)[0]

    def _repeat(self, key: tuple[Any, ...]) -> Stored | None:
        record = self.sent.get(key)
        if record is not None and time.time() - record[1] < IDEMPOTENCY_S:
            return record[0]
        return None

    def _publish_stored(self, channel: Channel, name: str, data: dict[str, Any],
                        skip: str | None = None) -> None:
        if channel.name in self.served:
            frame = bus_format.decode(bus_format.stored_event(name, data, skip=skip))
            self.deliver(channel.local_room, frame.body, self._local(frame.skip),
                         frame.stored_id)

    def _local(self, skip: str | None) -> str | None:
        node, _, sid = (skip or "").partition("|")
        return sid if node == self.node else None

    # ---- messages ----------------------------------------------------------------------------

    def publish(self, room: str, user: str, text: str, client_id: str | None, *,
                enforce_rules: bool = False) -> Stored:
        key = ("room", room, user, client_id)
        if client_id is not None and (first := self._repeat(key)):
            return first
        if enforce_rules:
            rules = self.rules(room)
            if user in self.removed.get(room, set()):
                raise ServiceError("forbidden", f"you were removed from room {room}")
            if rules.read_only:
                raise ServiceError("forbidden", f"room {room} is read-only")
            if rules.private and user not in self.admitted.get(room, set()):
                raise ServiceError("forbidden", f"room {room} is private and you are not a "
                                   "member")
        message_id = self._next_id()
        data = {"id": message_id, "room": room, "user": user, "text": text,
                "ts": parse_id(message_id)[0], "node": self.node}
        if client_id is not None:
            data["client_id"] = client_id
        self._append(self.rooms_.setdefault(room, Stream()), data, message_id)
        stored = Stored(message_id, parse_id(message_id)[0])
        if client_id is not None:
            self.sent[key] = (stored, time.time())
        self._publish_stored(channels.room(room), "message", data)
        return stored

    def direct(self, sender: str, recipient: str, text: str, client_id: str | None,
               connection: str) -> Stored:
        if not self.app_users and recipient not in self.users:
            raise ServiceError("not_found", f"no user named {recipient}")
        key = ("direct", sender, recipient, client_id)
        if client_id is not None and (first := self._repeat(key)):
            return first
        message_id = self._next_id()
        data = {"id": message_id, "from": sender, "to": recipient, "text": text,
                "ts": parse_id(message_id)[0], "node": self.node}
        if client_id is not None:
            data["client_id"] = client_id
        owners = [recipient] if sender == recipient else [recipient, sender]
        for owner in owners:
            other = sender if owner == recipient else recipient
            self._append(self.inboxes.setdefault(owner, Stream()), data, message_id)
            self._append(self.talks.setdefault((owner, other), Stream()), data, message_id)
            if owner != sender:
                self.unread[(owner, other)] = self.unread.get((owner, other), 0) + 1
            skip = connection if owner == sender else None
            self._publish_stored(channels.user(owner), "direct", data, skip)
        stored = Stored(message_id, parse_id(message_id)[0])
        if client_id is not None:
            self.sent[key] = (stored, time.time())
        return stored

    def find_sent(self, room: str, user: str, client_id: str) -> Stored | None:
        return self._repeat(("room", room, user, client_id))

    def find_direct(self, sender: str, recipient: str, client_id: str) -> Stored | None:
        return self._repeat(("direct", sender, recipient, client_id))

    def direct_from_app(self, recipient: str, text: str, client_id: str | None) -> Stored:
        if recipient not in self.users:
            raise ServiceError("not_found", f"no user named {recipient}")
        key = ("direct", "api", recipient, client_id)
        if client_id is not None and (first := self._repeat(key)):
            return first
        message_id = self._next_id()
        data = {"id": message_id, "from": "api", "to": recipient, "text": text,
                "ts": parse_id(message_id)[0], "node": self.node}
        if client_id is not None:
            data["client_id"] = client_id
        self._append(self.inboxes.setdefault(recipient, Stream()), data, message_id)
        self._append(self.talks.setdefault((recipient, "api"), Stream()), data, message_id)
        self._publish_stored(channels.user(recipient), "direct", data)
        stored = Stored(message_id, parse_id(message_id)[0])
        if client_id is not None:
            self.sent[key] = (stored, time.time())
        return stored

    def history(self, room: str, before: str | None, limit: int) -> list[dict[str, Any]]:
        entries = self.rooms_.get(room, Stream()).entries
        if before is not None:
            entries = [e for e in entries if parse_id(e[0]) < parse_id(before)]
        return [data for _, data in entries[-limit:]]

    def after(self, room: str, after: str | None, limit: int) -> list[dict[str, Any]]:
        if after is None:
            return self.history(room, None, limit)
        return [data for message_id, data in self.rooms_.get(room, Stream()).entries
                if parse_id(message_id) > parse_id(after)][:limit]

    def _resume(self, stream: Stream, since: str | None) -> Resumed:
        newest = stream.newest()
        if since is None:
            return Resumed([data for _, data in stream.entries[-RESUME_LIMIT:]], False, newest)
        after = [data for message_id, data in stream.entries
                 if parse_id(message_id) > parse_id(since)]
        truncated = ((stream.trimmed is not None
                      and parse_id(stream.trimmed) > parse_id(since))
                     or (newest is not None and parse_id(since) > parse_id(newest))
                     or len(after) > RESUME_LIMIT)
        return Resumed(after[-RESUME_LIMIT:], truncated, newest)

    def resume(self, room: str, since: str | None) -> Resumed:
        return self._resume(self.rooms_.get(room, Stream()), since)

    def inbox(self, user: str, since: str | None) -> Resumed:
        return self._resume(self.inboxes.get(user, Stream()), since)

    def last_inbox_id(self, user: str) -> str | None:
        return self.inboxes.get(user, Stream()).newest()

    # ---- subscriptions -----------------------------------------------------------------------

    def subscribe(self, channel: Channel) -> bool:
        new = channel.name not in self.served
        self.served.add(channel.name)
        return new

    def unsubscribe(self, channel: Channel) -> None:
        self.served.discard(channel.name)

    def start_from(self, channel: Channel, last_id: str | None) -> None:
        self.started_from.setdefault(channel.name, last_id)

    # ---- presence and membership -------------------------------------------------------------

    def join(self, room: str, user: str, connection: str, admission: str = "") -> Joined:
        if admission == "member" and user not in self.added.get(room, set()):
            raise ServiceError("forbidden", f"room {room} is private and you are not a member")
        if admission:
            self.admitted.setdefault(room, set()).add(user)
        self.removed.get(room, set()).discard(user)
        self.user_rooms.setdefault(user, set()).add(room)
        members = self.members.setdefault(room, {})
        new_member = user not in members
        if new_member:
            self.member_events.append((room, user, "joined"))
        members.setdefault(user, self.rooms_.get(room, Stream()).newest() or "0-0")
        present = self.present_.setdefault(room, {})
        first = user not in present.values()
        present[connection] = user
        if first:
            self.event(channels.room(room), "presence",
                       {"room": room, "user": user, "action": "join"}, None)
        return Joined(sorted(set(present.values())), self.reads.get((room, user)), new_member)

    def leave(self, room: str, user: str, connection: str) -> None:
        present = self.present_.get(room, {})
        if present.pop(connection, None) is not None and user not in present.values():
            self.event(channels.room(room), "presence",
                       {"room": room, "user": user, "action": "leave"}, None)

    def present(self, room: str) -> list[str]:
        return sorted(set(self.present_.get(room, {}).values()))

    def end_membership(self, room: str, user: str) -> bool:
        self.admitted.get(room, set()).discard(user)
        was = self.members.get(room, {}).pop(user, None) is not None
        self.reads.pop((room, user), None)
        self.user_rooms.get(user, set()).discard(room)
        if was:
            self.member_events.append((room, user, "left"))
        return was

    def rooms(self, user: str) -> list[RoomState]:
        states = []
        for room in sorted(self.user_rooms.get(user, set())):
            joined_after = self.members.get(room, {}).get(user)
            if joined_after is None:
                continue
            position = self.reads.get((room, user), joined_after)
            stream = self.rooms_.get(room, Stream())
            unread = sum(1 for message_id, data in stream.entries
                         if parse_id(message_id) > parse_id(position) and data["user"] != user)
            states.append(RoomState(room, min(unread, UNREAD_MAX), stream.newest()))
        return states

    def _move(self, key: tuple[str, str], stream: Stream, message_id: str) -> ReadMoved:
        newest = stream.newest()
        if newest is None:
            return ReadMoved(None, False)
        wanted = message_id if parse_id(message_id) <= parse_id(newest) else newest
        current = self.reads.get(key)
        if current is not None and parse_id(current) >= parse_id(wanted):
            return ReadMoved(current, False)
        self.reads[key] = wanted
        return ReadMoved(wanted, True)

    def read_room(self, room: str, user: str, message_id: str) -> ReadMoved:
        if user not in self.members.get(room, {}):
            raise ServiceError("forbidden", f"join room {room} before marking it read")
        return self._move((room, user), self.rooms_.get(room, Stream()), message_id)

    # ---- rooms the app controls -------------------------------------------------------------

    def rules(self, room: str) -> Rules:
        rules = self.rules_.get(room, {})
        return Rules(rules.get("private", self.default_private), rules.get("read_only", False))

    def set_rules(self, room: str, private: bool | None, read_only: bool | None) -> Rules:
        rules = self.rules_.setdefault(room, {})
        for name, value in (("private", private), ("read_only", read_only)):
            if value is not None:
                rules[name] = value
        return self.rules(room)

    def access(self, room: str, user: str) -> Access:
        return Access(self.rules(room), user in self.added.get(room, set()),
                      user in self.admitted.get(room, set()),
                      self.hook_allowed.get((room, user), 0) > time.monotonic())

    def add_member(self, room: str, user: str) -> None:
        if user not in self.added.get(room, set()):
            self.member_events.append((room, user, "added"))
        self.added.setdefault(room, set()).add(user)
        self.admitted.setdefault(room, set()).add(user)

    def remove_member(self, room: str, user: str) -> None:
        was = (user in self.added.get(room, set()) or user in self.admitted.get(room, set())
               or user in self.members.get(room, {}))
        self.added.get(room, set()).discard(user)
        self.admitted.get(room, set()).discard(user)
        self.hook_allowed.pop((room, user), None)
        self.members.get(room, {}).pop(user, None)
        self.reads.pop((room, user), None)
        self.user_rooms.get(user, set()).discard(room)
        if was:
            self.removed.setdefault(room, set()).add(user)
            self.member_events.append((room, user, "removed"))

    def remember_join(self, room: str, user: str, ttl_s: int) -> None:
        self.hook_allowed[(room, user)] = time.monotonic() + ttl_s

    # ---- conversations -----------------------------------------------------------------------

    def _known(self, user: str) -> None:
        if not self.app_users and user not in self.users:
            raise ServiceError("not_found", f"no user named {user}")

    def conversation(self, owner: str, other: str, before: str | None,
                     limit: int) -> list[dict[str, Any]]:
        self._known(other)
        entries = self.talks.get((owner, other), Stream()).entries
        if before is not None:
            entries = [e for e in entries if parse_id(e[0]) < parse_id(before)]
        return [data for _, data in entries[-limit:]]

    def conversations(self, owner: str) -> list[Conversation]:
        talks = [(stream.newest(), other) for (who, other), stream in self.talks.items()
                 if who == owner and stream.entries]
        talks.sort(key=lambda item: parse_id(item[0] or "0-0"), reverse=True)
        return [Conversation(other, self.talks[(owner, other)].entries[-1][1],
                             self.unread.get((owner, other), 0)) for _, other in talks]

    def read_conversation(self, owner: str, other: str, message_id: str) -> ReadMoved:
        self._known(other)
        stream = self.talks.get((owner, other), Stream())
        moved = self._move(("@" + other, owner), stream, message_id)
        if moved.id is not None:
            self.unread[(owner, other)] = sum(
                1 for entry_id, data in stream.entries
                if parse_id(entry_id) > parse_id(moved.id) and data["from"] != owner)
        return moved

    # ---- events ------------------------------------------------------------------------------

    def event(self, channel: Channel, name: str, data: dict[str, Any], skip: str | None) -> None:
        if channel.name in self.served:
            frame = bus_format.decode(bus_format.event(name, data, skip=skip))
            self.deliver(channel.local_room, frame.body, self._local(frame.skip), None)

    def control(self, channel: Channel, body: dict[str, Any]) -> None:
        if channel.name in self.served:
            self.on_control(body)

    # ---- browser sessions' sockets -----------------------------------------------------------

    def add_socket(self, session_id: str, socket: str) -> bool:
        if session_id in self.ended_sessions:
            return False
        self.sessions.setdefault(session_id, set()).add(socket)
        return True

    def remove_socket(self, session_id: str, socket: str) -> None:
        self.sessions.get(session_id, set()).discard(socket)
