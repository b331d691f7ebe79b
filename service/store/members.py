"""Room membership and read positions: what a user has joined and read, on every device.

Guarantees
- `join` (presence.py, with `member`) makes a user a member of a room until it `leave`s, across
  connections, reloads and devices; a disconnect ends presence, never membership. The room
  keeps its members and their read positions in its own slot (`room:{name}:members`, `:read`),
  the user the list of its rooms in its own (`user:{name}:rooms`), written before and after the
  room's side on join (a leave on another device can run in between) and after it on leave, so
  the list never misses a room the user is a member of; `rooms` skips a listed room the user is
  no member of.
- With webhooks on, a user's first join of a room and the end of its membership are webhook
  events (`member joined`, and `left` or the app's `removed`), recorded by the script that makes
  the change (outbox.py).
- A read position never moves backwards and never past the room's newest message; moving it
  is one script (lua/read.lua), so two devices reading at once keep the later position.
- Unread counts are computed from the stored messages, never kept per device: the messages of
  others after the read position (or, never having read, after the room's newest message when
  the user joined). At most UNREAD_MAX messages are read for it; when more follow, the count is
  UNREAD_MAX ("1000 or more"). Every device, node and reload sees the same.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from ..errors import ServiceError
from . import keys
from .failures import redis_errors
from .outbox import ROOM, Outbox, Webhooks
from .scripts import Scripts

UNREAD_MAX = 1000  # unread counts stop here (a page shows 1000+)


class RoomState(NamedTuple):
    room: str
    unread: int
    last_id: str | None


class ReadMoved(NamedTuple):
    id: str | None  # the position now (None: nothing to read yet)
    moved: bool  # whether this call moved it (only then do other devices need to hear)


def read_answer(reply: list[Any], forbidden: str) -> ReadMoved:
    """lua/read.lua's reply as a ReadMoved; ServiceError('forbidden', `forbidden`) for a
    reader who is not a member."""
    status = reply[0]
    if status == "forbidden":
        raise ServiceError("forbidden", forbidden)
    if status == "empty":
        return ReadMoved(None, False)
    return ReadMoved(reply[1], status == "moved")


class Members:
    def __init__(self, client: Any, scripts: Scripts, webhooks: Webhooks | None = None):
        self.client = client
        self.scripts = scripts
        self.webhooks = webhooks or Webhooks(client, scripts, scripts.topology, "", None)

    def add(self, user: str, room: str) -> None:
        """List the room among the user's; the join script then makes it a member."""
        with redis_errors():
            self.scripts.bookkeeping("SADD", keys.user_rooms(user), room)

    def leave(self, room: str, user: str, action: str = "left") -> bool:
        """End the user's membership of the room, forget its read position there and its
        admission to send while the room is private (rules.py); whether it was a member. With
        webhooks on, a membership that ends is a `member` event with `action` (`left`, or
        `removed` when the app took the user out)."""
        with redis_errors():
            was, marked = self.scripts.run(
                "member_leave", [keys.room_members(room), keys.room_reads(room),
                                 keys.room_admitted(room), keys.room_webhook_events(room),
                                 keys.room_webhook_pending(room)],
                [user, "1" if self.webhooks.enabled else "0", action])
            self.client.srem(keys.user_rooms(user), room)
        self.webhooks.marked(Outbox(ROOM, room), marked)
        return bool(was)

    def unlist(self, user: str, room: str) -> None:
        """Take the room off the user's list (after the room's side ended the membership)."""
        with redis_errors():
            self.client.srem(keys.user_rooms(user), room)

    def is_member(self, room: str, user: str) -> bool:
        with redis_errors():
            return bool(self.client.hexists(keys.room_members(room), user))

    def rooms(self, user: str) -> list[RoomState]:
        """The rooms the user is a member of, by name, with unread counts and newest ids."""
        with redis_errors():
            names = sorted(self.client.smembers(keys.user_rooms(user)))
            states = []
            for room in names:
                reply = self.scripts.run(
                    "room_unread",
                    [keys.room_log(room), keys.room_members(room), keys.room_reads(room)],
                    [user, UNREAD_MAX])
                if reply:  # else a join that failed half-way: not a member
                    states.append(RoomState(room, int(reply[0]), reply[1] or None))
        return states

    def read(self, room: str, user: str, message_id: str) -> ReadMoved:
        """Move the user's read position in the room to `message_id` (clamped to the newest;
        never backwards). ServiceError('forbidden') if the user is not a member."""
        with redis_errors():
            reply = self.scripts.run(
                "read", [keys.room_log(room), keys.room_reads(room), keys.room_members(room)],
                [user, message_id, user, "", UNREAD_MAX])
        return read_answer(reply, f"join room {room} before marking it read")
