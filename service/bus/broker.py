"""The Broker: everything the handlers ask of the cluster, and what each call promises.

The handlers (realtime/namespace.py) and the HTTP API call only this interface. The Redis
implementation (redis_broker.py) keeps messages in Redis streams and carries them between nodes
on Redis's sharded pub/sub; an in-memory one (tests/unit/memory_broker.py) makes the handlers'
unit tests fast and exact. The anchor is Centrifuge's `broker.go`: its guarantees are stated
here, once, for every implementation.

Every call raises ServiceError('unavailable') when storage cannot answer (with a message that
says why: unreachable, full, too few replicas in sync), and never stores half of what it
promised: a message is stored and published in one step, or not at all.
"""

from __future__ import annotations

from typing import Any, Protocol

from ..store.conversations import Conversation
from ..store.members import ReadMoved, RoomState
from ..store.messages import Resumed, Stored
from ..store.presence import Joined
from ..store.rules import Access, Rules
from .channels import Channel


class Broker(Protocol):
    # ---- messages: stored, then delivered ------------------------------------------------------

    def publish(self, room: str, user: str, text: str, client_id: str | None, *,
                enforce_rules: bool = False) -> Stored:
        """Append a message to the room's stream and publish it to every node serving the room,
        atomically: what a channel carries is what the stream holds, in the same order, so every
        connection receives a room's messages in increasing id order. Returns once stored (and
        on as many replicas as the acknowledgement asks). A repeat of `client_id` by the same
        user in the same room within 10 minutes answers the first id and stores nothing.

        With `enforce_rules` (a user's `send`; the app's own posts skip it), the room's rules
        are read in the same atomic step: ServiceError('forbidden') and nothing stored when the
        room is read-only, private and the user not admitted, or the user was removed from it
        and has not joined again. So a rule or removal answered before the send always applies,
        whichever node takes the send."""
        ...

    def find_sent(self, room: str, user: str, client_id: str) -> Stored | None:
        """The answer a `send` with `client_id` already got (within 10 minutes), or None."""
        ...

    def find_direct(self, sender: str, recipient: str, client_id: str) -> Stored | None:
        """The answer a `direct` with `client_id` already got (within 10 minutes), or None."""
        ...

    def direct_from_app(self, recipient: str, text: str, client_id: str | None) -> Stored:
        """A direct message from the app (`api`): stored in the recipient's inbox and published
        on its channel like `direct`'s copy for the recipient (`api` keeps no inbox).
        ServiceError('not_found') for an unknown recipient."""
        ...

    def direct(self, sender: str, recipient: str, text: str, client_id: str | None,
               connection: str) -> Stored:
        """Store a direct message in both users' inboxes (and their conversation) and publish
        each copy on its user's channel, skipping `connection` (`node|sid`, the sender's, which
        has the answer); the sender's copy. ServiceError('not_found') for an unknown recipient:
        one without an account, when app JWTs are off (with them, any user name is a user).
        Idempotent by `client_id` like `publish`."""
        ...

    def history(self, room: str, before: str | None, limit: int) -> list[dict[str, Any]]:
        """The newest `limit` messages before id `before`, oldest first."""
        ...

    def after(self, room: str, after: str | None, limit: int) -> list[dict[str, Any]]:
        """Messages after id `after`, oldest first (without it, the newest)."""
        ...

    def resume(self, room: str, since: str | None) -> Resumed:
        """The room's newest messages after `since` (at most 500), with `truncated` whenever
        any after `since` are gone (retention, a lost stream, a failover that may have lost
        writes, a `since` newer than anything stored): never a silent gap."""
        ...

    def inbox(self, user: str, since: str | None) -> Resumed:
        """A user's direct messages after `since`, as `resume` for a room."""
        ...

    def last_inbox_id(self, user: str) -> str | None:
        ...

    # ---- this node's subscriptions ---------------------------------------------------------------

    def subscribe(self, channel: Channel) -> bool:
        """Serve `channel` on this node; returns once confirmed (True if new here), so whatever
        is stored after it arrives live. At most once for what is not stored; a lost subscription
        is restored and replayed from the stream before any newer live message."""
        ...

    def unsubscribe(self, channel: Channel) -> None:
        ...

    def start_from(self, channel: Channel, last_id: str | None) -> None:
        """Where live delivery on a channel new to this node starts (replays begin there)."""
        ...

    # ---- presence and membership -----------------------------------------------------------------

    def join(self, room: str, user: str, connection: str, admission: str = "") -> Joined:
        """Make the user a member of the room (until `end_membership`), mark the connection
        present (announcing the user with its first connection there), and answer the members
        present across the cluster and the user's read position. `admission`: how a private
        room admitted the user (`member`: the app added it, checked again in the same step,
        ServiceError('forbidden') if no longer so; `granted`: its token or the join hook), which
        lets it send there; '' for a public room. Joining clears a removal (`remove_member`).
        With webhooks on, the announced join is a `presence` event and a new membership a
        `member` event (`joined`), recorded in the same step."""
        ...

    def leave(self, room: str, user: str, connection: str) -> None:
        """End the connection's presence (announcing the user's leave with its last one). Never
        raises: if storage is down, the leave is kept and done once it is back."""
        ...

    def present(self, room: str) -> list[str]:
        """The users present in the room across the cluster, sorted."""
        ...

    def end_membership(self, room: str, user: str) -> bool:
        """The user leaves the room for good (its `leave`): membership, read position, and
        admission to send while the room is private; whether it was a member (then, with
        webhooks on, a `member` event `left`, recorded in the same step)."""
        ...

    def rooms(self, user: str) -> list[RoomState]:
        """The rooms the user is a member of, with unread counts and newest ids."""
        ...

    def read_room(self, room: str, user: str, message_id: str) -> ReadMoved:
        """Move the user's read position forwards only, never past the newest message.
        ServiceError('forbidden') if the user is not a member."""
        ...

    # ---- rooms the app controls (store/rules.py) ----------------------------------------------

    def rules(self, room: str) -> Rules:
        ...

    def set_rules(self, room: str, private: bool | None, read_only: bool | None) -> Rules:
        """Set the given rules (None keeps one); the room's rules now. Sends check them
        atomically (`publish`)."""
        ...

    def access(self, room: str, user: str) -> Access:
        """The room's rules and where the user stands in it, read in one step."""
        ...

    def add_member(self, room: str, user: str) -> None:
        """The app adds the user: a private room admits it, and it may send there (with
        webhooks on, a `member` event `added`, recorded in the same step)."""
        ...

    def remove_member(self, room: str, user: str) -> None:
        """The app removes the user, in storage: no longer added, admitted or a member, its read
        position and the join hook's remembered answer forgotten, the room gone from its rooms,
        and its sends to the room refused from now on until it joins again. The user's
        connections are the caller's to tell (`control` on the user's channel). With webhooks on,
        a `member` event `removed`, recorded in the same step."""
        ...

    def remember_join(self, room: str, user: str, ttl_s: int) -> None:
        """Keep the join hook's `allow: true` for the user and room for `ttl_s` seconds, for
        every node (`access` reads it; `remove_member` forgets it)."""
        ...


    # ---- conversations ---------------------------------------------------------------------------

    def conversation(self, owner: str, other: str, before: str | None,
                     limit: int) -> list[dict[str, Any]]:
        ...

    def conversations(self, owner: str) -> list[Conversation]:
        ...

    def read_conversation(self, owner: str, other: str, message_id: str) -> ReadMoved:
        ...

    # ---- events that are not stored: at most once -----------------------------------------------

    def event(self, channel: Channel, name: str, data: dict[str, Any], skip: str | None) -> None:
        """Deliver Socket.IO event `name` to the channel's connections on every node, but the
        one `skip` names (`node|sid`)."""
        ...

    def control(self, channel: Channel, body: dict[str, Any]) -> None:
        """A message for the nodes serving `channel` (never delivered to connections)."""
        ...

    # ---- browser sessions' sockets ---------------------------------------------------------------

    def add_socket(self, session_id: str, socket: str) -> bool:
        """Register a socket under its browser session; False once the session has ended."""
        ...

    def remove_socket(self, session_id: str, socket: str) -> None:
        ...
