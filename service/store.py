"""The one module that owns Redis: its keys, its Lua scripts and what each call promises.

Handlers validate input and call this API; nothing else touches Redis keys.

Guarantees
- Pub/sub between nodes is at most once; durability comes from per-room streams. Storing a
  message and publishing it is one Lua script, so every node receives a room's messages in
  stored order, and a message a client was told is stored (its id) is in the stream.
- Every delivery, including to clients of the node that accepted the message, comes from the
  subscription: nodes never emit a room message locally first (that could overtake an older
  message from another node).
- Message ids are Redis stream ids, strictly increasing within a room; `ts` is the millisecond
  part of the id, i.e. Redis's clock at storage time.
- Rooms keep at least `room_history_max` messages (up to 100 more, trimmed in batches); the
  newest trimmed id tells a resuming client exactly whether messages after its id were dropped.
- Presence is per connection and cluster-wide. A node that stops heartbeating for `node_ttl_s`
  is reaped by exactly one other node, which announces the leaves of users it held last.
- The scripts compute some key names inside Lua, so they need a single Redis, not Redis Cluster.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import redis
from redis._parsers import _RESP2Parser

from .errors import ServiceError
from .pipeline import Pipeline

SCRIPTS = Path(__file__).with_name("lua")
STORE_HOST_ID = "redis-store"  # the publisher of scripted emits: a host id no node has
ROOM_PREFIX = "room:"
NODES_KEY = "nodes"
SESSION_PREFIX = "session:"
SESSION_SOCKETS_PREFIX = "session-sockets:"


def client_options(async_mode: str) -> dict[str, Any]:
    """redis-py options for a node's clients in this async mode.

    redis-py's hiredis parser polls sockets with `select.poll`, which eventlet's monkey patching
    removes; eventlet nodes therefore parse replies in Python (gevent and threads keep hiredis).
    """
    return {"parser_class": _RESP2Parser} if async_mode == "eventlet" else {}


def socketio_room(room: str) -> str:
    """The Socket.IO room of a chat room (prefixed so it can never equal a sid or a user room)."""
    return "r:" + room


def user_room(user: str) -> str:
    return "u:" + user


def parse_id(message_id: str) -> tuple[int, int]:
    ms, _, seq = message_id.partition("-")
    return int(ms), int(seq)


@contextmanager
def redis_errors() -> Iterator[None]:
    """Redis failures as the contract's codes: a malformed stream id is the client's fault
    (`bad_request`), anything else means storage is `unavailable`."""
    try:
        yield
    except redis.ResponseError as exc:
        if "Invalid stream ID" in str(exc):
            raise ServiceError("bad_request", "unknown message id") from None
        raise ServiceError("unavailable", "storage refused the request, try again") from exc
    except redis.RedisError as exc:
        raise ServiceError("unavailable", "storage is unavailable, try again") from exc


@dataclass(frozen=True)
class Stored:
    id: str
    ts: int


@dataclass(frozen=True)
class JoinResult:
    members: list[str]
    missed: list[dict[str, Any]]
    truncated: bool


class Store:
    """Redis access for one node. Every method raises ServiceError('unavailable') if Redis fails."""

    def __init__(self, url: str, node: str, channel: str, history_max: int,
                 async_mode: str = "gevent"):
        self.node = node
        self.channel = channel
        self.history_max = history_max
        self.redis = redis.Redis.from_url(
            url,
            decode_responses=True,
            client_name=f"{node}:store",
            socket_timeout=5,
            socket_connect_timeout=3,
            health_check_interval=15,
            **client_options(async_mode),
        )
        # Flask-Session stores pickled/msgpack bytes, so it gets a client that does not decode.
        self.raw = redis.Redis.from_url(
            url, client_name=f"{node}:sessions", socket_timeout=5, socket_connect_timeout=3,
            **client_options(async_mode),
        )
        self.pipeline = Pipeline(self.redis, timeout_s=5)  # the scripts: every message runs one
        self._scripts = {
            name: self.redis.register_script((SCRIPTS / f"{name}.lua").read_text())
            for name in ("publish", "direct", "join", "leave", "reap")
        }

    def _run(self, name: str, keys: list[str], args: list[Any]) -> Any:
        script = self._scripts[name]
        command = ("EVALSHA", script.sha, len(keys), *keys, *args)
        with redis_errors():
            try:
                return self.pipeline.execute(*command)
            except redis.ResponseError as exc:
                if not str(exc).startswith("NOSCRIPT"):
                    raise
                self.redis.script_load(script.script)  # a restarted or flushed Redis forgot it
                return self.pipeline.execute(*command)

    def _call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        with redis_errors():
            return getattr(self.redis, method)(*args, **kwargs)

    @staticmethod
    def _room_keys(room: str) -> tuple[str, str, str]:
        base = ROOM_PREFIX + room
        return base + ":log", base + ":conns", base + ":users"

    @staticmethod
    def _trimmed_key(room: str) -> str:
        return ROOM_PREFIX + room + ":trimmed"

    # ---- accounts -------------------------------------------------------------------------

    def create_user(self, username: str, password_hash: str) -> bool:
        """Create an account; False if the name is taken."""
        key = "user:" + username
        created = self._call("hsetnx", key, "pw", password_hash)
        if created:
            self._call("hset", key, "created", int(time.time() * 1000))
        return bool(created)

    def password_hash(self, username: str) -> str | None:
        return self._call("hget", "user:" + username, "pw")

    def user_exists(self, username: str) -> bool:
        return bool(self._call("exists", "user:" + username))

    # ---- messages -------------------------------------------------------------------------

    def publish(self, room: str, user: str, text: str, client_id: str | None) -> Stored:
        """Store a message in the room's stream and publish it to every node, atomically."""
        log, _, _ = self._room_keys(room)
        message_id = self._run(
            "publish",
            [log, self._trimmed_key(room)],
            [self.channel, self.history_max, room, user, text, self.node, client_id or "",
             "1" if client_id is not None else "0", socketio_room(room), STORE_HOST_ID],
        )
        return Stored(message_id, parse_id(message_id)[0])

    def direct(self, sender: str, recipient: str, text: str, client_id: str | None,
               skip_sid: str | None) -> Stored:
        """Store a direct message and publish it to every connection of both users but skip_sid.

        Raises ServiceError('not_found') if the recipient has no account.
        """
        message_id = self._run(
            "direct",
            ["user:" + recipient, "inbox:" + recipient],
            [self.channel, self.history_max, sender, recipient, text, self.node, client_id or "",
             "1" if client_id is not None else "0", skip_sid or "", STORE_HOST_ID],
        )
        if not message_id:
            raise ServiceError("not_found", f"no user named {recipient}")
        return Stored(message_id, parse_id(message_id)[0])

    def history(self, room: str, before: str | None, limit: int) -> list[dict[str, Any]]:
        """The newest `limit` messages before id `before` (exclusive), oldest first."""
        log, _, _ = self._room_keys(room)
        newest = "(" + before if before else "+"
        entries = self._call("xrevrange", log, newest, "-", count=limit)
        return [self._message(room, entry) for entry in reversed(entries)]

    def after(self, room: str, after: str | None, limit: int) -> list[dict[str, Any]]:
        """Messages after id `after` (exclusive), oldest first; without `after`, the newest ones."""
        if after is None:
            return self.history(room, None, limit)
        log, _, _ = self._room_keys(room)
        entries = self._call("xrange", log, "(" + after, "+", count=limit)
        return [self._message(room, entry) for entry in entries]

    def inbox_after(self, user: str, after: str, limit: int) -> list[dict[str, Any]]:
        """Direct messages to `user` after id `after` (exclusive), oldest first."""
        entries = self._call("xrange", "inbox:" + user, "(" + after, "+", count=limit)
        return [self._direct(entry) for entry in entries]

    @staticmethod
    def _direct(entry: tuple[str, dict[str, str]] | list[Any]) -> dict[str, Any]:
        message_id, fields = entry
        message = {"id": message_id, "from": fields.get("f", ""), "to": fields.get("to", ""),
                   "text": fields.get("t", ""), "ts": parse_id(message_id)[0],
                   "node": fields.get("n", "")}
        if "c" in fields:
            message["client_id"] = fields["c"]
        return message

    @staticmethod
    def _message(room: str, entry: tuple[str, dict[str, str]] | list[Any]) -> dict[str, Any]:
        message_id, fields = entry
        if isinstance(fields, list):  # from Lua: a flat list of field, value
            fields = dict(zip(fields[::2], fields[1::2], strict=True))
        message = {
            "id": message_id,
            "room": room,
            "user": fields.get("u", ""),
            "text": fields.get("t", ""),
            "ts": parse_id(message_id)[0],
            "node": fields.get("n", ""),
        }
        if "c" in fields:
            message["client_id"] = fields["c"]
        return message

    # ---- presence -------------------------------------------------------------------------

    def _connection(self, sid: str) -> str:
        return f"{self.node}|{sid}"

    def join(self, room: str, user: str, sid: str, since: str | None) -> JoinResult:
        """Mark the connection present, announce the user if new, and read members and missed.

        `missed` holds the newest 500 stored messages after `since`, oldest first; `truncated` is
        true when more than that followed `since` or when retention dropped any message after it.
        """
        log, conns, users = self._room_keys(room)
        members, entries, trimmed = self._run(
            "join",
            [conns, users, f"node:{self.node}:rooms", log, self._trimmed_key(room)],
            [self.channel, room, user, self._connection(sid), since or "", socketio_room(room),
             STORE_HOST_ID],
        )
        truncated = len(entries) > 500
        entries = entries[:500]
        if since and trimmed and parse_id(trimmed) > parse_id(since):
            truncated = True
        missed = [self._message(room, entry) for entry in reversed(entries)]
        return JoinResult(sorted(members), missed, truncated)

    def leave(self, room: str, user: str, sid: str) -> None:
        """Remove the connection's presence; announces the user's leave with its last connection."""
        _, conns, users = self._room_keys(room)
        self._run(
            "leave",
            [conns, users],
            [self.channel, room, user, self._connection(sid), socketio_room(room), STORE_HOST_ID],
        )

    def members(self, room: str) -> list[str]:
        _, _, users = self._room_keys(room)
        return sorted(self._call("hkeys", users))

    # ---- node registry --------------------------------------------------------------------

    def heartbeat(self, connections: int, started_ms: int, ttl_s: float) -> None:
        """Mark this node alive for ttl_s with its connection count."""
        now_ms = int(time.time() * 1000)
        key = f"node:{self.node}"
        with redis_errors(), self.redis.pipeline(transaction=True) as pipe:
            pipe.zadd(NODES_KEY, {self.node: now_ms})
            pipe.hset(key, mapping={"connections": connections, "started": started_ms})
            pipe.pexpire(key, int(ttl_s * 1000))
            pipe.execute()

    def live_nodes(self, ttl_s: float) -> list[dict[str, Any]]:
        cutoff = int((time.time() - ttl_s) * 1000)
        names = self._call("zrangebyscore", NODES_KEY, cutoff, "+inf")
        with redis_errors(), self.redis.pipeline(transaction=False) as pipe:
            for name in names:
                pipe.hgetall(f"node:{name}")
            infos = pipe.execute()
        return [
            {"node": name, "connections": int(info.get("connections", 0)),
             "started": int(info.get("started", 0))}
            for name, info in zip(names, infos, strict=True) if info
        ]

    def reap_dead_nodes(self, ttl_s: float) -> dict[str, int]:
        """Forget the presence of nodes silent for ttl_s; each is reaped by one node only."""
        cutoff = int((time.time() - ttl_s) * 1000)
        reaped = {}
        for name in self._call("zrangebyscore", NODES_KEY, "-inf", f"({cutoff}"):
            removed = self._reap(name, "", cutoff)
            if removed >= 0:
                reaped[name] = removed
        return reaped

    def reap_own_leftovers(self) -> int:
        """At start: forget presence a previous run of this node left behind."""
        return self._reap(self.node, "force", 0)

    def _reap(self, node: str, mode: str, cutoff: int) -> int:
        return int(self._run(
            "reap",
            [NODES_KEY, f"node:{node}:rooms"],
            [self.channel, node, mode, cutoff, STORE_HOST_ID, ROOM_PREFIX],
        ))

    # ---- browser sessions (Flask-Session's data) and their sockets, so log-out can end both ----
    #
    # Log-out is final: `end_session` deletes the session and takes its sockets in one
    # transaction. A request that loaded the session earlier cannot write it back
    # (`save_session(existing=True)` only overwrites a session that still exists). A socket that
    # registers itself after the log-out finds the session gone (`add_session_socket` is False).

    def load_session(self, session_id: str) -> bytes | None:
        with redis_errors():
            return cast("bytes | None", self.raw.get(SESSION_PREFIX + session_id))  # not decoded

    def save_session(self, session_id: str, data: bytes, ttl_s: int, *, existing: bool) -> bool:
        """Write a session; `existing` sessions are only overwritten, new ones only created."""
        with redis_errors():
            return bool(self.raw.set(
                SESSION_PREFIX + session_id, data, ex=ttl_s, xx=existing, nx=not existing
            ))

    def end_session(self, session_id: str) -> list[str]:
        """Delete a session and return the socket ids registered under it (to disconnect)."""
        sockets = SESSION_SOCKETS_PREFIX + session_id
        with redis_errors(), self.redis.pipeline(transaction=True) as pipe:
            pipe.delete(SESSION_PREFIX + session_id)
            pipe.smembers(sockets)
            pipe.delete(sockets)
            _, members, _ = pipe.execute()
        return sorted(members)

    def add_session_socket(self, session_id: str, sid: str) -> bool:
        """Register a socket under its session; False if the session has ended (log-out)."""
        key = SESSION_SOCKETS_PREFIX + session_id
        with redis_errors(), self.redis.pipeline(transaction=True) as pipe:
            pipe.sadd(key, sid)
            pipe.expire(key, 7 * 24 * 3600)
            pipe.exists(SESSION_PREFIX + session_id)
            *_, alive = pipe.execute()
        if not alive:
            self.remove_session_socket(session_id, sid)
        return bool(alive)

    def remove_session_socket(self, session_id: str, sid: str) -> None:
        self._call("srem", SESSION_SOCKETS_PREFIX + session_id, sid)

    # ---- health ---------------------------------------------------------------------------

    def ping(self) -> bool:
        try:
            return bool(self.redis.ping())
        except redis.RedisError:
            return False

    def subscriber_count(self, client_name: str) -> int:
        """How many pub/sub connections Redis itself sees under this client name."""
        try:
            clients = self.redis.client_list(_type="pubsub")
        except redis.RedisError:
            return 0
        return sum(1 for client in clients if client.get("name") == client_name)
