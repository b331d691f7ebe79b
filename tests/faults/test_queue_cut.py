"""A node's message-queue subscription is cut: it notices, is not ready, resubscribes, and its
clients get everything published meanwhile, once and in order."""

from __future__ import annotations

import threading

import pytest
import redis
import requests

from tests.waiting import wait_for

# also on a Redis Cluster: a cut sharded subscription
pytestmark = [pytest.mark.local_cluster, pytest.mark.redis_cluster]


class SubscriptionCutter(threading.Thread):
    """Kills one node's bus connections (on every master) again and again until stopped."""

    def __init__(self, cluster, node: str):
        super().__init__(daemon=True)
        self.servers = [redis.Redis(port=port, password=cluster.redis_password,
                                    decode_responses=True) for port in cluster.redis_ports()]
        self.name_to_cut = f"{node}:bus"
        self.stop = threading.Event()
        self.kills = 0

    def run(self) -> None:
        while not self.stop.is_set():
            for server in self.servers:
                for client in server.client_list(_type="pubsub"):
                    if client["name"] == self.name_to_cut:
                        self.kills += server.client_kill_filter(_id=client["id"])
            self.stop.wait(0.05)


def readiness(url: str) -> int:
    return requests.get(url + "/readyz", timeout=5).status_code


def test_a_cut_subscription_is_noticed_and_nothing_published_meanwhile_is_lost(cluster, users,
                                                                                room):
    sender_name, sender = users.user_on("node-1")
    receiver_name, receiver = users.user_on("node-2")
    for client in (sender, receiver):
        client.ok("join", {"room": room})
    sender.ok("send", {"room": room, "text": "before the cut"})
    assert [m["text"] for m in receiver.take("message", 1)] == ["before the cut"]

    cutter = SubscriptionCutter(cluster, "node-2")
    cutter.start()
    try:
        wait_for(lambda: readiness(cluster.node_url(2)) == 503, 10,
                 "node-2 to say it is not ready while its queue is cut")
        during = [sender.ok("send", {"room": room, "text": f"during the cut {n}"})["id"]
                  for n in range(20)]
        direct = sender.ok("direct", {"to": receiver_name, "text": "a direct one meanwhile"})
    finally:
        cutter.stop.set()
        cutter.join()
    assert cutter.kills >= 1

    got = receiver.take("message", 20, timeout=10)
    assert [m["id"] for m in got] == during
    [dm] = receiver.take("direct", 1, timeout=10)
    assert (dm["id"], dm["from"], dm["text"]) == (direct["id"], sender_name,
                                                   "a direct one meanwhile")
    wait_for(lambda: readiness(cluster.node_url(2)) == 200, 10, "node-2 to be ready again")
    after = sender.ok("send", {"room": room, "text": "after the cut"})
    [live] = receiver.take("message", 1)
    assert live["id"] == after["id"]  # the next one: no message twice
    assert receiver.until_marker(sender.mark_user(receiver_name)) == []  # nor a direct
