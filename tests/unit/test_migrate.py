"""Data of the first version's key layout is brought over once (service/store/migrate.py)."""

import redis

from service.settings import RedisTarget
from service.store import keys
from service.store.migrate import migrate_layout
from service.store.store import Store


def test_first_version_data_is_renamed_into_the_tagged_layout_once(redis_server):
    client = redis.Redis.from_url(redis_server.url, decode_responses=True)
    client.flushall()
    client.hset("user:alice", mapping={"pw": "hash-a", "created": 1})
    client.xadd("room:lobby:log", {"u": "alice", "t": "old message", "n": "node-1"}, id="5-0")
    client.set("room:lobby:trimmed", "4-0")
    client.xadd("inbox:alice", {"f": "bob", "to": "alice", "t": "old direct", "n": "n"}, id="6-0")
    client.set("session:abc", b"session-bytes", ex=3600)
    client.hset("room:lobby:conns", "node-1|sid", "alice")  # presence of nodes that are gone
    client.hset("room:lobby:users", "alice", 1)
    client.sadd("node:node-1:rooms", "lobby")
    client.sadd("session-sockets:abc", "sid")

    assert migrate_layout(client, "node-x") == 5  # 4 keys renamed, 1 direct message indexed
    store = Store(RedisTarget(url=redis_server.url), "node-x", history_max=100)
    assert store.accounts.password_hash("alice") == "hash-a"
    assert [m["text"] for m in store.messages.history("lobby", None, 10)] == ["old message"]
    assert store.messages.resume_room("lobby", "3-0").truncated  # the retention marker came too
    assert [m["text"] for m in store.messages.resume_inbox("alice", "0-0").messages] == [
        "old direct"]
    assert [m["text"] for m in store.conversations.history("alice", "bob", None, 10)] == [
        "old direct"]
    assert store.sessions.load("abc") == b"session-bytes"
    assert 0 < client.ttl(keys.session("abc")) <= 3600
    assert store.presence.members("lobby") == []
    leftovers = [key for key in client.keys("*") if "{" not in key]
    assert sorted(leftovers) == [keys.LAYOUT]
    assert migrate_layout(client, "node-y") == 0  # once


def test_a_new_redis_is_marked_in_the_new_layout_without_work(redis_server):
    client = redis.Redis.from_url(redis_server.url, decode_responses=True)
    client.flushall()
    assert migrate_layout(client, "node-x") == 0
    assert client.get(keys.LAYOUT) == keys.LAYOUT_VERSION


def test_direct_messages_of_layout_2_are_indexed_into_conversations(redis_server):
    client = redis.Redis.from_url(redis_server.url, decode_responses=True)
    client.flushall()
    client.set(keys.LAYOUT, "2")
    for owner in ("alice", "bob"):
        client.hset(keys.account(owner), "pw", "hash")
        client.xadd(keys.inbox(owner), {"f": "bob", "to": "alice", "t": "hi", "n": "n"}, id="7-0")
    client.xadd(keys.inbox("alice"), {"f": "carol", "to": "alice", "t": "yo", "n": "n"}, id="8-0")
    for owner in ("alice", "bob"):
        client.xadd(keys.inbox(owner), {"f": "alice", "to": "bob", "t": "hello", "n": "n"},
                    id="9-0")
    client.xadd(keys.inbox_meta("alice"), {"x": "1"})  # not an inbox: left alone

    assert migrate_layout(client, "node-x") == 5
    store = Store(RedisTarget(url=redis_server.url), "node-x", history_max=100)
    listed = store.conversations.list("alice")
    assert [(c.with_user, c.unread, c.last["text"]) for c in listed] == [
        ("bob", 0, "hello"), ("carol", 0, "yo")]  # what the earlier page showed counts as read
    assert client.hgetall(keys.conversation_reads("alice")) == {"bob": "9-0", "carol": "8-0"}
    assert [m["id"] for m in store.conversations.history("bob", "alice", None, 10)] == [
        "7-0", "9-0"]
    assert client.get(keys.LAYOUT) == keys.LAYOUT_VERSION
    assert migrate_layout(client, "node-y") == 0  # once
