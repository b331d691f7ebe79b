"""Data written by the first version, in the key layout before hash tags, brought over once.

The first version ran on one Redis only, with keys like `user:alice`, `room:lobby:log` and
`session:ID`. At start the first node of the new version (holding a lock; the others wait for
it) renames what must survive into the tagged layout of keys.py: accounts, inboxes, room logs
and their retention marker, browser sessions (with their expiry). Presence and the node registry
describe connections of the old nodes, which are gone: they are dropped, and every client that
reconnects is present again. `keys:layout` records that the data is in the new layout.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from redis.cluster import RedisCluster

from . import keys

LOCK = "keys:migrating"
LOCK_MS = 120_000
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


def migrate_layout(client: Any, node: str) -> int:
    """Bring first-version keys over (once per Redis); how many keys were moved."""
    if client.get(keys.LAYOUT) == keys.LAYOUT_VERSION:
        return 0
    if isinstance(client, RedisCluster):  # the first version never ran on a cluster
        client.set(keys.LAYOUT, keys.LAYOUT_VERSION)
        return 0
    if not client.set(LOCK, node, nx=True, px=LOCK_MS):
        deadline = time.monotonic() + LOCK_MS / 1000
        while time.monotonic() < deadline and client.get(keys.LAYOUT) != keys.LAYOUT_VERSION:
            time.sleep(0.2)
        return 0
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
    client.set(keys.LAYOUT, keys.LAYOUT_VERSION)
    client.delete(LOCK)
    if moved:
        log.info("node=%s moved %d keys of the first version into the tagged layout", node, moved)
    return moved
