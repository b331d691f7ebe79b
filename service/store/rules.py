"""Rooms the app controls: their rules, the members the app added, and who may send.

Guarantees
- Everything here lives in the room's slot (keys.py: `room:{name}:rules`, `:allowed`,
  `:admitted`, `:hook:<user>`), beside the room's stream, so the append that stores a user's
  message reads the rules in the same script (lua/append.lua): a rule, or a removal, that Redis
  took before a send applies to that send, on every node, with no node having to hear of it
  first. A public room pays one HMGET for it.
- A room is public unless a `PUT` made it private, or ROOMS_DEFAULT is private and no `PUT` made
  it public (`default_private`). Absent rules keep their value when others are set.
- A private room lets a user send while the user is admitted: added by the app, or admitted by a
  join (its token's `rooms` claim, or the join hook). Removing a member (`remove_member`) ends all
  of it in one step: added, admitted, membership and read position, the join hook's remembered
  answer; and refuses the user's sends until it joins again (a public room's too, so that a
  connection the removal has not reached yet cannot send).
- The writes are acknowledged after replicas like messages (ACK_REPLICAS), so a failover does
  not undo a removal that was answered.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from . import keys
from .failures import redis_errors
from .outbox import ROOM, Outbox, Webhooks
from .scripts import Scripts


class Rules(NamedTuple):
    private: bool
    read_only: bool


class Access(NamedTuple):
    """What one user may do in a room, as stored."""

    rules: Rules
    added: bool  # the app added the user as a member
    admitted: bool  # the user may send while the room is private
    hook_allowed: bool  # the join hook's `allow: true`, still remembered


def _flag(value: Any) -> str:
    return "" if value is None else ("1" if value else "0")


class RoomRules:
    def __init__(self, client: Any, scripts: Scripts, default_private: bool,
                 webhooks: Webhooks | None = None):
        self.client = client
        self.scripts = scripts
        self.default_private = default_private
        self.webhooks = webhooks or Webhooks(client, scripts, scripts.topology, "", None)

    def _rules(self, private: Any, read_only: Any) -> Rules:
        return Rules(self.default_private if private is None else private == "1",
                     read_only == "1")

    def get(self, room: str) -> Rules:
        with redis_errors():
            return self._rules(*self.client.hmget(keys.room_rules(room), "private",
                                                  "read_only"))

    def set(self, room: str, private: bool | None, read_only: bool | None) -> Rules:
        """Set the given rules (None keeps one as it is); the room's rules now."""
        if private is None and read_only is None:
            return self.get(room)
        with redis_errors():
            reply = self.scripts.run("rules", [keys.room_rules(room)],
                                     [_flag(private), _flag(read_only)], replicated=True)
        return self._rules(*reply)

    def access(self, room: str, user: str) -> Access:
        with redis_errors():
            private, read_only, added, admitted, hook_allowed = self.scripts.run(
                "access", [keys.room_rules(room), keys.room_allowed(room),
                           keys.room_admitted(room), keys.room_join_allowed(room, user)],
                [user])
        return Access(self._rules(private, read_only), bool(added), bool(admitted),
                      bool(hook_allowed))

    def _webhook(self, room: str) -> tuple[list[str], str]:
        """The room's webhook keys for a script that records a `member` event, and its flag."""
        return ([keys.room_webhook_events(room), keys.room_webhook_pending(room)],
                "1" if self.webhooks.enabled else "0")

    def add_member(self, room: str, user: str) -> bool:
        """The app adds `user` to the room; whether it was not added yet (with webhooks on, a
        `member` event `added` then, in the same step)."""
        webhook_keys, on = self._webhook(room)
        with redis_errors():
            added, marked = self.scripts.run(
                "member_add", [keys.room_allowed(room), keys.room_admitted(room), *webhook_keys],
                [user, on], replicated=True)
        self.webhooks.marked(Outbox(ROOM, room), marked)
        return bool(added)

    def remove_member(self, room: str, user: str) -> bool:
        """The room's side of removing `user` (the guarantees); whether it was added, admitted
        or a member (with webhooks on, a `member` event `removed` then, in the same step). The
        user's own list of rooms is the caller's (members.py)."""
        webhook_keys, on = self._webhook(room)
        with redis_errors():
            was, marked = self.scripts.run(
                "member_remove",
                [keys.room_allowed(room), keys.room_admitted(room),
                 keys.room_join_allowed(room, user), keys.room_members(room),
                 keys.room_reads(room), keys.room_rules(room), *webhook_keys],
                [user, on], replicated=True)
        self.webhooks.marked(Outbox(ROOM, room), marked)
        return bool(was)

    def remember_join(self, room: str, user: str, ttl_s: int) -> None:
        """Keep the join hook's `allow: true` for `user` in the room for `ttl_s` seconds."""
        with redis_errors():
            self.client.set(keys.room_join_allowed(room, user), "1", ex=ttl_s)
