"""The one module that owns Redis: one Redis or a Redis Cluster, its keys, scripts and promises.

Handlers validate input and call this API; nothing else touches Redis keys. Each part states its
own guarantees:

- `messages` (messages.py): room and direct messages, stored and published in one step, live
  order equal to stored order, resuming without a silent gap, acknowledged after replicas;
- `presence` (presence.py): who is in a room across the cluster;
- `members` (members.py): room membership and read positions, on every device;
- `rules` (rules.py): rooms the app controls: private, read-only, the members it added;
- `webhooks` (outbox.py): the webhook outbox: what happened, kept until delivered, and the
  index senders take it from;
- `conversations` (conversations.py): direct conversations, their history and read positions;
- `nodes` (nodes.py): the node registry and reaping dead nodes' presence;
- `health` (health.py): every master as this node sees it (reachable, replicas in sync, memory
  full), probed in the background so that nothing waits on Redis to know;
- `accounts` (accounts.py), `sessions` (sessions.py): users and browser sessions.

With `app_users` (app JWTs are on: an app brings users that have no account here), any user
name is a user: a direct message may go to it and a conversation with it is no `not_found`.
Without it, only accounts are.

Every call raises ServiceError('unavailable') when Redis fails (failures.py). Keys and channels
are named in keys.py; scripts get all of them as KEYS, in one hash slot, so the same calls run on
a Redis Cluster, where the slot decides the master (topology.py).
"""

from __future__ import annotations

import contextlib
from typing import Any

import redis
from redis.cluster import RedisCluster

from .accounts import Accounts
from .conversations import Conversations
from .health import RedisHealth
from .members import Members
from .messages import Messages
from .migrate import migrate_layout
from .nodes import NodeRegistry
from .outbox import Webhooks
from .presence import Presence
from .rules import RoomRules
from .scripts import Scripts
from .sessions import Sessions
from .topology import RedisTarget, Topology


class Store:
    def __init__(self, target: RedisTarget, node: str, history_max: int,
                 async_mode: str = "gevent", ack_replicas: int = 0,
                 ack_timeout_ms: int = 500, ack_min_replicas: int = 0, *,
                 app_users: bool = False, rooms_default_private: bool = False,
                 webhook_retry_s: int | None = None):
        """`webhook_retry_s`: WEBHOOK_RETRY_S when WEBHOOK_URL is set, None (webhooks off, and
        nothing of them written) otherwise."""
        self.node = node
        self.topology = Topology(target, node, async_mode)
        self.client = self.topology.client
        self.health = RedisHealth(self.topology, node, ack_replicas)
        self.scripts = Scripts(self.topology, timeout_s=5, replicas=ack_replicas,
                               replica_timeout_ms=ack_timeout_ms, min_replicas=ack_min_replicas,
                               health=self.health)
        self.accounts = Accounts(self.client)
        self.webhooks = Webhooks(self.client, self.scripts, self.topology, node, webhook_retry_s)
        self.messages = Messages(self.client, self.scripts, node, history_max,
                                 rooms_default_private, app_users=app_users,
                                 webhooks=self.webhooks)
        self.rules = RoomRules(self.client, self.scripts, rooms_default_private, self.webhooks)
        self.presence = Presence(self.client, self.scripts, node, self.webhooks)
        self.members = Members(self.client, self.scripts, self.webhooks)
        self.conversations = Conversations(self.client, self.scripts, self.messages,
                                           self.accounts, app_users=app_users)
        self.nodes = NodeRegistry(self.client, self.scripts, self.presence, node)
        self.sessions = Sessions(self.client, self.topology.raw)

    def start(self) -> None:
        """Refuse a Redis this service cannot use (naming the setting); bring data written in an
        older key layout over (once, cluster-wide)."""
        self.topology.check()
        with contextlib.suppress(redis.ConnectionError, redis.TimeoutError):
            migrate_layout(self.client, self.node)  # else the heartbeat does, once Redis is up

    def ping(self) -> bool:
        """Whether Redis answers: the one server, or every master of the cluster."""
        try:
            if self.topology.target.cluster:
                return bool(self.client.ping(target_nodes=RedisCluster.PRIMARIES))
            return bool(self.client.ping())
        except (redis.RedisError, OSError):
            return False

    def servers(self) -> list[dict[str, Any]]:
        """What the cluster page shows of Redis: each master's address, version, role, clients,
        memory and operations per second, or `up: false` where it does not answer."""
        try:
            if self.topology.target.cluster:
                infos = self.client.info(target_nodes=RedisCluster.PRIMARIES)
            else:
                host, port = self.topology.masters()[0]
                infos = {f"{host}:{port}": self.client.info()}
        except (redis.RedisError, OSError) as error:
            return [{"address": self.topology.target.describe(), "up": False,
                     "error": error.__class__.__name__}]
        degraded = {entry["master"] for entry in self.health.degraded()}
        full = set(self.health.full_masters())
        return [{"address": address, "up": True, "version": info.get("redis_version"),
                 "role": info.get("role"), "clients": info.get("connected_clients"),
                 "memory": info.get("used_memory_human"),
                 "maxmemory": info.get("maxmemory_human") if info.get("maxmemory") else None,
                 "ops_per_s": info.get("instantaneous_ops_per_sec"),
                 "replicas": info.get("connected_slaves"),
                 "writes": "full" if address in full else (
                     "degraded" if address in degraded else "ok")}
                for address, info in sorted(infos.items())]

    def close(self) -> None:
        self.health.close()
        self.scripts.close()
        self.topology.close()
