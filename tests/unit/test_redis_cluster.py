"""The store and the bus on a real Redis Cluster: keys and channels on the master of their slot,
and a slot that moves to another master while a node serves it loses nothing."""

from __future__ import annotations

import json
import socket
import threading

import pytest
import redis
from redis.crc import key_slot

from service.bus import channels
from service.bus.canary import Canary
from service.bus.emitter import Emitter
from service.settings import RedisTarget, SettingsError
from service.store import keys
from service.store.store import Store
from service.store.topology import Topology
from tests.unit.test_bus import Recorder, running_bus, wait_for

NODE = "node-c"


@pytest.fixture
def store(redis_cluster):
    store = Store(RedisTarget(cluster_nodes=redis_cluster.seeds), NODE, history_max=1000)
    yield store
    store.close()


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def bus(store, recorder):
    bus = running_bus(store, recorder)
    yield bus
    bus.close()


def server(port: int) -> redis.Redis:
    return redis.Redis(port=port, decode_responses=True)


def owner(redis_cluster, slot: int) -> int:
    return redis_cluster.launcher.master_of_slot(slot)


def move_slot(redis_cluster, slot: int, target: int) -> None:
    """Migrate a slot and its keys to another master, as `redis-cli --cluster reshard` does."""
    source = owner(redis_cluster, slot)
    source_id = server(source).execute_command("CLUSTER", "MYID")
    target_id = server(target).execute_command("CLUSTER", "MYID")
    server(target).execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", source_id)
    server(source).execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", target_id)
    while names := server(source).execute_command("CLUSTER", "GETKEYSINSLOT", slot, 100):
        server(source).execute_command("MIGRATE", "127.0.0.1", target, "", 0, 5000, "KEYS",
                                       *names)
    for port in redis_cluster.ports:
        if server(port).execute_command("ROLE")[0] == "master":
            server(port).execute_command("CLUSTER", "SETSLOT", slot, "NODE", target_id)


def test_keys_and_channels_live_on_the_master_of_their_slot(store, redis_cluster):
    masters = {port for port in redis_cluster.ports if server(port).execute_command(
        "ROLE")[0] == "master"}
    assert set(port for _, port in store.topology.masters()) == masters
    for name in ("lobby", "kitchen", "garden", "attic"):
        address = store.topology.address_of(keys.room_channel(name))
        assert address[1] == owner(redis_cluster, key_slot(keys.room_log(name).encode()))
        stored = store.messages.publish(name, "alice", "hi", None)
        assert server(address[1]).xrange(keys.room_log(name)) [0][0] == stored.id


def test_a_slot_that_moves_is_followed_by_the_scripts_and_the_subscription(
        bus, store, recorder, redis_cluster):
    room = "moving-room"
    channel = channels.room(room)
    bus.subscribe(channel)
    first = store.messages.publish(room, "alice", "before the move", None)
    wait_for(lambda: recorder.texts(channel.local_room) == ["before the move"])

    slot = key_slot(keys.room_log(room).encode())
    source = owner(redis_cluster, slot)
    target = next(port for port in store.topology.masters() if port[1] != source)[1]
    resubscribes = bus.resubscribes
    move_slot(redis_cluster, slot, target)
    wait_for(lambda: bus.resubscribes > resubscribes, what="Redis's sunsubscribe to be acted on")

    moved = store.messages.publish(room, "alice", "after the move", None)  # MOVED, followed
    assert store.topology.address_of(keys.room_log(room))[1] == target
    wait_for(lambda: bus.ready()[0], what="the channel to be subscribed on the new master")
    wait_for(lambda: len(recorder.texts(channel.local_room)) == 2)
    ids = [json.loads(body)[1]["id"] for _, body, _ in recorder.delivered]
    assert ids == [first.id, moved.id]
    assert server(target).execute_command("PUBSUB", "SHARDNUMSUB", channel.name)[1] == 1
    resumed = store.messages.resume_room(room, first.id)
    assert [m["id"] for m in resumed.messages] == [moved.id] and not resumed.truncated


def test_a_node_refuses_to_start_when_no_seed_answers():
    with pytest.raises(SettingsError, match="REDIS_CLUSTER_NODES: no seed answered"):
        Topology(RedisTarget(cluster_nodes=(("127.0.0.1", 1), ("127.0.0.1", 2))), NODE)


def test_a_node_refuses_a_plain_redis_given_as_a_cluster(redis_server):
    port = int(redis_server.url.rsplit(":", 1)[1].split("/")[0])
    with pytest.raises(SettingsError, match="REDIS_CLUSTER_NODES"):
        Topology(RedisTarget(cluster_nodes=(("127.0.0.1", port),)), NODE)


class OldRedis(threading.Thread):
    """Speaks just enough RESP to be a Redis without sharded pub/sub (before 7.0)."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]

    def run(self) -> None:
        while True:
            connection, _ = self.listener.accept()
            threading.Thread(target=self.serve, args=(connection,), daemon=True).start()

    @staticmethod
    def serve(connection: socket.socket) -> None:
        with connection:
            while data := connection.recv(65536):
                for command in data.split(b"*")[1:]:
                    if b"COMMAND" in command.upper():
                        connection.sendall(b"*1\r\n*-1\r\n")  # COMMAND INFO SPUBLISH: unknown
                    elif b"PING" in command.upper():
                        connection.sendall(b"+PONG\r\n")
                    else:
                        connection.sendall(b"+OK\r\n")


def test_a_node_refuses_a_redis_without_sharded_pubsub():
    old = OldRedis()
    old.start()
    store = Store(RedisTarget(url=f"redis://127.0.0.1:{old.port}/0"), NODE, history_max=10)
    with pytest.raises(SettingsError, match="REDIS_URL points at a Redis without sharded pub/sub"):
        store.start()


def test_a_nodes_canaries_ride_a_bus_connection_to_every_master(store):
    emitter = Emitter(store.client)
    canary = Canary(NODE, emitter.control, lambda: [], 1, 3, masters=store.topology.masters,
                    route=store.topology.address_of)
    own = canary.own_channels()
    masters = store.topology.masters()
    assert len(masters) == 3
    assert sorted(store.topology.address_of(channel.name) for channel in own) == sorted(masters)
    recorder = Recorder()
    bus = running_bus(store, recorder)
    try:
        bus.keep(own)
        wait_for(lambda: bus.ready()[0] and bus.subscribed_by_kind()["canary"] == 3,
                 what="every canary channel to be subscribed")
        assert len({link.address for link in bus.links.values()}) == 3
        canary.send()
        wait_for(lambda: len(recorder.controls) == 3, what="the canaries")
        for control in recorder.controls:
            canary.heard(control["canary"])
        assert set(canary.last_heard) == {f"{NODE}|{channel.name}" for channel in own}
        bus.keep(own[:1])
        wait_for(lambda: bus.subscribed_by_kind()["canary"] == 1, what="the others to be dropped")
    finally:
        bus.close()
