"""The Redis store against a real redis-server: what each part promises (service/store/)."""

from __future__ import annotations

import time

import pytest
import redis

from service.errors import ServiceError
from service.primitives import bus_format
from service.primitives.ids import parse_id
from service.settings import RedisTarget
from service.store import keys
from service.store.store import Store


@pytest.fixture
def channel(redis_server):
    """Frames published on a shard channel, as a node's subscription sees them."""
    subscriptions = []

    def listen(name: str):
        pubsub = redis.Redis.from_url(redis_server.url).pubsub(ignore_subscribe_messages=True)
        pubsub.ssubscribe(name)
        pubsub.get_sharded_message(timeout=1)
        subscriptions.append(pubsub)

        def drain() -> list[bus_format.Frame]:
            frames = []
            while (got := pubsub.get_sharded_message(timeout=0.2)) is not None:
                frames.append(bus_format.decode(got["data"]))
            return frames

        return drain

    yield listen
    for pubsub in subscriptions:
        pubsub.close()


def event(frame: bus_format.Frame) -> tuple[str, dict]:
    import json

    name, data = json.loads(frame.body)
    return name, data


def account(client, name: str) -> None:
    client.hset(keys.account(name), "pw", "hash")


# ---- messages -------------------------------------------------------------------------------


def test_publish_stores_then_publishes_the_frame_on_the_rooms_channel(store, channel):
    frames = channel(keys.room_channel("lobby"))
    stored = store.messages.publish("lobby", "alice", "hi <b>", "c-1")
    assert stored.ts == int(stored.id.split("-")[0])
    assert abs(stored.ts - time.time() * 1000) < 5000
    [frame] = frames()
    assert (frame.kind, frame.stored_id, frame.skip) == ("e", stored.id, None)
    expected = {"id": stored.id, "room": "lobby", "user": "alice", "text": "hi <b>",
                "ts": stored.ts, "node": "node-a", "client_id": "c-1"}
    assert event(frame) == ("message", expected)
    assert store.messages.history("lobby", None, 50) == [expected]


def test_ids_increase_and_history_pages_backwards(store):
    ids = [store.messages.publish("r", "alice", f"m{i}", None).id for i in range(30)]
    assert ids == sorted(ids, key=parse_id)
    newest = store.messages.history("r", None, 10)
    assert [m["text"] for m in newest] == [f"m{i}" for i in range(20, 30)]
    assert "client_id" not in newest[0]
    older = store.messages.history("r", newest[0]["id"], 10)
    assert [m["text"] for m in older] == [f"m{i}" for i in range(10, 20)]
    assert [m["id"] for m in store.messages.after("r", ids[4], 3)] == ids[5:8]


def test_unicode_and_json_special_text_round_trips(store, channel):
    frames = channel(keys.room_channel("r"))
    text = 'quote " backslash \\ slash / newline \n emoji 😀 nul-free \u2028'
    store.messages.publish("r", "alice", text, "")
    [frame] = frames()
    assert event(frame)[1]["text"] == text
    assert event(frame)[1]["client_id"] == ""
    assert store.messages.history("r", None, 1)[0]["text"] == text


def test_a_repeated_client_id_is_answered_with_the_first_id_and_stores_nothing(store, channel):
    frames = channel(keys.room_channel("r"))
    first = store.messages.publish("r", "alice", "once", "retry-1")
    again = store.messages.publish("r", "alice", "once", "retry-1")
    assert again == first
    other_user = store.messages.publish("r", "bob", "once", "retry-1")
    other_room = store.messages.publish("r2", "alice", "once", "retry-1")
    assert other_user.id != first.id  # another user's client_id is its own
    assert [m["id"] for m in store.messages.history("r2", None, 10)] == [other_room.id]
    assert [m["text"] for m in store.messages.history("r", None, 10)] == ["once", "once"]
    assert [f.stored_id for f in frames()] == [first.id, other_user.id]


def test_resume_returns_exactly_what_followed_since(store):
    ids = [store.messages.publish("r", "bob", f"m{i}", None).id for i in range(5)]
    resumed = store.messages.resume_room("r", ids[1])
    assert [m["text"] for m in resumed.messages] == ["m2", "m3", "m4"]
    assert resumed.truncated is False
    assert resumed.last_id == ids[-1]
    assert store.messages.resume_room("r", ids[-1]).messages == []
    fresh = store.messages.resume_room("r", None)
    assert (fresh.messages, fresh.truncated, fresh.last_id) == ([], False, ids[-1])


def test_resume_gives_the_newest_500_and_says_truncated_when_more_followed(store, client):
    first = store.messages.publish("r", "bob", "first", None).id
    for index in range(520):
        client.xadd(keys.room_log("r"), {"u": "bob", "t": f"m{index}", "n": "x"})
    resumed = store.messages.resume_room("r", first)
    assert len(resumed.messages) == 500 and resumed.truncated
    assert resumed.messages[-1]["text"] == "m519"


def test_resume_is_truncated_past_retention(redis_server, client):
    store = Store(RedisTarget(url=redis_server.url), "node-a", history_max=10)
    ids = [store.messages.publish("r", "bob", f"m{i}", None).id for i in range(120)]
    assert client.xlen(keys.room_log("r")) < 120  # trimmed in a batch
    assert store.messages.resume_room("r", ids[0]).truncated
    assert not store.messages.resume_room("r", ids[-5]).truncated


def test_a_lost_stream_is_never_a_silent_gap(store, client):
    """Whatever made messages after `since` disappear, the resuming reader is told."""
    ids = [store.messages.publish("r", "bob", f"m{i}", None).id for i in range(3)]
    client.delete(keys.room_log("r"))  # lost (evicted, flushed, not yet replicated)
    assert store.messages.resume_room("r", ids[0]).truncated  # since newer than anything kept
    store.messages.publish("r", "bob", "after the loss", None)
    resumed = store.messages.resume_room("r", ids[0])
    assert resumed.truncated  # since older than the stream's new start
    assert [m["text"] for m in resumed.messages] == ["after the loss"]


def test_writes_after_a_failover_mark_a_gap_for_older_positions(store, client):
    before = store.messages.publish("r", "bob", "before", None).id
    assert not store.messages.resume_room("r", before).truncated
    # as if this Redis were the replica that took over from the master that wrote last
    previous = client.eval("return string.match(redis.call('INFO', 'replication'), "
                           "'master_replid2:(%w+)')", 0)
    client.hset(keys.room_meta("r"), "rid", previous)
    after = store.messages.publish("r", "bob", "after", None).id
    assert store.messages.resume_room("r", before).truncated  # writes before may be lost
    assert not store.messages.resume_room("r", after).truncated
    later = store.messages.publish("r", "bob", "later", None).id
    assert not store.messages.resume_room("r", after).truncated
    assert store.messages.resume_room("r", later).messages == []


def test_a_stream_written_by_an_unrelated_master_before_is_no_gap(store, client):
    """A slot that migrated to another master kept its data."""
    before = store.messages.publish("r", "bob", "before", None).id
    client.hset(keys.room_meta("r"), "rid", "f" * 40)
    store.messages.publish("r", "bob", "after", None)
    assert not store.messages.resume_room("r", before).truncated


def test_an_unknown_since_id_is_a_bad_request(store):
    with pytest.raises(ServiceError) as raised:
        store.messages.history("r", "not-an-id", 5)
    assert raised.value.code == "bad_request"


def test_direct_messages_go_to_both_inboxes_with_one_id_and_skip_the_sender(store, client,
                                                                            channel):
    account(client, "alice")
    account(client, "bob")
    to_alice, to_bob = channel(keys.user_channel("alice")), channel(keys.user_channel("bob"))
    sent = store.messages.direct("bob", "alice", "hi", "d-1", "node-a|sid-1")
    [received] = to_alice()
    [echo] = to_bob()
    assert received.stored_id == echo.stored_id == sent.id
    assert received.skip is None and echo.skip == "node-a|sid-1"
    assert event(received) == ("direct", {"id": sent.id, "from": "bob", "to": "alice",
                                          "text": "hi", "ts": sent.ts, "node": "node-a",
                                          "client_id": "d-1"})
    assert store.messages.direct("bob", "alice", "hi", "d-1", "node-a|sid-1") == sent
    assert to_alice() == [] and to_bob() == []
    [replayed] = store.messages.frames_after("user", "bob", "0-0", 10)
    assert bus_format.decode(replayed).skip == "node-a|sid-1"  # a replay skips the sender too


def test_the_senders_copy_takes_a_new_id_when_its_inbox_is_ahead(store, client):
    account(client, "alice")
    account(client, "bob")
    client.xadd(keys.inbox("bob"), {"f": "x", "to": "bob", "t": "future", "n": "n"},
                id=f"{int(time.time() * 1000) + 60_000}-0")
    sent = store.messages.direct("bob", "alice", "hi", None, "node-a|s")
    alice_copy = client.xrevrange(keys.inbox("alice"), count=1)[0][0]
    assert parse_id(sent.id) > parse_id(alice_copy)  # bob's own inbox order wins


def test_direct_to_an_unknown_user_is_not_found_and_stores_nothing(store, client):
    with pytest.raises(ServiceError) as raised:
        store.messages.direct("bob", "nobody", "hi", None, "node-a|s")
    assert raised.value.code == "not_found"
    assert not client.exists(keys.inbox("nobody"), keys.inbox("bob"))


# ---- presence ---------------------------------------------------------------------------------


def test_presence_is_announced_once_per_user_and_counts_connections(store, channel):
    frames = channel(keys.room_channel("r"))
    assert store.presence.join("r", "alice", "s1").members == ["alice"]
    assert store.presence.join("r", "alice", "s2").members == ["alice"]
    assert store.presence.join("r", "bob", "s3").members == ["alice", "bob"]
    store.presence.leave("r", "alice", "s1")
    store.presence.leave("r", "alice", "s1")  # twice is once
    assert store.presence.members("r") == ["alice", "bob"]
    store.presence.leave("r", "alice", "s2")
    assert store.presence.members("r") == ["bob"]
    announced = [event(frame)[1] for frame in frames()]
    assert [(a["user"], a["action"]) for a in announced] == [
        ("alice", "join"), ("bob", "join"), ("alice", "leave")]


# ---- node registry ----------------------------------------------------------------------------


def test_a_dead_nodes_presence_is_reaped_once_with_leaves(redis_server, client, channel):
    dead = Store(RedisTarget(url=redis_server.url), "node-dead", history_max=100)
    live = Store(RedisTarget(url=redis_server.url), "node-live", history_max=100)
    frames = channel(keys.room_channel("r"))
    dead.presence.join("r", "alice", "s1")
    live.presence.join("r", "bob", "s2")
    dead.nodes.heartbeat(1, 0, ttl_s=0.2)
    live.nodes.heartbeat(1, 0, ttl_s=10)
    time.sleep(0.3)  # the dead node's heartbeat ages past its ttl
    assert live.nodes.reap_dead(ttl_s=0.2) == {"node-dead": 1}
    assert live.nodes.reap_dead(ttl_s=0.2) == {}
    assert live.presence.members("r") == ["bob"]
    assert [n["node"] for n in live.nodes.live(ttl_s=10)] == ["node-live"]
    assert ("alice", "leave") in [(event(f)[1]["user"], event(f)[1]["action"]) for f in frames()]
    assert not client.exists(keys.node_rooms("node-dead"), keys.node_reaper("node-dead"))


def test_a_leased_node_is_left_to_its_reaper(redis_server, client):
    dead = Store(RedisTarget(url=redis_server.url), "node-dead", history_max=100)
    live = Store(RedisTarget(url=redis_server.url), "node-live", history_max=100)
    dead.presence.join("r", "alice", "s1")
    dead.nodes.heartbeat(1, 0, ttl_s=0.2)
    client.set(keys.node_reaper("node-dead"), "node-other", px=30_000)
    time.sleep(0.3)
    assert live.nodes.reap_dead(ttl_s=0.2) == {}
    assert live.presence.members("r") == ["alice"]


def test_a_node_back_from_an_outage_gives_the_others_a_full_ttl_before_reaping(redis_server,
                                                                               client):
    """After Redis was away for everyone, every node's last beat is old: a node that is back
    first must not take the others for dead before they had a full ttl to beat again."""
    clock = [100.0]
    other = Store(RedisTarget(url=redis_server.url), "node-other", history_max=100)
    back = Store(RedisTarget(url=redis_server.url), "node-back", history_max=100)
    back.nodes.monotonic = lambda: clock[0]
    other.presence.join("r", "alice", "s1")
    other.nodes.heartbeat(1, 0, ttl_s=0.05)
    wait = time.monotonic() + 0.1
    while time.monotonic() < wait:  # the other node's beat ages past its ttl
        time.sleep(0.01)
    back.nodes.heartbeat(1, 0, ttl_s=10)
    assert back.nodes.reap_dead(ttl_s=0.05) == {}  # its own beats resumed just now
    clock[0] += 1
    assert back.nodes.reap_dead(ttl_s=0.05) == {"node-other": 1}
    back.nodes._beating_since = None  # a failed beat breaks the run
    assert back.nodes.reap_dead(ttl_s=0.05) == {}


def test_a_restarted_node_clears_what_its_previous_run_left(redis_server, client):
    first = Store(RedisTarget(url=redis_server.url), "node-a", history_max=100)
    first.presence.join("r", "alice", "s1")
    again = Store(RedisTarget(url=redis_server.url), "node-a", history_max=100)
    assert again.nodes.reap_own_leftovers() == 1
    assert again.presence.members("r") == []


# ---- failures ---------------------------------------------------------------------------------


def test_no_redis_is_unavailable():
    store = Store(RedisTarget(url="redis://127.0.0.1:1/0"), "node-a", history_max=10)
    for call in (lambda: store.messages.publish("r", "a", "t", None),
                 lambda: store.messages.history("r", None, 5),
                 lambda: store.presence.members("r")):
        with pytest.raises(ServiceError) as raised:
            call()
        assert raised.value.code == "unavailable"
    assert store.ping() is False


def test_a_redis_that_forgot_the_scripts_gets_them_again(store, client):
    store.messages.publish("r", "a", "one", None)
    client.script_flush()
    assert store.messages.publish("r", "a", "two", None).id
