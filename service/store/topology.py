"""Where a key or channel lives, on one Redis or on a Redis Cluster, and connections to reach it.

One Redis (`REDIS_URL`): every key and channel is on that server.

A Redis Cluster (`REDIS_CLUSTER_NODES`, seeds `host:port,...`): a key or shard channel lives on
the master that serves its hash slot. The slot map is read with CLUSTER SLOTS from any node that
answers, at start and again whenever a caller reports that it moved (`refresh`: a MOVED reply, a
`sunsubscribe` pushed by Redis, a lost connection). Commands that redis-py routes itself go
through `client` (a RedisCluster, which follows MOVED by itself); the store's scripts and the
bus's subscriptions use raw connections to one master each (`connect`).

Both need Redis 7 or newer: the bus uses sharded pub/sub (SPUBLISH, SSUBSCRIBE) on one Redis as
on a cluster. `check` refuses to start otherwise, naming the setting.
"""

from __future__ import annotations

import contextlib
import logging
import random
import socket
import threading
import time
from typing import Any, cast
from urllib.parse import urlsplit

import redis
from redis.cluster import ClusterNode, RedisCluster
from redis.crc import key_slot
from redis.exceptions import RedisClusterException
from redis.maint_notifications import MaintNotificationsConfig

from ..settings import Address, RedisTarget, SettingsError
from ..transport.compat import python_reply_parser

log = logging.getLogger("service.redis")
REFRESH_EVERY_S = 0.5
# raw connections speak RESP2 and read pushes themselves (redis-py's maintenance notifications
# need RESP3)
NO_MAINT_NOTIFICATIONS = MaintNotificationsConfig(enabled=False)


POOL_CONNECTIONS = 100  # per pool (per master on a cluster)
POOL_WAIT_S = 5
# subscriptions and pipelines read without a timeout (a quiet subscription is not a failure): the
# kernel finds a peer that went away without a word (a cut network) after 5 + 3 x 2 s of silence
KEEPALIVE = {socket.TCP_KEEPIDLE: 5, socket.TCP_KEEPINTVL: 2, socket.TCP_KEEPCNT: 3}


def client_options(async_mode: str) -> dict[str, Any]:
    """redis-py options for a node's clients in this async mode.

    redis-py's hiredis parser polls sockets with `select.poll`, which eventlet's monkey patching
    removes; eventlet nodes therefore parse replies in Python (gevent and threads keep hiredis).
    """
    return {"parser_class": python_reply_parser()} if async_mode == "eventlet" else {}


class Topology:
    def __init__(self, target: RedisTarget, client_name: str, async_mode: str = "gevent"):
        self.target = target
        self.client_name = client_name
        self._lock = threading.Lock()
        self._slots: list[Address] = []  # slot -> master, for a cluster
        self._stale = False
        self._refreshed_at = 0.0
        common = {"socket_timeout": 5, "socket_connect_timeout": 3,
                  **client_options(async_mode)}
        # redis-py 8 refuses a command once a pool has 100 connections (MaxConnectionsError);
        # a node with hundreds of events in flight waits for a free one instead, for at most
        # POOL_WAIT_S
        pooled = {"connection_pool_class": redis.BlockingConnectionPool,
                  "max_connections": POOL_CONNECTIONS}
        self.client: Any
        self.raw: Any  # replies not decoded (Flask-Session stores bytes)
        if target.cluster:
            seeds = [ClusterNode(host, port) for host, port in target.cluster_nodes]
            cluster_options = {"username": target.username, "password": target.password,
                               "require_full_coverage": False, **pooled, **common}
            try:
                self.client = RedisCluster(startup_nodes=seeds, decode_responses=True,
                                           client_name=f"{client_name}:store", **cluster_options)
                self.raw = RedisCluster(startup_nodes=seeds, client_name=f"{client_name}:sessions",
                                        **cluster_options)
            except redis.AuthenticationError as error:
                raise SettingsError(f"REDIS_PASSWORD: the cluster refused it ({error})") from None
            except (redis.RedisError, RedisClusterException, OSError) as error:
                raise SettingsError(
                    f"REDIS_CLUSTER_NODES: no seed answered as a Redis Cluster "
                    f"({target.describe()}: {error})") from None
            self._single: Address | None = None
            self._connection_kwargs = {
                "username": target.username, "password": target.password,
                "socket_connect_timeout": 3, "socket_timeout": 3, "socket_keepalive": True,
                "socket_keepalive_options": KEEPALIVE, "protocol": 2,
                "maint_notifications_config": NO_MAINT_NOTIFICATIONS,
                **client_options(async_mode)}
            self.refresh()
        else:
            url = cast(str, target.url)
            self.client = redis.Redis(connection_pool=redis.BlockingConnectionPool.from_url(
                url, decode_responses=True, health_check_interval=15, timeout=POOL_WAIT_S,
                max_connections=POOL_CONNECTIONS, client_name=f"{client_name}:store", **common))
            self.raw = redis.Redis(connection_pool=redis.BlockingConnectionPool.from_url(
                url, timeout=POOL_WAIT_S, max_connections=POOL_CONNECTIONS,
                client_name=f"{client_name}:sessions", **common))
            pool = self.client.connection_pool
            parts = urlsplit(url)
            self._single = (parts.hostname or "unix", parts.port or 6379)
            self._connection_kwargs = {
                key: value for key, value in pool.connection_kwargs.items()
                if key != "decode_responses" and not key.startswith("maint_notifications")}
            self._connection_kwargs.update(protocol=2, socket_timeout=3, socket_keepalive=True,
                                           socket_keepalive_options=KEEPALIVE,
                                           health_check_interval=0,
                                           maint_notifications_config=NO_MAINT_NOTIFICATIONS)
            self._connection_class = pool.connection_class

    # ---- where things live ------------------------------------------------------------------

    def address_of(self, key: str) -> Address:
        """The master serving `key` (or a shard channel of that name)."""
        if self._single is not None:
            return self._single
        if self._stale and time.monotonic() - self._refreshed_at > REFRESH_EVERY_S:
            with contextlib.suppress(redis.RedisError):
                self.refresh()
        with self._lock:
            if not self._slots:
                raise redis.ConnectionError("the cluster's slot map is unknown")
            return self._slots[key_slot(key.encode())]

    def refresh_later(self) -> None:
        """A connection to a master failed: read the slot map again before the next lookup (at
        most every REFRESH_EVERY_S; a failover promotes a replica elsewhere)."""
        self._stale = True

    def masters(self) -> list[Address]:
        if self._single is not None:
            return [self._single]
        with self._lock:
            return sorted(set(self._slots))

    def refresh(self) -> None:
        """Read the slot map again from any node that answers (a cluster only)."""
        if self._single is not None:
            return
        self._refreshed_at = time.monotonic()
        known = list(dict.fromkeys([*self.masters(), *self.target.cluster_nodes]))
        random.shuffle(known)
        last_error: Exception | None = None
        for address in known:
            try:
                connection = self.connect(address, "topology")
                try:
                    connection.send_command("CLUSTER", "SLOTS")
                    ranges = connection.read_response()
                finally:
                    connection.disconnect()
            except (redis.RedisError, OSError) as error:
                last_error = error
                continue
            slots: list[Address] = [("", 0)] * 16384
            for start, end, master, *_replicas in ranges:
                host = master[0].decode() if isinstance(master[0], bytes) else master[0]
                for slot in range(int(start), int(end) + 1):
                    slots[slot] = (host or address[0], int(master[1]))
            with self._lock:
                self._slots = slots
                self._stale = False
            return
        raise redis.ConnectionError(f"no cluster node answered CLUSTER SLOTS ({last_error})")

    # ---- connections ---------------------------------------------------------------------------

    def connect(self, address: Address, role: str,
                timeout_s: float | None = None) -> redis.Connection:
        """A new raw connection (RESP2) to one server, named for CLIENT LIST. Connecting and
        every reply are bounded by 3 s, or `timeout_s`; a caller that reads without a bound
        (a subscription, a pipeline with timeouts of its own) lifts it on the socket itself."""
        options = {**self._connection_kwargs, "client_name": f"{self.client_name}:{role}"}
        if timeout_s is not None:
            options.update(socket_timeout=timeout_s, socket_connect_timeout=timeout_s)
        if self._single is not None:
            connection = self._connection_class(**options)
        else:
            connection = redis.Connection(host=address[0], port=address[1], **options)
        connection.connect()
        return connection

    def check(self) -> None:
        """Refuse a Redis without sharded pub/sub, naming the setting. One Redis that does not
        answer yet is not refused: the node starts and reports not ready until it does."""
        try:
            connection = self.connect(self.masters()[0], "check")
            try:
                connection.send_command("COMMAND", "INFO", "SPUBLISH")
                info = connection.read_response()
            finally:
                connection.disconnect()
        except redis.AuthenticationError as error:
            setting = "REDIS_PASSWORD" if self.target.cluster else "REDIS_URL"
            raise SettingsError(f"{setting}: Redis refused the credentials ({error})") from None
        except (redis.ConnectionError, redis.TimeoutError, OSError):
            if self.target.cluster:
                raise SettingsError(f"REDIS_CLUSTER_NODES: the cluster's masters do not answer "
                                    f"({self.target.describe()})") from None
            log.warning("redis at %s does not answer yet; the node is not ready until it does",
                        self.target.describe())
            return
        if not info or not info[0]:
            raise SettingsError(f"{self.target.setting} points at a Redis without sharded pub/sub "
                                f"(SPUBLISH and SSUBSCRIBE need Redis 7.0 or newer): "
                                f"{self.target.describe()}")

    def close(self) -> None:
        for client in (self.client, self.raw):
            client.close()
