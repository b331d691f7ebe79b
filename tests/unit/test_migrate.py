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

    assert migrate_layout(client, "node-x") == 4
    store = Store(RedisTarget(url=redis_server.url), "node-x", history_max=100)
    assert store.accounts.password_hash("alice") == "hash-a"
    assert [m["text"] for m in store.messages.history("lobby", None, 10)] == ["old message"]
    assert store.messages.resume_room("lobby", "3-0").truncated  # the retention marker came too
    assert [m["text"] for m in store.messages.resume_inbox("alice", "0-0").messages] == [
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
