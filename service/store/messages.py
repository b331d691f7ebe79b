"""Room messages and direct messages: stored in streams, published to the bus in the same step.

Guarantees
- Storing a message and publishing it to its channel is one script (lua/append.lua), so every
  node receives a room's (or an inbox's) messages in stored order, and a message whose id a
  client was given is in the stream.
- Ids are Redis stream ids, strictly increasing within a room or an inbox; `ts` is the
  millisecond part of the id, Redis's clock at storage time.
- Acknowledged means safe across a failover when `replicas` > 0 (ACK_REPLICAS): the call returns
  only after that many replicas have the message (scripts.py); otherwise it raises
  `unavailable`, and the message may or may not survive a failover that happens now.
- Retention keeps at least `history_max` messages per stream (up to 100 more, trimmed in
  batches). With webhooks on it also keeps every entry after the stream's webhook cursor that is
  younger than WEBHOOK_RETRY_S (undelivered: outbox.py), however many; an undelivered entry
  older than that may be trimmed, and is then counted as a dropped webhook event. A resuming
  reader is told `truncated` whenever messages after its position are gone: retention, a
  stream that was lost and started again, a failover that may have lost writes (the new
  master is the replica that took over from the one that wrote last), or a position newer than
  anything stored (lua/after.lua).
- Limit: a Redis that crashes and restarts by itself (no failover) with `appendfsync everysec`
  can lose the last second of writes, acknowledged ones included unless a replica confirmed
  them, and nothing in Redis records that it happened: a reader that resumes from before such a
  loss without having seen the lost messages is not told. Acknowledge after replicas
  (ACK_REPLICAS) with a failover (Redis Cluster, or Sentinel), or run `appendfsync always`.
- Sending twice is safe: a repeat of a client_id by the same user, to the same room (or the
  same recipient), within IDEMPOTENCY_S, is answered with the first id; nothing new is stored or
  published. The record lives in the stream's slot and is written by the same script.
  `find_sent` and `find_direct` read it, so that a retry is answered without asking the send hook
  again.
- A user's room message (`publish(..., enforce_rules=True)`) is stored only if the room's rules
  allow it when the script runs (rules.py): not read-only, not private unless the user is
  admitted, and the user not removed since it joined; else ServiceError('forbidden') and nothing
  is stored. The app's own posts (the HTTP API) skip the rules.
- A direct message goes to an account (its key is checked in the script that stores it) or,
  with `app_users`, to any user name: an app's users have no account here.
- A direct message from the app (`direct_from_app`, from `api`) is kept in the recipient's inbox
  only: `api` has no inbox.
- A direct message is kept in the recipient's inbox and in the sender's, and published on each
  user's channel; the sender's connection that sent it is skipped (its answer carries the id).
  Each copy has an id of its own inbox; the sender's takes the recipient's id whenever that is
  newer than the sender's inbox (so both see the same id, nearly always), else a new one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..errors import ServiceError
from ..primitives import bus_format
from ..primitives.ids import parse_id
from . import keys
from .failures import redis_errors
from .outbox import INBOX, ROOM, Outbox, Webhooks
from .payloads import direct_message, entry_fields, room_message
from .scripts import Scripts

RESUME_LIMIT = 500
IDEMPOTENCY_S = 600  # a repeated client_id is answered with the first id for this long
APP = "api"  # who the app's own messages are from (the HTTP API)
REFUSED = {  # why lua/append.lua refused a user's send -> what the user is told
    "removed": "you were removed from room {room}",
    "read_only": "room {room} is read-only",
    "private": "room {room} is private and you are not a member",
}


@dataclass(frozen=True)
class Stored:
    id: str
    ts: int


@dataclass(frozen=True)
class Resumed:
    """What a resuming reader gets: the newest RESUME_LIMIT messages after its position, oldest
    first, whether anything after it is missing from them, and the stream's newest id."""

    messages: list[dict[str, Any]]
    truncated: bool
    last_id: str | None


class Messages:
    def __init__(self, client: Any, scripts: Scripts, node: str, history_max: int,
                 default_private: bool = False, *, app_users: bool = False,
                 webhooks: Webhooks | None = None):
        self.client = client
        self.scripts = scripts
        self.node = node
        self.history_max = history_max
        self.app_users = app_users  # any user name is a recipient, not only accounts
        self.default_private = default_private  # ROOMS_DEFAULT: rules.py
        self.webhooks = webhooks or Webhooks(client, scripts, scripts.topology, node, None)

    def _append(self, stream: str, meta: str, channel: str, event: str, data: dict[str, Any],
                fields: list[str], client_id: str | None, sent_key: str | None,
                outbox: Outbox, *, webhook_event: bool = True, must_exist: str | None = None,
                skip: str | None = None, same_id_as: str | None = None,
                conversation: tuple[str, str] | None = None,
                rules_for: tuple[str, str] | None = None) -> tuple[Stored, bool] | None:
        """Run lua/append.lua; None when `must_exist` does not exist, else what was stored and
        whether it set `outbox`'s webhook marker (the caller then indexes it: outbox.py). With
        `same_id_as`, the entry takes that id if it is newer than the stream's newest (else a
        new one). With `conversation` (owner, other), it is copied into their conversation too.
        With `rules_for` (room, sender), the room's rules must allow the sender (else
        ServiceError('forbidden')). `webhook_event` False: with webhooks on, the entry is no
        event (retention still keeps the outbox's undelivered entries)."""
        if client_id is not None:
            data = {**data, "client_id": client_id}
            fields = [*fields, "c", client_id]
        idempotent = client_id is not None and sent_key is not None
        keys_ = [stream, meta, channel, must_exist or stream,
                 sent_key if idempotent and sent_key else stream]
        other, unread = "", "0"
        if conversation is not None:
            owner, other = conversation
            unread = "1" if data["from"] != owner else "0"
            keys_ += [keys.conversation(owner, other), keys.conversations(owner),
                      keys.conversation_unread(owner)]
        else:
            keys_ += [stream, stream, stream]
        sender = ""
        if rules_for is not None:
            room, sender = rules_for
            keys_ += [keys.room_rules(room), keys.room_admitted(room)]
        else:
            keys_ += [stream, stream]
        webhooks = self.webhooks
        flag = webhooks.flag(webhook_event)
        if flag == "0":
            keys_ += [stream, stream]
        else:
            _lease, webhook_hash, marker, *_streams = outbox.keys()
            keys_ += [marker, webhook_hash]
        pieces = bus_format.stored_template(event, data, skip=skip)
        with redis_errors():
            reply = self.scripts.run(
                "append", keys_,
                [self.history_max, "1" if must_exist else "0", "1" if idempotent else "0",
                 IDEMPOTENCY_S, same_id_as or "*", other, unread, *pieces, sender,
                 "1" if self.default_private else "0", flag, webhooks.retry_ms,
                 outbox.target if outbox.kind == INBOX else "", *fields],
                replicated=True)
        if not reply:
            return None
        message_id = reply[0]
        if message_id == "forbidden" and rules_for is not None:
            raise ServiceError("forbidden", REFUSED[reply[1]].format(room=rules_for[0]))
        return Stored(message_id, parse_id(message_id)[0]), bool(reply[2])

    def publish(self, room: str, user: str, text: str, client_id: str | None, *,
                enforce_rules: bool = False) -> Stored:
        """Store a room message and publish it on the room's channel, atomically; a repeat of a
        client_id (same user and room, within IDEMPOTENCY_S) answers the first id instead. With
        `enforce_rules` (a user's send), ServiceError('forbidden') when the room's rules refuse
        the user, and nothing is stored. With webhooks on, the room's outbox is marked in the same
        step and indexed after it."""
        sent = keys.room_sent(room, user, client_id) if client_id is not None else None
        outbox = Outbox(ROOM, room)
        appended = self._append(
            keys.room_log(room), keys.room_meta(room), keys.room_channel(room), "message",
            {"room": room, "user": user, "text": text, "node": self.node},
            ["u", user, "t", text, "n", self.node], client_id, sent, outbox,
            rules_for=(room, user) if enforce_rules else None)
        assert appended is not None
        stored, marked = appended
        self.webhooks.marked(outbox, marked)
        return stored

    def find_sent(self, room: str, user: str, client_id: str) -> Stored | None:
        """The answer a `send` of `client_id` by `user` to `room` already got, if it was stored
        within IDEMPOTENCY_S."""
        return self._sent(keys.room_sent(room, user, client_id))

    def find_direct(self, sender: str, recipient: str, client_id: str) -> Stored | None:
        """The answer a `direct` of `client_id` already got (the sender's copy, stored last)."""
        return self._sent(keys.inbox_sent(sender, sender, recipient, client_id))

    def _sent(self, key: str) -> Stored | None:
        with redis_errors():
            first = self.client.get(key)
        return None if first is None else Stored(first, parse_id(first)[0])

    def direct_from_app(self, recipient: str, text: str, client_id: str | None) -> Stored:
        """A direct message from the app (`api`) to `recipient`: kept in the recipient's inbox
        and its conversation with `api`, published on its channel. Idempotent by `client_id`
        like `direct`; ServiceError('not_found') for a recipient without an account, unless
        `app_users`."""
        data = {"from": APP, "to": recipient, "text": text, "node": self.node}
        outbox = Outbox(INBOX, recipient)
        appended = self._append(
            keys.inbox(recipient), keys.inbox_meta(recipient), keys.user_channel(recipient),
            "direct", data, ["f", APP, "to", recipient, "t", text, "n", self.node], client_id,
            keys.inbox_sent(recipient, APP, recipient, client_id) if client_id is not None
            else None, outbox,
            must_exist=None if self.app_users else keys.account(recipient),
            conversation=(recipient, APP))
        if appended is None:
            raise ServiceError("not_found", f"no user named {recipient}")
        stored, marked = appended
        self.webhooks.marked(outbox, marked)
        return stored

    def direct(self, sender: str, recipient: str, text: str, client_id: str | None,
               sender_connection: str) -> Stored:
        """Store a direct message in both inboxes and publish each copy on its user's channel;
        returns the sender's copy. A repeat of a client_id (same sender and recipient, within
        IDEMPOTENCY_S) stores nothing new and answers the first. Raises
        ServiceError('not_found') for a recipient without an account, unless `app_users`. With
        webhooks on, the recipient's copy is the event (its inbox's outbox is marked with it, and
        indexed after both)."""
        data = {"from": sender, "to": recipient, "text": text, "node": self.node}
        fields = ["f", sender, "to", recipient, "t", text, "n", self.node]
        sender_fields = [*fields, "x", sender_connection]  # replays skip that connection too

        def sent_key(owner: str) -> str | None:
            if client_id is None:
                return None
            return keys.inbox_sent(owner, sender, recipient, client_id)

        to_self = sender == recipient
        outbox = Outbox(INBOX, recipient)
        appended = self._append(
            keys.inbox(recipient), keys.inbox_meta(recipient), keys.user_channel(recipient),
            "direct", data, sender_fields if to_self else fields, client_id, sent_key(recipient),
            outbox, must_exist=None if self.app_users else keys.account(recipient),
            skip=sender_connection if to_self else None, conversation=(recipient, sender))
        if appended is None:
            raise ServiceError("not_found", f"no user named {recipient}")
        received, marked = appended
        try:
            if to_self:
                return received
            # the same id in both inboxes whenever the sender's allows it (nearly always)
            copied = self._append(
                keys.inbox(sender), keys.inbox_meta(sender), keys.user_channel(sender), "direct",
                data, sender_fields, client_id, sent_key(sender), Outbox(INBOX, sender),
                webhook_event=False, skip=sender_connection, same_id_as=received.id,
                conversation=(sender, recipient))
            assert copied is not None
            return copied[0]
        finally:
            self.webhooks.marked(outbox, marked)

    def history(self, room: str, before: str | None, limit: int) -> list[dict[str, Any]]:
        """The newest `limit` messages before id `before` (exclusive), oldest first."""
        if before == "0-0":
            return []  # nothing is before the first id (and `(0-0` is no bound to Redis)
        newest = "(" + before if before else "+"
        with redis_errors():
            entries = self.client.xrevrange(keys.room_log(room), newest, "-", count=limit)
        return [room_message(room, entry) for entry in reversed(entries)]

    def after(self, room: str, after: str | None, limit: int) -> list[dict[str, Any]]:
        """Messages after id `after` (exclusive), oldest first; without `after`, the newest."""
        if after is None:
            return self.history(room, None, limit)
        with redis_errors():
            entries = self.client.xrange(keys.room_log(room), "(" + after, "+", count=limit)
        return [room_message(room, entry) for entry in entries]

    def frames_after(self, kind: str, target: str, after: str, limit: int) -> list[bytes]:
        """The frames of a room's (`kind` "room") or a user's inbox ("user") messages after id
        `after`, oldest first, as their scripts published them: for replaying to a node."""
        if kind == "room":
            with redis_errors():
                entries = self.client.xrange(keys.room_log(target), "(" + after, "+",
                                             count=limit)
            return [bus_format.stored_event("message", room_message(target, entry))
                    for entry in entries]
        with redis_errors():
            entries = self.client.xrange(keys.inbox(target), "(" + after, "+", count=limit)
        return [bus_format.stored_event("direct", direct_message(entry),
                                     skip=entry_fields(entry)[1].get("x")) for entry in entries]

    def resume_room(self, room: str, since: str | None) -> Resumed:
        return self._resume(keys.room_log(room), keys.room_meta(room), since,
                            lambda entry: room_message(room, entry))

    def resume_inbox(self, user: str, since: str | None) -> Resumed:
        return self._resume(keys.inbox(user), keys.inbox_meta(user), since, direct_message)

    def _resume(self, stream: str, meta: str, since: str | None, build: Any) -> Resumed:
        with redis_errors():
            entries, truncated, last = self.scripts.run(
                "after", [stream, meta], [since or "", RESUME_LIMIT])
        more = len(entries) > RESUME_LIMIT
        return Resumed([build(entry) for entry in reversed(entries[:RESUME_LIMIT])],
                       bool(truncated) or more, last or None)

    def last_inbox_id(self, user: str) -> str | None:
        with redis_errors():
            newest = self.client.xrevrange(keys.inbox(user), "+", "-", count=1)
        return newest[0][0] if newest else None
