"""Every Redis key and pub/sub channel name the service uses, in one place.

Redis Cluster puts a key in the hash slot of its hash tag, the part between the first `{` and
`}`. A script may only touch keys of one slot, and a shard channel lives in a slot too, so
everything a single script step needs shares one tag:

- a room: its stream, retention and gap markers, presence hashes, members, read positions,
  channel, and the rules the app set for it (private, read-only, who may join and send, the join
  hook's remembered answers): `{<room>}`;
- a user: the account, the inbox stream, the conversations and their read positions, the rooms
  it is a member of and the user's channel: `{<user>}`;
- a node: its registry entry, the rooms it holds presence in and its reaper lease: `{<node>}`;
- a browser session and the sockets registered under it: `{<session id>}`.

Webhooks (outbox.py): a room's log, and a user's inbox, is its own outbox; its webhook cursor,
pending marker, lease and (a room's) side stream of other events share its tag. The index of
outboxes with pending events is one sorted set, with its companions under one tag of their own.

Room, user and node names never contain braces (validation and settings refuse them), so the tag
is always the whole name. The node registry is one sorted set; the broadcast channel is one
channel. Scripts get every key and channel they touch as KEYS, never build a name themselves.
"""

from __future__ import annotations

NODES = "nodes"  # sorted set: node name -> last heartbeat (ms)
BROADCAST_CHANNEL = "all:ch"  # every connection of every node
LAYOUT = "keys:layout"  # which key layout the data is in (store/migrate.py)
LAYOUT_VERSION = "3"
# webhooks (outbox.py): `room:<name>` / `inbox:<user>` -> when to try it next (ms)
WEBHOOK_DUE = "webhooks:{index}:due"
# the same members -> the time (ms) of their oldest undelivered event, while a try left some
WEBHOOK_SINCE = "webhooks:{index}:since"
WEBHOOK_SWEEP = "webhooks:{index}:sweep"  # lease of the node sweeping for unindexed outboxes
WEBHOOK_PENDING_PATTERN = "*:wh:pending"  # SCAN MATCH for every pending marker


def room_log(room: str) -> str:
    """Stream of the room's messages; ids are the contract's message ids."""
    return f"room:{{{room}}}:log"


def room_meta(room: str) -> str:
    """Hash: what a resuming client needs to know about the log besides its entries
    (lua/append.lua: created, trimmed, rid, gap)."""
    return f"room:{{{room}}}:meta"


def room_sent(room: str, user: str, client_id: str) -> str:
    """The id a user's `send` with this client_id got (kept 10 minutes: retries are answered
    with it). A client_id may hold braces: only the first `{...}` is the hash tag."""
    return f"room:{{{room}}}:sent:{user}:{client_id}"


def room_connections(room: str) -> str:
    """Hash: `node|sid` -> user, one field per connection present in the room."""
    return f"room:{{{room}}}:conns"


def room_users(room: str) -> str:
    """Hash: user -> how many of its connections are present."""
    return f"room:{{{room}}}:users"


def room_members(room: str) -> str:
    """Hash: user -> the room's newest id when it joined ('0-0' for an empty room); a member
    until it leaves, across connections and devices (unread counts start there)."""
    return f"room:{{{room}}}:members"


def room_reads(room: str) -> str:
    """Hash: user -> the id it last read in the room (never moves backwards)."""
    return f"room:{{{room}}}:read"


def room_channel(room: str) -> str:
    return f"room:{{{room}}}:ch"


def room_rules(room: str) -> str:
    """Hash: the rules the app set for the room (`PUT /api/rooms/{room}`): `private` and
    `read_only`, '1' or '0' (absent: ROOMS_DEFAULT, and not read-only); and `out:<user>` for each
    user the app removed from the room who has not joined it again since (lua/append.lua refuses
    that user's sends at once, on every node)."""
    return f"room:{{{room}}}:rules"


def room_allowed(room: str) -> str:
    """Set: the users the app added as members of the room (`PUT .../members/{user}`); a private
    room admits them. Not `room_members`, which is who joined (unread counts start there)."""
    return f"room:{{{room}}}:allowed"


def room_admitted(room: str) -> str:
    """Set: the users who may send to the room while it is private: those the app added, and
    those a join admitted by their token's `rooms` claim or the join hook. A DELETE of the member
    takes them out; lua/append.lua reads it with the send."""
    return f"room:{{{room}}}:admitted"


def room_join_allowed(room: str, user: str) -> str:
    """The join hook's `allow: true` for `user` in the room, kept JOIN_HOOK_CACHE_S (every node
    reads it; a DELETE of the member deletes it)."""
    return f"room:{{{room}}}:hook:{user}"


def room_webhook(room: str) -> str:
    """Hash of the room's webhook outbox (outbox.py): `cursor`, the newest log id delivered;
    `failures`, tries failed in a row; `next`, when the pause after them ends (ms);
    `expired`, undelivered entries retention dropped."""
    return f"room:{{{room}}}:wh"


def room_webhook_pending(room: str) -> str:
    """Set while the room has undelivered webhook events (outbox.py)."""
    return f"room:{{{room}}}:wh:pending"


def room_webhook_lease(room: str) -> str:
    """The sender that holds the room's webhook outbox now (outbox.py)."""
    return f"room:{{{room}}}:wh:lease"


def room_webhook_events(room: str) -> str:
    """Stream of the room's webhook events other than messages (presence, membership), each
    removed once delivered."""
    return f"room:{{{room}}}:wh:events"


def account(user: str) -> str:
    return f"user:{{{user}}}"


def inbox(user: str) -> str:
    """Stream of the direct messages to and from the user."""
    return f"inbox:{{{user}}}"


def inbox_meta(user: str) -> str:
    return f"inbox:{{{user}}}:meta"


def inbox_webhook(user: str) -> str:
    """Hash of the inbox's webhook outbox, as `room_webhook`."""
    return f"inbox:{{{user}}}:wh"


def inbox_webhook_pending(user: str) -> str:
    return f"inbox:{{{user}}}:wh:pending"


def inbox_webhook_lease(user: str) -> str:
    return f"inbox:{{{user}}}:wh:lease"


def inbox_sent(owner: str, sender: str, recipient: str, client_id: str) -> str:
    """The id the copy in `owner`'s inbox of a direct message (sender, recipient, client_id)
    got, kept 10 minutes so that retries store nothing new."""
    return f"inbox:{{{owner}}}:sent:{sender}:{recipient}:{client_id}"


def conversation(owner: str, other: str) -> str:
    """Stream of the direct messages between `owner` and `other`, with the ids of `owner`'s
    inbox: `direct_history` reads it, so a conversation's history outlives a busy inbox's."""
    return f"inbox:{{{owner}}}:with:{other}"


def conversations(owner: str) -> str:
    """Sorted set: the users `owner` exchanged direct messages with -> the last one's time (ms)."""
    return f"inbox:{{{owner}}}:with"


def conversation_unread(owner: str) -> str:
    """Hash: other user -> how many of their messages `owner` has not read (counted as they
    arrive, recounted whenever `owner` reads)."""
    return f"inbox:{{{owner}}}:unread"


def conversation_reads(owner: str) -> str:
    """Hash: other user -> the id `owner` last read in their conversation."""
    return f"inbox:{{{owner}}}:read"


def user_rooms(user: str) -> str:
    """Set of the rooms the user is a member of (joined and not left)."""
    return f"user:{{{user}}}:rooms"


def user_channel(user: str) -> str:
    return f"user:{{{user}}}:ch"


def canary_channel(node: str, shard: int = 0) -> str:
    """A channel a node hears canaries on (bus/canary.py): its peers' on shard 0, its own on one
    channel per Redis master. `~` never occurs in a node's name, so `<node>~<shard>` is no other
    node's tag."""
    tag = node if shard == 0 else f"{node}~{shard}"
    return f"node:{{{tag}}}:canary"


def node_info(node: str) -> str:
    return f"node:{{{node}}}"


def node_rooms(node: str) -> str:
    """Set of the rooms the node holds presence in (what reaping it must visit)."""
    return f"node:{{{node}}}:rooms"


def node_reaper(node: str) -> str:
    """Lease of the node that is reaping this (dead) node."""
    return f"node:{{{node}}}:reaper"


def session(session_id: str) -> str:
    return f"session:{{{session_id}}}"


def session_sockets(session_id: str) -> str:
    """Set of `node|sid` of the sockets opened under a browser session."""
    return f"session:{{{session_id}}}:sockets"


def hash_tag(key: str) -> str:
    """The part of a key or channel name that decides its hash slot."""
    start = key.find("{")
    if start >= 0:
        end = key.find("}", start + 1)
        if end > start + 1:
            return key[start + 1 : end]
    return key
