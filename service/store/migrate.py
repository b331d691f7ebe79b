"""Data written by earlier versions, brought into the current key layout once.

At start the first node of a new version (holding a lock; the others wait for it, and none
serves writes before it is done) brings the data over; `keys:layout` records the layout it is in.

- Layout 1, the first version, ran on one Redis only, with keys like `user:alice`,
  `room:lobby:log` and `session:ID`. What must survive is renamed into the tagged layout of
  keys.py: accounts, inboxes, room logs and their retention marker, browser sessions (with
  their expiry). Presence and the node registry describe connections of the old nodes, which are
  gone: they are dropped, and every client that reconnects is present again.
- Layout 2 kept direct messages in inboxes only. Each inbox's messages are copied into the
  user's conversations (with the same ids) and its list of conversations, so `direct_history`
  and `conversations` show what was sent before. Messages that nodes of the previous version
  store while a rolling upgrade is under way reach the inbox only.
"""

from __future__ import annotations

import logging
import re
import time
from typing import Any

from redis.cluster import RedisCluster

from . import keys

LOCK = "keys:migrating"
LOCK_MS = 120_000
INBOX = re.compile(r"inbox:\{([^{}]+)\}")
COPY_PAGE = 1000
log = logging.getLogger("service.store")


def _renames(client: Any) -> list[tuple[str, str]]:
    moves: list[tuple[str, str]] = []
    for key in client.scan_iter(match="*", count=1000):
        if "{" in key:
            continue
        kind, _, rest = key.partition(":")
        if kind == "user" and rest:
            moves.append((key, keys.account(rest)))
        elif kind == "inbox" and rest:
            moves.append((key, keys.inbox(rest)))
        elif kind == "session" and rest:
            moves.append((key, keys.session(rest)))
        elif kind == "room" and rest.endswith(":log"):
            moves.append((key, keys.room_log(rest[: -len(":log")])))
    return moves


def _obsolete(key: str) -> bool:
    kind, _, rest = key.partition(":")
    return "{" not in key and (
        kind == "session-sockets"
        or (kind == "room" and rest.endswith((":conns", ":users", ":trimmed")))
        or (kind == "node" and rest != "")
    )


def _tag_first_version_keys(client: Any) -> int:
    moved = 0
    for room_trimmed in client.scan_iter(match="room:*:trimmed", count=1000):
        if "{" not in room_trimmed and (newest := client.get(room_trimmed)):
            client.hset(keys.room_meta(room_trimmed[len("room:") : -len(":trimmed")]),
                        "trimmed", newest)
    for old, new in _renames(client):
        moved += int(client.renamenx(old, new))
    obsolete = [key for key in client.scan_iter(match="*", count=1000) if _obsolete(key)]
    for start in range(0, len(obsolete), 500):
        client.delete(*obsolete[start : start + 500])
    return moved


def _index_conversations(client: Any, node: str) -> int:
    """Copy every inbox's messages into its owner's conversations, counted as read (the page
    of that version showed them); how many messages."""
    copied = 0
    owners = [match[1] for key in client.scan_iter(match="inbox:{*}", count=1000)
              if (match := INBOX.fullmatch(key))]
    for owner in owners:
        after = "-"
        newest: dict[str, str] = {}
        while entries := client.xrange(keys.inbox(owner), after, "+", count=COPY_PAGE):
            pipe = client.pipeline(transaction=False)
            for message_id, fields in entries:
                other = fields.get("to") if fields.get("f") == owner else fields.get("f")
                if not other:
                    continue
                pipe.xadd(keys.conversation(owner, other), fields, id=message_id)
                pipe.zadd(keys.conversations(owner), {other: int(message_id.split("-")[0])})
                newest[other] = message_id
                copied += 1
            pipe.execute(raise_on_error=False)  # an id already there stays as it is
            after = "(" + entries[-1][0]
            client.set(LOCK, node, xx=True, px=LOCK_MS)  # still at it
        if newest:
            client.hset(keys.conversation_reads(owner), mapping=newest)
    return copied


def migrate_layout(client: Any, node: str) -> int:
    """Bring data of earlier layouts over (once per Redis); how many keys and messages."""
    layout = client.get(keys.LAYOUT)
    if layout == keys.LAYOUT_VERSION:
        return 0
    while not client.set(LOCK, node, nx=True, px=LOCK_MS):
        # another node is at it (it renews the lock while it works): wait until it is done
        while client.get(LOCK) is not None:
            if client.get(keys.LAYOUT) == keys.LAYOUT_VERSION:
                return 0
            time.sleep(0.2)
        if client.get(keys.LAYOUT) == keys.LAYOUT_VERSION:
            return 0
    moved = 0
    try:
        if layout is None and not isinstance(client, RedisCluster):
            moved += _tag_first_version_keys(client)  # the first version never ran on a cluster
        moved += _index_conversations(client, node)
        client.set(keys.LAYOUT, keys.LAYOUT_VERSION)
    finally:
        if client.get(LOCK) == node:  # not another node's, had ours run out
            client.delete(LOCK)
    if moved:
        log.info("node=%s brought %d keys and messages into key layout %s", node, moved,
                 keys.LAYOUT_VERSION)
    return moved
