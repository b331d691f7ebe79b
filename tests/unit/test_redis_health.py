"""The Redis probe (store/health.py) and what the write path makes of it (scripts.py), against
real redis-servers: a master with a replica that goes away and comes back, a full one, and one
that does not answer at all."""

from __future__ import annotations

import socket
import threading
import time

import pytest
import redis

from service.errors import ServiceError
from service.settings import RedisTarget
from service.store import keys
from service.store.health import memory_full, parse_info, replicas_in_sync
from service.store.store import Store
from tests.redis_server import RedisServer
from tests.waiting import wait_for

ACK_TIMEOUT_MS = 200


# ---- reading INFO -------------------------------------------------------------------------------


def test_info_is_read_field_by_field():
    info = parse_info("# Replication\r\nrole:master\r\nconnected_slaves:2\r\n"
                      "slave0:ip=10.0.0.2,port=6380,state=online,offset=10,lag=0\r\n"
                      "slave1:ip=10.0.0.3,port=6380,state=wait_bgsave,offset=0,lag=0\r\n"
                      "slave2:ip=10.0.0.4,port=6380,state=online,offset=9,lag=7\r\n\r\n"
                      "# Memory\r\nused_memory:2048\r\nmaxmemory:1024\r\n"
                      "maxmemory_policy:noeviction\r\n")
    assert info["role"] == "master" and info["connected_slaves"] == "2"
    assert replicas_in_sync(info) == 1  # one syncing, one lagging 7 s
    assert replicas_in_sync(info, max_lag_s=10) == 2
    assert memory_full(info)
    assert not memory_full({**info, "maxmemory_policy": "allkeys-lru"})
    assert not memory_full({**info, "maxmemory": "0"})


# ---- a master and its replica -------------------------------------------------------------------


@pytest.fixture
def master(tmp_path):
    server = RedisServer(tmp_path / "master")
    yield server
    server.stop()


@pytest.fixture
def replica(master, tmp_path):
    server = RedisServer(tmp_path / "replica", replica_of=master.port)
    yield server
    if server.process.poll() is None:
        server.stop()


def store_of(server: RedisServer, **options) -> Store:
    return Store(RedisTarget(url=server.url), "node-h", history_max=100, ack_replicas=1,
                 ack_timeout_ms=ACK_TIMEOUT_MS, **options)


def in_sync(store: Store) -> int | None:
    store.health.probe_once()
    return store.health.in_sync(store.topology.masters()[0])


def test_writes_wait_for_the_replica_there_is_and_go_on_without_it(master, replica):
    store = store_of(master)
    wait_for(lambda: in_sync(store) == 1, what="the replica to be in sync")
    assert store.health.degraded() == []
    stored = store.messages.publish("r", "alice", "with a replica", "c1")
    assert redis.Redis(port=replica.port).xlen(keys.room_log("r")) == 1  # WAIT saw it there

    replica.stop()  # the probe has not seen it go yet: WAIT comes back short, the master is
    started = time.monotonic()  # asked at once, and the write is acknowledged without it
    assert store.messages.publish("r", "alice", "replica just gone", "c2").id > stored.id
    assert time.monotonic() - started < 5
    assert store.health.degraded() == [{"master": f"127.0.0.1:{master.port}", "in_sync": 0,
                                        "wanted": 1}]
    started = time.monotonic()  # now known: no WAIT at all
    store.messages.publish("r", "alice", "degraded", "c3")
    assert time.monotonic() - started < ACK_TIMEOUT_MS / 1000
    store.close()


def test_writes_wait_for_a_replica_again_once_it_is_back(master, tmp_path):
    store = store_of(master)
    assert in_sync(store) == 0
    store.messages.publish("r", "alice", "alone", None)
    back = RedisServer(tmp_path / "back", replica_of=master.port)
    try:
        wait_for(lambda: in_sync(store) == 1, what="the replica to be in sync")
        assert store.health.degraded() == []
        store.messages.publish("r", "alice", "safe again", None)
        assert redis.Redis(port=back.port).xlen(keys.room_log("r")) == 2
    finally:
        back.stop()
        store.close()


def test_a_floor_of_replicas_refuses_writes_before_storing_them(master):
    store = store_of(master, ack_min_replicas=1)
    assert in_sync(store) == 0
    with pytest.raises(ServiceError) as refused:
        store.messages.publish("r", "alice", "refused", "c1")
    assert refused.value.code == "unavailable"
    assert "ACK_MIN_REPLICAS" in refused.value.message
    assert redis.Redis(port=master.port).xlen(keys.room_log("r")) == 0
    store.close()


# ---- memory and reachability --------------------------------------------------------------------


def test_a_full_redis_is_seen_and_writes_say_storage_is_full(master):
    store = Store(RedisTarget(url=master.url), "node-h", history_max=100)
    server = redis.Redis(port=master.port)
    server.config_set("maxmemory", 1)
    try:
        with pytest.raises(ServiceError) as refused:
            store.messages.publish("r", "alice", "no room", None)
        assert "storage is full" in refused.value.message
        assert store.health.full() and store.health.oom_refusals == 1
        store.presence.join("r", "alice", "s1", member=True)  # bookkeeping goes on
        store.nodes.heartbeat(1, 0, ttl_s=10)
        store.health.probe_once()
        assert store.health.full_masters() == [f"127.0.0.1:{master.port}"]
    finally:
        server.config_set("maxmemory", 0)
    store.health.probe_once()
    assert not store.health.full()
    assert store.messages.publish("r", "alice", "room again", None).id
    store.close()


def silent_server() -> tuple[socket.socket, int]:
    """A server that accepts connections and never answers (a path to Redis that swallows)."""
    listener = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []

    def accept() -> None:
        while True:
            try:
                held.append(listener.accept()[0])
            except OSError:
                return

    threading.Thread(target=accept, daemon=True).start()
    return listener, listener.getsockname()[1]


def test_a_master_that_stops_answering_is_unreachable_after_two_probes():
    listener, port = silent_server()
    try:
        store = Store(RedisTarget(url=f"redis://127.0.0.1:{port}/0"), "node-h", history_max=100)
        store.health.probe_once()
        assert store.health.up()  # one probe without an answer may be a busy machine
        store.health.probe_once()
        assert not store.health.up() and store.health.down_for() >= 0
        assert store.health.unreachable() == [f"127.0.0.1:{port}"]
        started = time.monotonic()  # known unreachable: a write fails at once, not after 5 s
        with pytest.raises(ServiceError):
            store.messages.publish("r", "alice", "nowhere", None)
        assert time.monotonic() - started < 1
    finally:
        listener.close()


def test_a_refused_connection_is_unreachable_at_once_and_reachable_again_at_the_first_answer(
        master):
    store = Store(RedisTarget(url=master.url), "node-h", history_max=100)
    store.health.probe_once()
    address = store.topology.masters()[0]
    store.health._drop_connection(address)
    master.process.terminate()
    master.process.wait(10)
    store.health.probe_once()
    assert not store.health.reachable(address) and store.health.down_for() >= 0
    master.start()
    wait_for(lambda: store.health.probe_once() or store.health.up(), what="Redis to answer")
    assert store.health.down_for() == 0.0
    store.close()
