"""The webhook tests' cluster: the project's launcher with WEBHOOK_URL pointing at a real
receiver (tests/webhook_receiver.py) in the test process, on ports of its own.

Ports: front door 21580 (nginx status 21590), nodes from 21601, Redis 21679 (a Redis Cluster:
21671-21676, +10000 for its bus), the receiver one of 21700-21799.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

import requests
from cluster import Cluster

from tests.conftest import own_cluster
from tests.integration.conftest import Client, Users
from tests.waiting import wait_for
from tests.webhook_receiver import Receiver, free_port_in

PORT, STATUS_PORT, NODE_BASE_PORT = 21580, 21590, 21601
REDIS_PORTS = {"single": 21679, "cluster": 21671}
RECEIVER_PORTS = (21700, 21799)
SECRET = "webhook-test-secret-0123456789"
TIMEOUT_S = 1  # HOOK_TIMEOUT_S: a hung receiver costs the sender a second
SWEEP_S = 2  # WEBHOOK_SWEEP_S


def new_receiver() -> Receiver:
    receiver = Receiver(free_port_in(*RECEIVER_PORTS), SECRET)
    receiver.start()
    return receiver


@contextmanager
def webhook_cluster(name: str, redis_mode: str, receiver: Receiver,
                    env: dict[str, str] | None = None) -> Iterator[Cluster]:
    """Three nodes sending webhooks to `receiver`, through one front door."""
    settings = {"WEBHOOK_URL": receiver.url, "HOOK_SECRET": SECRET,
                "HOOK_TIMEOUT_S": str(TIMEOUT_S), "WEBHOOK_RETRY_S": "3600",
                "WEBHOOK_BATCH_MAX": "20", "WEBHOOK_SWEEP_S": str(SWEEP_S), **(env or {})}
    with own_cluster(f"{name}-{redis_mode}", nodes=3, port=PORT, status_port=STATUS_PORT,
                     redis_port=REDIS_PORTS[redis_mode], node_base_port=NODE_BASE_PORT,
                     redis_mode=redis_mode, env=settings) as instance:
        yield instance


def message_ids(users: Users, room: str) -> set[str]:
    """The webhook ids of every message the room stored."""
    return {f"m:{room}:{message['id']}" for message in users.history(room)}


def joined(receiver: Receiver, users: Users, node: str, room: str, prefix: str) -> Client:
    """A client of a new user on `node` in `room`, once its join's events were delivered (so a
    test's failures start with its first message)."""
    user, client = users.user_on(node, prefix)
    client.ok("join", {"room": room})
    wait_for(lambda: any(e["type"] == "member" and e.get("room") == room and e["user"] == user
                         for e in receiver.delivered()), what="the join's events")
    return client


def metric(cluster: Cluster, name: str, labels: str = "") -> float:
    """`name{labels}` summed over the live nodes (each node's own /metrics)."""
    pattern = re.compile(rf"^{re.escape(name)}(\{{[^}}]*\}})? (\S+)$", re.MULTILINE)
    total = 0.0
    for index in cluster.indexes():
        if cluster.processes.get(cluster.node_name(index)) is None:
            continue
        try:
            text = requests.get(cluster.node_url(index) + "/metrics", timeout=5).text
        except requests.RequestException:
            continue
        for found in pattern.finditer(text):
            if labels in (found.group(1) or ""):
                total += float(found.group(2))
    return total


def logs(cluster: Cluster) -> str:
    return "".join(path.read_text(errors="replace") for path in cluster.log_dir.glob("node-*.log"))
