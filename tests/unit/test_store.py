"""The Redis store against a real redis-server (no cluster)."""

import json
import time

import pytest
import redis

from service.errors import ServiceError
from service.store.store import STORE_HOST_ID, Store
from tests.redis_server import free_port

CHANNEL = "test-channel"


@pytest.fixture
def store(redis_server):
    client = redis.Redis.from_url(redis_server.url)
    client.flushall()
    return Store(redis_server.url, "node-a", CHANNEL, history_max=1000)


@pytest.fixture
def published(redis_server):
    """Messages published on the queue channel, decoded, as a node's subscription sees them."""
    pubsub = redis.Redis.from_url(redis_server.url).pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(CHANNEL)
    pubsub.get_message(timeout=1)

    def drain():
        out = []
        while (message := pubsub.get_message(timeout=0.2)) is not None:
            out.append(json.loads(message["data"]))
        return out

    yield drain
    pubsub.close()


def test_publish_stores_then_publishes_the_socketio_envelope(store, published):
    stored = store.publish("lobby", "alice", "hi <b>", "c-1")
    assert stored.ts == int(stored.id.split("-")[0])
    assert abs(stored.ts - time.time() * 1000) < 5000
    [envelope] = published()
    assert envelope == {
        "method": "emit", "event": "message", "binary": False, "namespace": "/",
        "room": "r:lobby", "host_id": STORE_HOST_ID,
        "data": [{"id": stored.id, "room": "lobby", "user": "alice", "text": "hi <b>",
                  "ts": stored.ts, "node": "node-a", "client_id": "c-1"}],
    }
    assert store.history("lobby", None, 50) == envelope["data"]


def test_ids_increase_and_history_pages_backwards(store):
    ids = [store.publish("r", "alice", f"m{i}", None).id for i in range(30)]
    assert ids == sorted(ids, key=lambda i: tuple(map(int, i.split("-"))))
    newest = store.history("r", None, 10)
    assert [m["text"] for m in newest] == [f"m{i}" for i in range(20, 30)]
    assert "client_id" not in newest[0]
    older = store.history("r", newest[0]["id"], 10)
    assert [m["text"] for m in older] == [f"m{i}" for i in range(10, 20)]
    assert [m["id"] for m in store.after("r", ids[4], 3)] == ids[5:8]


def test_unicode_and_json_special_text_round_trips(store, published):
    text = 'quote " backslash \\ slash / newline \n emoji 😀 nul-free \u2028'
    store.publish("r", "alice", text, "")
    [envelope] = published()
    assert envelope["data"][0]["text"] == text
    assert envelope["data"][0]["client_id"] == ""
    assert store.history("r", None, 1)[0]["text"] == text


def test_join_returns_exactly_what_followed_since(store):
    first = [store.publish("r", "bob", f"m{i}", None).id for i in range(5)]
    result = store.join("r", "alice", "sid1", first[1])
    assert [m["text"] for m in result.missed] == ["m2", "m3", "m4"]
    assert result.truncated is False
    assert result.members == ["alice"]
    assert store.join("r", "alice", "sid1", first[-1]).missed == []
    assert store.join("r", "alice", "sid1", None).missed == []


def test_join_reports_truncation_when_retention_dropped_messages(redis_server):
    redis.Redis.from_url(redis_server.url).flushall()
    small = Store(redis_server.url, "node-a", CHANNEL, history_max=10)
    since = small.publish("r", "bob", "first", None).id
    for i in range(400):
        small.publish("r", "bob", f"m{i}", None)
    result = small.join("r", "alice", "sid1", since)
    assert result.truncated is True
    assert result.missed[-1]["text"] == "m399"
    assert len(result.missed) <= 500


def test_join_caps_missed_at_500_newest(store):
    since = store.publish("r", "bob", "start", None).id
    for i in range(600):
        store.publish("r", "bob", f"m{i}", None)
    result = store.join("r", "alice", "sid1", since)
    assert len(result.missed) == 500
    assert result.missed[0]["text"] == "m100" and result.missed[-1]["text"] == "m599"
    assert result.truncated is True


def test_presence_counts_users_not_connections(store, published):
    store.join("r", "alice", "s1", None)
    store.join("r", "alice", "s2", None)
    store.join("r", "bob", "s3", None)
    assert store.members("r") == ["alice", "bob"]
    events = [e["data"][0] for e in published() if e["event"] == "presence"]
    assert events == [{"room": "r", "user": "alice", "action": "join"},
                      {"room": "r", "user": "bob", "action": "join"}]
    store.leave("r", "alice", "s1")
    assert store.members("r") == ["alice", "bob"]
    store.leave("r", "alice", "s2")
    store.leave("r", "alice", "s2")  # twice is harmless
    assert store.members("r") == ["bob"]
    assert [e["data"][0]["action"] for e in published()] == ["leave"]


def test_a_dead_node_is_reaped_once_and_its_users_leave(redis_server, store, published):
    other = Store(redis_server.url, "node-b", CHANNEL, 1000)
    other.heartbeat(1, 0, ttl_s=10)
    store.heartbeat(1, 0, ttl_s=10)
    other.join("r", "carol", "s9", None)
    store.join("r", "carol", "s1", None)
    other.join("r", "dave", "s8", None)
    published()
    redis.Redis.from_url(redis_server.url).zadd("nodes", {"node-b": 1})  # silent long ago
    assert store.reap_dead_nodes(ttl_s=10) == {"node-b": 2}
    assert store.reap_dead_nodes(ttl_s=10) == {}
    assert store.members("r") == ["carol"]  # still connected through node-a
    leaves = [e["data"][0] for e in published()]
    assert leaves == [{"room": "r", "user": "dave", "action": "leave"}]
    assert [n["node"] for n in store.live_nodes(10)] == ["node-a"]


def test_own_leftovers_are_cleared_at_start(redis_server, store):
    store.join("r", "erin", "old-sid", None)
    restarted = Store(redis_server.url, "node-a", CHANNEL, 1000)
    assert restarted.reap_own_leftovers() == 1
    assert restarted.members("r") == []


def test_direct_reaches_both_users_rooms_and_needs_a_recipient(store, published):
    store.create_user("bob", "hash")
    stored = store.direct("alice", "bob", "psst", None, "sender-sid")
    [envelope] = published()
    assert envelope["event"] == "direct"
    assert envelope["room"] == ["u:bob", "u:alice"]
    assert envelope["skip_sid"] == "sender-sid"
    assert envelope["data"][0] == {"id": stored.id, "from": "alice", "to": "bob", "text": "psst",
                                   "ts": stored.ts, "node": "node-a"}
    with pytest.raises(ServiceError) as info:
        store.direct("alice", "nobody", "x", None, None)
    assert info.value.code == "not_found"


def test_accounts_are_created_once(store):
    assert store.create_user("alice", "h1")
    assert not store.create_user("alice", "h2")
    assert store.password_hash("alice") == "h1"
    assert store.user_exists("alice") and not store.user_exists("bob")


def test_bad_since_is_a_bad_request_not_an_outage(store):
    store.publish("r", "a", "x", None)
    with pytest.raises(ServiceError) as info:
        store.join("r", "alice", "s", "99999999999999999999-0")
    assert info.value.code == "bad_request"


def test_redis_down_is_unavailable():
    down = Store(f"redis://127.0.0.1:{free_port()}/0", "node-a", CHANNEL, 100)
    for call in (lambda: down.publish("r", "a", "x", None), lambda: down.members("r"),
                 lambda: down.history("r", None, 5), lambda: down.join("r", "a", "s", None)):
        with pytest.raises(ServiceError) as info:
            call()
        assert info.value.code == "unavailable"
    assert down.ping() is False


def test_a_redis_that_forgot_the_scripts_gets_them_again(redis_server, store):
    store.publish("r", "a", "before", None)
    redis.Redis.from_url(redis_server.url).script_flush()
    stored = store.publish("r", "a", "after", None)
    assert [m["text"] for m in store.history("r", None, 10)] == ["before", "after"]
    assert stored.id == store.history("r", None, 1)[0]["id"]
