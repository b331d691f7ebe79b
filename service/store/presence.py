"""Presence: who is in a room, across the cluster, per connection.

Guarantees
- A room's presence lives in its own slot (`room:{name}:conns`, `:users`) and changes with the
  announcement on the room's channel in one script, so a user's `join` is announced once, when
  its first connection arrives, and its `leave` once, when its last one goes.
- Each node records the rooms it holds presence in (`node:{name}:rooms`) before adding any, so
  whoever reaps the node (after it died, or itself after a restart) finds every entry it left.
- With webhooks on, each announced join and leave (and a user's first join of a room: `member
  joined`) is recorded as a webhook event by the same script (outbox.py).
"""

from __future__ import annotations

from typing import Any, NamedTuple

from ..errors import ServiceError
from ..primitives import bus_format
from . import keys
from .failures import redis_errors
from .outbox import ROOM, Outbox, Webhooks
from .scripts import Scripts


class Joined(NamedTuple):
    members: list[str]  # present in the room across the cluster, sorted
    read: str | None  # the user's last-read id in the room
    new_member: bool = False  # the user became a member with this join


class Presence:
    def __init__(self, client: Any, scripts: Scripts, node: str,
                 webhooks: Webhooks | None = None):
        self.client = client
        self.scripts = scripts
        self.node = node
        self.webhooks = webhooks or Webhooks(client, scripts, scripts.topology, node, None)

    def _field(self, sid: str) -> str:
        return f"{self.node}|{sid}"

    @staticmethod
    def _room_keys(room: str) -> list[str]:
        return [keys.room_connections(room), keys.room_users(room), keys.room_channel(room)]

    @staticmethod
    def _webhook_keys(room: str) -> list[str]:
        return [keys.room_webhook_events(room), keys.room_webhook_pending(room)]

    def _webhooks_on(self) -> str:
        return "1" if self.webhooks.enabled else "0"

    def join(self, room: str, user: str, sid: str, *, member: bool = False,
             admission: str = "") -> Joined:
        """Mark the connection present (announcing the user if new); with `member`, make the
        user a member of the room as well (members.py), in the same step. `admission` says how
        a private room admitted the user (lua/join.lua: `member`, `granted`; '' for a public
        room); a `member` the app no longer lists is refused (ServiceError('forbidden')) and
        nothing is done."""
        frame = bus_format.event("presence", {"room": room, "user": user, "action": "join"})
        with redis_errors():
            self.scripts.bookkeeping("SADD", keys.node_rooms(self.node), room)
            reply = self.scripts.run(
                "join", [*self._room_keys(room), keys.room_members(room), keys.room_reads(room),
                         keys.room_log(room), keys.room_rules(room), keys.room_allowed(room),
                         keys.room_admitted(room), *self._webhook_keys(room)],
                [self._field(sid), user, frame, "1" if member else "0", admission,
                 self._webhooks_on()])
        if reply == "forbidden":
            raise ServiceError("forbidden", f"room {room} is private and you are not a member")
        members, read, new_member, marked = reply
        self.webhooks.marked(Outbox(ROOM, room), marked)
        return Joined(sorted(members), read or None, bool(new_member))

    def leave(self, room: str, user: str, sid: str) -> None:
        """Remove the connection's presence; announces the user's leave with its last one."""
        frame = bus_format.event("presence", {"room": room, "user": user, "action": "leave"})
        with redis_errors():
            marked = self.scripts.run("leave", [*self._room_keys(room), *self._webhook_keys(room)],
                                      [self._field(sid), user, frame, self._webhooks_on()])
        self.webhooks.marked(Outbox(ROOM, room), marked)

    def members(self, room: str) -> list[str]:
        with redis_errors():
            return sorted(self.client.hkeys(keys.room_users(room)))

    def reap(self, node: str, room: str) -> int:
        """Forget every connection `node` had in `room`, announcing leaves; how many."""
        head, tail = bus_format.presence_template(room, "leave")
        with redis_errors():
            removed, marked = self.scripts.run(
                "reap_room", [*self._room_keys(room), *self._webhook_keys(room)],
                [f"{node}|", head, tail, self._webhooks_on()])
        self.webhooks.marked(Outbox(ROOM, room), marked)
        return int(removed)
