"""Webhooks through crashes, on one Redis and on a Redis Cluster: a node SIGKILLed while it sends
loses no event (its leases expire and another node, or the restarted one, sends what it held),
and an outbox whose index entry a crash lost (between the append and the index write) is found
by the sweep."""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from collections.abc import Iterator

import pytest
from cluster import Cluster

from service.store import keys
from tests.integration.test_webhooks import spread_rooms
from tests.waiting import wait_for
from tests.webhook_cluster import (
    SWEEP_S,
    joined,
    logs,
    message_ids,
    new_receiver,
    webhook_cluster,
)
from tests.webhook_receiver import FAIL, OK, Receiver, in_stored_order

# also on a Redis Cluster: the webhook outbox and its index in other slots
pytestmark = [pytest.mark.local_cluster,  # kills nodes; its own cluster and receiver
              pytest.mark.redis_cluster]


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    server = new_receiver()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def cluster(redis_mode: str, receiver: Receiver) -> Iterator[Cluster]:
    with webhook_cluster("webhook-crash", redis_mode, receiver) as instance:
        yield instance


@pytest.fixture(autouse=True)
def answering(receiver: Receiver) -> Iterator[None]:
    yield
    receiver.mode, receiver.delay_s = OK, 0.0


def test_a_node_killed_while_it_sends_loses_no_event(users, receiver, cluster, room):
    receiver.delay_s = 0.3  # every request is in flight a while: the kill lands in one
    rooms = spread_rooms(cluster, room)
    clients = {node: users.user_on(node, "wk")[1] for node in ("node-1", "node-2", "node-3")}
    for client in clients.values():
        for name in rooms:
            client.ok("join", {"room": name})

    def send(node: str) -> None:
        client = clients[node]
        for i in range(30):
            if not client.sio.connected:
                return  # node-2's, once it is gone
            with contextlib.suppress(Exception):  # an answer lost with node-2
                client.ok("send", {"room": rooms[i % len(rooms)], "text": f"{node} {i}"})

    threads = [threading.Thread(target=send, args=(node,)) for node in clients]
    for thread in threads:
        thread.start()
    cut: list = []
    wait_for(lambda: cut.append(receiver.in_flight_from("node-2")) or cut[-1] is not None,
             what="a request of node-2's in flight")
    cluster.kill_node(2)  # its batch is never answered: the events stay undelivered
    for thread in threads:
        thread.join(60)
    cluster.start_node(2)
    wanted = set().union(*(message_ids(users, name) for name in rooms))
    assert len(wanted) >= 60
    wait_for(lambda: receiver.has(wanted), timeout=30, what="every stored message")
    ours = {f"room:{name}" for name in rooms}
    assert in_stored_order([e for e in receiver.delivered() if f"room:{e.get('room')}" in ours])
    assert set(receiver.overlaps) & ours == set()
    in_flight = cut[-1]
    assert in_flight.status == 0  # node-2 never heard an answer
    assert {event["id"] for event in in_flight.events} <= receiver.delivered_ids()


def test_an_outbox_the_index_lost_is_found_by_the_sweep(users, receiver, cluster, room):
    a = joined(receiver, users, "node-1", room, "wz")
    receiver.mode = FAIL
    a.ok("send", {"room": room, "text": "left out of the index"})
    client = cluster.redis_client(decode_responses=True)
    member = f"room:{room}"

    def put_off_and_idle() -> bool:
        """Tried twice, put off a while (0.5-1 s) and no sender holds it."""
        failures = client.hget(keys.room_webhook(room), "failures")
        score = client.zscore(keys.WEBHOOK_DUE, member)
        return (int(failures or 0) >= 2 and not client.exists(keys.room_webhook_lease(room))
                and score is not None and score > time.time() * 1000 + 200)

    try:
        wait_for(put_off_and_idle, poll_s=0.02, what="the room put off after two tries")
        client.zrem(keys.WEBHOOK_DUE, member)  # as if its node died before writing it
        receiver.mode = OK
        wait_for(lambda: receiver.has(message_ids(users, room)), timeout=3 * SWEEP_S + 5,
                 what="the message, once the sweep indexed its room again")
    finally:
        client.close()
    assert "webhook sweep found" in logs(cluster)


def test_a_draining_node_finishes_its_request_and_stops_sending(users, receiver, cluster, room):
    receiver.delay_s = 0.3
    a = joined(receiver, users, "node-1", room, "wt")
    for n in range(10):
        a.ok("send", {"room": room, "text": f"around a drain {n}"})
    cluster.kill_node(3, signal.SIGTERM)  # returns once it exited
    log = (cluster.log_dir / "node-3.log").read_text()
    assert "draining" in log and "webhook sender stopped" in log
    assert "Traceback" not in log
    wait_for(lambda: receiver.has(message_ids(users, room)), timeout=20, what="every message")
    cluster.start_node(3)
