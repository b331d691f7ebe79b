"""The bus against a real redis-server (service/bus/bus.py): a node receives exactly the rooms
and users it serves, in stored order, and a lost subscription loses nothing."""

from __future__ import annotations

import json
import threading
import time

import pytest

from service.bus import channels
from service.bus.bus import Bus
from service.primitives import bus_format
from tests.waiting import wait_for

NODE = "node-a"  # the store fixture's node


def spawn(target, *args) -> None:
    threading.Thread(target=target, args=args, daemon=True).start()


class Recorder:
    """Stands in for the node's Socket.IO server: what the bus delivers, to whom."""

    def __init__(self) -> None:
        self.delivered: list[tuple[str | None, bytes, list[str]]] = []
        self.controls: list[dict] = []
        self.lock = threading.Lock()

    def deliver(self, room: str | None, body: bytes, skip: str | None,
                stored_id: str | None) -> None:
        with self.lock:
            self.delivered.append((room, body, [skip] if skip else []))

    def texts(self, room: str) -> list[str]:
        with self.lock:
            return [json.loads(body)[1]["text"] for to, body, _ in self.delivered
                    if to == room and json.loads(body)[0] == "message"]


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


def replay_from(store):
    """What the node gives the bus to replay a channel's stream (service/node/node.py)."""
    return lambda channel, after, limit: store.messages.frames_after(
        channel.kind, channel.target, after, limit)


def running_bus(store, recorder: Recorder) -> Bus:
    """A started bus of the store's node that hands its frames to `recorder`."""
    bus = Bus(store.node, store.topology, replay_from(store), recorder.deliver,
              recorder.controls.append, spawn, time.sleep)
    bus.start()
    wait_for(lambda: bus.ready()[0], what="the bus to be ready")
    return bus


@pytest.fixture
def bus(store, recorder):
    bus = running_bus(store, recorder)
    yield bus
    bus.close()


def shard_channels(client) -> set[str]:
    return set(client.execute_command("PUBSUB", "SHARDCHANNELS"))


def kill_bus_connections(client) -> int:
    killed = 0
    for entry in client.client_list(_type="pubsub"):
        if entry["name"] == f"{NODE}:bus":
            killed += client.client_kill_filter(_id=entry["id"])
    return killed


def test_a_node_subscribes_to_a_room_when_it_serves_it_and_receives_only_those(bus, store,
                                                                              recorder, client):
    lobby = channels.room("lobby")
    assert bus.subscribe(lobby) is True
    assert bus.subscribe(lobby) is False  # the room was served here already
    assert lobby.name in shard_channels(client)
    store.messages.publish("lobby", "alice", "one", None)
    store.messages.publish("elsewhere", "alice", "not for us", None)
    wait_for(lambda: recorder.texts("r:lobby") == ["one"])
    assert channels.room("elsewhere").name not in shard_channels(client)
    assert all(room == "r:lobby" for room, _, _ in recorder.delivered)


def test_subscribe_returns_only_once_redis_confirmed_the_subscription(bus, client):
    names = [channels.room(f"new-{n}") for n in range(50)]
    for channel in names:
        bus.subscribe(channel)
        assert client.execute_command("PUBSUB", "SHARDNUMSUB", channel.name)[1] == 1


def test_unsubscribing_stops_what_the_node_receives(bus, store, recorder, client):
    lobby = channels.room("lobby")
    bus.subscribe(lobby)
    assert lobby.name in shard_channels(client)
    bus.unsubscribe(lobby)
    wait_for(lambda: lobby.name not in shard_channels(client), what="the unsubscribe")
    store.messages.publish("lobby", "alice", "after", None)
    store.messages.publish("probe", "alice", "probe", None)  # the link still reads
    bus.subscribe(channels.room("probe"))
    store.messages.publish("probe", "alice", "probe 2", None)
    wait_for(lambda: recorder.texts("r:probe") == ["probe 2"])
    assert recorder.texts("r:lobby") == []


def test_a_channel_no_longer_served_leaves_nothing_behind(bus, client):
    permanent = set(bus.served)
    rooms = [channels.room(f"passing-{n}") for n in range(100)]
    for channel in rooms:
        bus.subscribe(channel)
    for channel in rooms:
        bus.unsubscribe(channel)
    assert set(bus.served) == permanent
    assert bus.subscribed_by_kind()["room"] == 0
    wait_for(lambda: not shard_channels(client) & {channel.name for channel in rooms},
             what="the unsubscribes")


def test_stored_messages_are_delivered_once_in_order_and_the_senders_connection_skipped(
        bus, store, recorder, client):
    client.hset("user:{bob}", "pw", "x")
    client.hset("user:{alice}", "pw", "x")
    bob = channels.user("bob")
    bus.subscribe(bob)
    sent = store.messages.direct("bob", "alice", "hi", None, f"{NODE}|sid-bob")
    wait_for(lambda: len(recorder.delivered) == 1)
    room, body, skip = recorder.delivered[0]
    assert (room, skip) == ("u:bob", ["sid-bob"])
    assert json.loads(body)[1]["id"] == sent.id
    # the same frame again (a replay meeting the live stream) is dropped
    bus.handle(bob, bus_format.decode(bus_format.stored_event("direct", json.loads(body)[1])))
    assert len(recorder.delivered) == 1


def test_frames_of_an_unknown_format_are_dropped_and_counted(bus, recorder, client):
    lobby = channels.room("lobby")
    bus.subscribe(lobby)
    client.execute_command("SPUBLISH", lobby.name, "from a future version")
    client.execute_command("SPUBLISH", lobby.name, bus_format.event("notice", {"text": "ok"}))
    wait_for(lambda: len(recorder.delivered) == 1)
    assert bus.unknown_frames == 1


def test_control_frames_go_to_the_node(bus, recorder, client):
    alice = channels.user("alice")
    bus.subscribe(alice)
    client.execute_command("SPUBLISH", alice.name, bus_format.control({"disconnect": ["n|s"]}))
    wait_for(lambda: recorder.controls == [{"disconnect": ["n|s"]}])
    assert recorder.delivered == []


def test_the_nodes_canary_channel_is_subscribed_from_the_start_and_counted(bus, recorder,
                                                                         client):
    canary = channels.canary(NODE)
    assert client.execute_command("PUBSUB", "SHARDNUMSUB", canary.name)[1] == 1
    bus.subscribe(channels.room("lobby"))
    assert bus.subscribed_by_kind() == {"room": 1, "user": 0, "all": 1, "canary": 1}
    client.execute_command("SPUBLISH", canary.name, bus_format.control({"canary": {"n": 1}}))
    wait_for(lambda: recorder.controls == [{"canary": {"n": 1}}])
    assert recorder.delivered == []


def test_each_delivered_frame_is_reported_with_its_stored_id(bus, store, recorder):
    reported = []
    bus.on_delivered = lambda stored_id, reached: reported.append(stored_id)
    bus.subscribe(channels.room("lobby"))
    sent = store.messages.publish("lobby", "alice", "one", None)
    wait_for(lambda: reported == [sent.id])


def test_reconnect_moves_every_channel_to_a_new_connection_and_replays_meanwhile(
        bus, store, recorder, client):
    bus.subscribe(channels.room("lobby"))
    before = {entry["id"] for entry in client.client_list(_type="pubsub")
              if entry["name"] == f"{NODE}:bus"}
    assert bus.reconnect(channels.canary(NODE)) is True
    store.messages.publish("lobby", "alice", "while reconnecting", None)
    wait_for(lambda: bus.ready()[0], what="the subscriptions to be restored")
    after = {entry["id"] for entry in client.client_list(_type="pubsub")
             if entry["name"] == f"{NODE}:bus"}
    assert after and not after & before
    wait_for(lambda: recorder.texts("r:lobby") == ["while reconnecting"])
    store.messages.publish("lobby", "alice", "after", None)
    wait_for(lambda: recorder.texts("r:lobby") == ["while reconnecting", "after"])
    assert bus.reconnect(channels.room("not-served")) is False


def test_a_lost_subscription_is_noticed_restored_and_what_was_missed_replayed_once(
        bus, store, recorder, client):
    lobby = channels.room("lobby")
    bus.subscribe(lobby)
    before = store.messages.publish("lobby", "alice", "before", None)
    wait_for(lambda: recorder.texts("r:lobby") == ["before"])
    assert kill_bus_connections(client) >= 1
    wait_for(lambda: not bus.ready()[0] or bus.resubscribes, what="the loss to be noticed")
    missed = [store.messages.publish("lobby", "alice", f"missed {n}", None).id
              for n in range(5)]
    wait_for(lambda: bus.ready()[0], what="the subscription to be restored")
    after = store.messages.publish("lobby", "alice", "after", None)
    expected = ["before", *(f"missed {n}" for n in range(5)), "after"]
    wait_for(lambda: len(recorder.texts("r:lobby")) >= len(expected))
    assert recorder.texts("r:lobby") == expected
    ids = [json.loads(body)[1]["id"] for _, body, _ in recorder.delivered]
    assert ids == [before.id, *missed, after.id]


def test_twenty_thousand_rooms_are_resubscribed_in_one_batch_and_each_replayed_exactly(
        bus, store, recorder, client):
    rooms = [f"room-{n}" for n in range(20_000)]
    errors: list[BaseException] = []

    def subscribe_all(part: list[str]) -> None:
        try:
            for name in part:
                bus.subscribe(channels.room(name))
        except BaseException as error:  # reported below
            errors.append(error)

    workers = [threading.Thread(target=subscribe_all, args=(rooms[n::40],)) for n in range(40)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert errors == []
    assert client.execute_command("PUBSUB", "SHARDNUMSUB", rooms[0], rooms[-1])  # answered
    assert len(shard_channels(client)) == 20_000 + 2  # and the broadcast and canary channels
    resubscribes = bus.resubscribes
    kill_bus_connections(client)
    wait_for(lambda: not bus.ready()[0] or bus.resubscribes > resubscribes)
    touched = rooms[::200]  # 100 rooms get a message while the node is not subscribed
    for name in touched:
        store.messages.publish(name, "alice", f"missed in {name}", None)
    wait_for(lambda: bus.ready()[0], timeout=30, what="20,000 rooms to be restored")
    assert bus.resubscribes == resubscribes + 1  # every lost channel in one pass
    wait_for(lambda: len(recorder.delivered) >= len(touched), timeout=10)
    assert sorted(room for room, _, _ in recorder.delivered) == sorted(
        channels.socketio_room(name) for name in touched)
    assert len(shard_channels(client)) == 20_000 + 2


# ---- a path to Redis that swallows what is sent -------------------------------------------------


def test_a_link_whose_subscriptions_go_unanswered_is_ended_and_its_channels_restored(
        redis_server, recorder, monkeypatch):
    """Redis accepts the connection but nothing comes back (a stalled proxy, a cut path): the
    link gives up after REPLY_TIMEOUT_S, the bus subscribes again on a new link, and once the
    path works the join's subscription is confirmed."""
    import socket

    from service.bus import link as link_module
    from service.settings import RedisTarget
    from service.store.store import Store

    monkeypatch.setattr(link_module, "REPLY_TIMEOUT_S", 0.5)
    monkeypatch.setattr(link_module, "CHECK_EVERY_S", 0.1)
    upstream = ("127.0.0.1", redis_server.port)
    swallowing = threading.Event()
    swallowing.set()
    listener = socket.create_server(("127.0.0.1", 0))

    def relay(source, target) -> None:
        try:
            while data := source.recv(65536):
                if not (swallowing.is_set() and b"SSUBSCRIBE" in data):
                    target.sendall(data)
        except OSError:
            pass

    def accept() -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            server = socket.create_connection(upstream)
            spawn(relay, client, server)
            spawn(relay, server, client)

    spawn(accept)
    store = Store(RedisTarget(url=f"redis://127.0.0.1:{listener.getsockname()[1]}/0"), NODE,
                  history_max=100)
    bus = Bus(store.node, store.topology, replay_from(store), recorder.deliver,
              recorder.controls.append, spawn, time.sleep)
    try:
        bus.start()
        wait_for(lambda: bus.connect_failures == 0 and bus.resubscribes >= 2, timeout=10,
                 what="the swallowed subscriptions to be tried again on new links")
        assert not bus.ready()[0]
        swallowing.clear()
        wait_for(lambda: bus.ready()[0], timeout=10, what="the subscriptions to be confirmed")
        assert bus.subscribe(channels.room("lobby"))
    finally:
        bus.close()
        store.close()
        listener.close()
