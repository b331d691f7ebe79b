"""Redis out of memory (maxmemory reached, `noeviction`): `send` and `direct` answer `unavailable`
saying storage is full, and store nothing; reads, presence, joins and the node registry go on;
the nodes stay ready and show it (/readyz, /metrics); once memory is freed, the same send with the
same client_id is stored, once, and nothing acknowledged before was lost."""

from __future__ import annotations

import contextlib
import re

import pytest
import redis
import requests

from tests.waiting import wait_for

# also on a Redis Cluster: one full master among others
pytestmark = [pytest.mark.local_cluster, pytest.mark.redis_cluster]
FULL = "storage is full"


def masters(cluster) -> list[redis.Redis]:
    ports = cluster.redis_masters() if cluster.clustered else [cluster.redis_port]
    return [redis.Redis(port=port, password=cluster.redis_password, decode_responses=True)
            for port in ports]


@contextlib.contextmanager
def redis_full(cluster):
    """Every master's memory limit below what it uses, so it refuses writes until the `free()`
    this yields (or the end of the block) lifts the limit."""
    servers = masters(cluster)

    def free() -> None:
        for server in servers:
            server.config_set("maxmemory", 0)

    for server in servers:
        assert server.config_get("maxmemory-policy")["maxmemory-policy"] == "noeviction"
        server.config_set("maxmemory", 1)
    try:
        yield free
    finally:
        with contextlib.suppress(redis.RedisError):
            free()


def metric(text: str, name: str) -> list[float]:
    return [float(value) for value in re.findall(rf"^{name}{{[^}}]*}} (\S+)$", text, re.M)]


def beats(cluster) -> dict[str, int]:
    client = cluster.redis_client(decode_responses=True)
    return {name: int(client.hget(f"node:{{{name}}}", "beat") or 0)
            for name in ("node-1", "node-2", "node-3")}


def test_a_full_redis_refuses_sends_keeps_reads_and_joins_and_recovers(cluster, users, room):
    alice, sender = users.user_on("node-1", "full")
    bob, reader = users.user_on("node-2", "full")
    _, late_token = users.register("full")  # an account is a write: made before Redis fills
    for client in (sender, reader):
        client.ok("join", {"room": room})
    before = sender.ok("send", {"room": room, "text": "before", "client_id": "c0"})["id"]
    request = {"room": room, "text": "while full", "client_id": "c1"}
    with redis_full(cluster) as free:
        answer = sender.call("send", request)
        assert answer["ok"] is False and answer["error"]["code"] == "unavailable", answer
        assert FULL in answer["error"]["message"], answer
        answer = sender.call("direct", {"to": bob, "text": "psst", "client_id": "d1"})
        assert answer["ok"] is False and FULL in answer["error"]["message"], answer
        # reads, presence and joins of known rooms go on
        assert [m["id"] for m in reader.ok("history", {"room": room})["messages"]] == [before]
        assert sorted(reader.ok("presence", {"room": room})["members"]) == sorted([alice, bob])
        late = users.connect(late_token, "node-3")
        joined = late.ok("join", {"room": room, "since": "0-0"})
        assert [m["id"] for m in joined["missed"]] == [before]
        assert [r["room"] for r in reader.ok("rooms", {})["rooms"]] == [room]
        # the nodes stay ready and say which masters are full; the registry keeps beating
        for index in cluster.indexes():
            url = cluster.node_url(index)
            wait_for(lambda url=url: requests.get(url + "/readyz", timeout=5).json()[
                "redis"]["full"], 10, "the node to see Redis full")
            answer = requests.get(url + "/readyz", timeout=5)
            assert answer.status_code == 200, answer.text
            assert 1.0 in metric(requests.get(url + "/metrics", timeout=5).text,
                                 "rooms_redis_memory_full")
        seen = beats(cluster)
        wait_for(lambda: all(beat > seen[name] for name, beat in beats(cluster).items()), 10,
                 "every node's heartbeat to go through while Redis is full")
        refusals = sum(float(line.split()[-1]) for index in (1,) for line in requests.get(
            cluster.node_url(index) + "/metrics", timeout=5).text.splitlines()
            if line.startswith("rooms_redis_oom_refusals_total "))
        assert refusals >= 2
        free()
    for index in cluster.indexes():
        url = cluster.node_url(index)
        wait_for(lambda url=url: not requests.get(url + "/readyz", timeout=5).json()[
            "redis"]["full"], 10, "the node to see room again")
    after = sender.ok("send", request)["id"]
    assert sender.ok("send", request)["id"] == after  # the same client_id: stored once
    assert [m["id"] for m in users.history(room)] == [before, after]
    assert [m["id"] for m in reader.take("message", 2)] == [before, after]
