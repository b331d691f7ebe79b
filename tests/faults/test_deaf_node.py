"""A node whose bus connection stays open but delivers nothing: its canary notices, the node
says it is not ready although Redis still lists its subscription, it reconnects, and its clients
get everything published meanwhile, once and in order."""

from __future__ import annotations

import json
import signal
import time

import pytest
import redis
import requests

from tests.conftest import RESULTS
from tests.faults.redis_proxy import RedisProxy
from tests.integration.conftest import Client
from tests.waiting import wait_for

pytestmark = pytest.mark.local_cluster
DEAF = 9  # an extra node, beside the cluster's three
CANARY = {"CANARY_INTERVAL_S": "0.2", "CANARY_DEADLINE_S": "1.5"}


@pytest.fixture
def deafening_node(cluster):
    if cluster.clustered:
        pytest.skip("the proxy stands in front of one Redis (a Redis Cluster's slot map names "
                    "its servers' own addresses)")
    proxy = RedisProxy(cluster.redis_port)
    env = cluster.node_env(DEAF)
    env.update(CANARY, REDIS_URL=cluster.redis_url.replace(f":{cluster.redis_port}/",
                                                           f":{proxy.port}/"),
               # its test client connects to it directly, not through the front door
               ALLOWED_ORIGINS=f"{cluster.url},{cluster.node_url(DEAF)}")
    cluster._spawn(cluster.node_name(DEAF), cluster.node_argv(), env)
    try:
        cluster.wait_node_ready(DEAF)
        yield proxy
    finally:
        cluster.kill_node(DEAF, signal.SIGTERM)
        proxy.close()
        wait_for(lambda: cluster.node_name(DEAF) not in live_nodes(cluster), 15,
                 "the extra node to leave the registry")


def live_nodes(cluster) -> list[str]:
    client = cluster.redis_client(decode_responses=True)
    return client.zrange("nodes", 0, -1)


def readiness(cluster) -> tuple[int, str]:
    response = requests.get(cluster.node_url(DEAF) + "/readyz", timeout=5)
    return response.status_code, response.json()["reason"]


def test_a_deaf_bus_connection_is_caught_by_the_canary_and_nothing_is_lost(cluster, users, room,
                                                                         deafening_node):
    proxy = deafening_node
    node = cluster.node_name(DEAF)
    _, token = users.register()
    receiver = Client(cluster.node_url(DEAF), token, None)
    users.clients.append(receiver)
    assert receiver.node == node
    _, sender = users.user_on("node-1")
    receiver.ok("join", {"room": room})
    sender.ok("join", {"room": room})
    before = sender.ok("send", {"room": room, "text": "before"})["id"]
    assert [m["id"] for m in receiver.take("message", 1)] == [before]

    assert proxy.deafen(f"{node}:bus") == 1
    deafened_at = time.monotonic()
    during = [sender.ok("send", {"room": room, "text": f"while deaf {n}"})["id"]
              for n in range(10)]
    redis_client = redis.Redis.from_url(cluster.redis_url, decode_responses=True)
    canary_channel = f"node:{{{node}}}:canary"
    subscribed = redis_client.execute_command("PUBSUB", "SHARDNUMSUB", canary_channel)[1]
    assert subscribed == 1, "Redis should still list the deaf node's subscription"

    reasons = []
    wait_for(lambda: reasons.append(readiness(cluster)) or reasons[-1][0] == 503, 10,
             "the deaf node to say it is not ready")
    not_ready_after = time.monotonic() - deafened_at
    # either the canary's own reason or, once it reconnected the bus, the restoring
    assert "canary" in reasons[-1][1] or "restored" in reasons[-1][1], reasons[-1]
    wait_for(lambda: readiness(cluster)[0] == 200, 15,
             "the node to reconnect its bus and be ready again")
    ready_again_after = time.monotonic() - deafened_at
    after = sender.ok("send", {"room": room, "text": "after"})["id"]
    got = receiver.take("message", len(during) + 1, timeout=15)
    assert [m["id"] for m in got] == [*during, after], "lost, repeated or out of order"
    assert receiver.until_marker(sender.mark_room(room)) == [], "repeated"

    metrics = requests.get(cluster.node_url(DEAF) + "/metrics", timeout=5).text
    lost = float(next(line.split()[-1] for line in metrics.splitlines()
                      if line.startswith('rooms_canary_lost_total{source="self"}')))
    replayed = float(next(line.split()[-1] for line in metrics.splitlines()
                          if line.startswith("rooms_bus_replayed_total")))
    assert lost >= 1 and replayed >= len(during)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "deaf-node.json").write_text(json.dumps({
        "deadline_s": float(CANARY["CANARY_DEADLINE_S"]),
        "not_ready_after_s": round(not_ready_after, 2),
        "ready_again_after_s": round(ready_again_after, 2),
        "canaries_lost": lost, "replayed": replayed,
        "messages_while_deaf": len(during)}, indent=2))
