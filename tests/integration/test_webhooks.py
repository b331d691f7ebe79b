"""Webhooks on a real cluster (PROTOCOL.md, "Webhooks: your backend hears what happened"): three
nodes POST signed batches to a real receiver in this process, on one Redis and on a Redis
Cluster. Every event type arrives; at least once, in stored order per room and per inbox, with
several nodes sending at once and never two with one room's batch in flight; a receiver that
answers 500, hangs or is down gets everything once it answers again, with the same ids, after
pauses that grow."""

from __future__ import annotations

import itertools
import json
import threading
from collections.abc import Iterator

import pytest
import requests
from cluster import Cluster

from service.store import keys
from tests.integration.conftest import API_KEY
from tests.waiting import wait_for
from tests.webhook_cluster import joined, message_ids, metric, new_receiver, webhook_cluster
from tests.webhook_receiver import FAIL, HANG, OK, Receiver, in_stored_order, outbox_of

pytestmark = pytest.mark.local_cluster  # its own cluster, with a receiver in this process
API = {"Authorization": f"Bearer {API_KEY}"}


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    server = new_receiver()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def cluster(redis_mode: str, receiver: Receiver) -> Iterator[Cluster]:
    with webhook_cluster("webhooks", redis_mode, receiver) as instance:
        yield instance


@pytest.fixture(autouse=True)
def answering(receiver: Receiver) -> Iterator[None]:
    """Every test starts and ends with a receiver that answers at once."""
    yield
    receiver.mode, receiver.delay_s = OK, 0.0
    if not receiver.up:
        receiver.start()


@pytest.mark.redis_cluster
def test_every_event_type_arrives_signed(users, receiver, cluster, room):
    alice, a = users.user_on("node-1", "wa")
    bob, b = users.user_on("node-2", "wb")
    a.ok("join", {"room": room})
    b.ok("join", {"room": room})
    a.ok("send", {"room": room, "text": "hello", "client_id": "c-1"})
    posted = requests.post(f"{cluster.url}/api/rooms/{room}/messages",
                           json={"text": "from the app"}, headers=API, timeout=10)
    assert posted.status_code == 202
    a.ok("direct", {"to": bob, "text": "psst"})
    [received] = b.take("direct", 1)
    b.ok("leave", {"room": room})
    a.close()  # her last connection: she leaves the room's presence

    def events_of(kind: str) -> list[tuple]:
        return [(e.get("user"), e.get("action")) for e in receiver.delivered()
                if e["type"] == kind and e.get("room") == room]

    wanted_presence = {(alice, "join"), (bob, "join"), (bob, "leave"), (alice, "leave")}
    wanted_member = {(alice, "joined"), (bob, "joined"), (bob, "left")}
    wait_for(lambda: set(events_of("presence")) == wanted_presence
             and set(events_of("member")) == wanted_member
             and receiver.has(message_ids(users, room))
             and f"d:{bob}:{received['id']}" in receiver.delivered_ids(),
             what="every event type")
    stored = {message["id"]: message for message in users.history(room)}
    for event in receiver.delivered():
        if event["type"] == "message" and event["room"] == room:
            message = stored[event["message"]["id"]]
            assert event == {"id": f"m:{room}:{message['id']}", "type": "message",
                             "ts": message["ts"], "room": room, "message": message}
        elif event["type"] == "direct" and event["message"]["to"] == bob:
            assert event == {"id": f"d:{bob}:{received['id']}", "type": "direct",
                             "ts": received["ts"], "message": received}
        elif event.get("room") == room:
            assert event["id"].startswith(f"e:{room}:") and isinstance(event["ts"], int)
    assert [m["user"] for m in stored.values()] == [alice, "api"]
    assert receiver.unsigned() == 0


def spread_rooms(cluster: Cluster, prefix: str, count: int = 3) -> list[str]:
    """`count` rooms; on a Redis Cluster, on every master, and some on another master than the
    webhook index (whose writes then go to another slot than the append's)."""
    if not cluster.clustered:
        return [f"{prefix}-{n}" for n in range(count)]
    masters = cluster.redis_masters()
    index_master = cluster.master_of(keys.WEBHOOK_DUE)
    rooms: dict[int, str] = {}
    for n in range(1000):
        name = f"{prefix}-{n}"
        rooms.setdefault(cluster.master_of(keys.room_log(name)), name)
        if len(rooms) == len(masters):
            break
    assert set(rooms) == set(masters) and set(rooms) - {index_master}
    return list(rooms.values())


@pytest.mark.redis_cluster
def test_at_least_once_in_stored_order_with_every_node_sending_and_no_overlap(
        users, receiver, cluster, room):
    receiver.delay_s = 0.02  # each answer takes a while: overlapping requests would show
    rooms = spread_rooms(cluster, room)
    reader, r = users.user_on("node-1", "wr")
    senders = [users.user_on(node, "ws")[1] for node in ("node-1", "node-2", "node-3")]
    for client in senders:
        for name in rooms:
            client.ok("join", {"room": name})

    def send(client, n: int) -> None:
        for i in range(24):
            client.ok("send", {"room": rooms[i % len(rooms)], "text": f"{n}-{i}"})
            if i % 3 == 0:
                client.ok("direct", {"to": reader, "text": f"{n}-{i}"})

    threads = [threading.Thread(target=send, args=(client, n))
               for n, client in enumerate(senders)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    directs = r.take("direct", 24)
    wanted = set().union(*(message_ids(users, name) for name in rooms))
    wanted |= {f"d:{reader}:{direct['id']}" for direct in directs}
    assert len(wanted) == 3 * 24 + 24
    wait_for(lambda: receiver.has(wanted), timeout=20, what="every message and direct")
    delivered = [e for e in receiver.delivered() if e["id"] in wanted]
    assert in_stored_order(delivered)
    for name in rooms:  # exactly the room's stored order
        assert [e["message"]["id"] for e in delivered if e.get("room") == name] == [
            m["id"] for m in users.history(name)]
    assert [e["message"]["id"] for e in delivered if outbox_of(e) == f"inbox:{reader}"] == [
        d["id"] for d in directs]
    ours = {f"room:{name}" for name in rooms} | {f"inbox:{reader}"}
    assert set(receiver.overlaps) & ours == set()  # (a hung request of another test's may)
    assert receiver.unsigned() == 0


def test_a_receiver_answering_500_gets_everything_once_it_answers_with_the_same_ids(
        users, receiver, cluster, room):
    a = joined(receiver, users, "node-2", room, "wf")
    receiver.mode = FAIL
    first = a.ok("send", {"room": room, "text": "first"})
    first_id = f"m:{room}:{first['id']}"
    retries_before = metric(cluster, "rooms_webhook_retries_total")
    wait_for(lambda: len(receiver.attempts_with(first_id)) >= 4, timeout=15,
             what="four tries of the first message")
    attempts = receiver.attempts_with(first_id)[:4]
    gaps = [later.arrived - earlier.arrived for earlier, later in itertools.pairwise(attempts)]
    # pauses grow: 0.25-0.5 s, then 0.5-1 s, then 1-2 s (plus up to a poll of the index)
    assert gaps[0] >= 0.2 and gaps[1] >= 0.45 and gaps[2] >= 0.95 and gaps[2] > gaps[0], gaps
    for attempt in attempts:  # the same event, the same id, first in its room each time
        ours = [e for e in attempt.events if e.get("room") == room and e["type"] == "message"]
        assert ours[0]["id"] == first_id and ours[0]["message"]["text"] == "first"
    a.ok("send", {"room": room, "text": "second"})
    receiver.mode = OK
    wait_for(lambda: receiver.has(message_ids(users, room)), timeout=15,
             what="both messages after the receiver answers 200")
    assert metric(cluster, "rooms_webhook_retries_total") >= retries_before + 3
    assert metric(cluster, "rooms_webhook_batches_total", 'outcome="rejected"') >= 3


def test_a_receiver_that_was_down_gets_everything_after_it_comes_back(
        users, receiver, cluster, room):
    a = joined(receiver, users, "node-3", room, "wd")
    receiver.stop()
    for n in range(5):
        a.ok("send", {"room": room, "text": f"while down {n}"})
    # after the n-th failed try in a row the room waits until `next` (Redis's clock): the
    # times between the n-th and the next try's `next` grow with n
    client = cluster.redis_client(decode_responses=True)
    pause_ends: dict[int, int] = {}

    def four_failed_tries() -> bool:
        failures, pause_end = client.hmget(keys.room_webhook(room), "failures", "next")
        if failures is not None and pause_end is not None:
            pause_ends.setdefault(int(failures), int(pause_end))
        return len(pause_ends) >= 4 and set(pause_ends) >= {1, 2, 3, 4}

    try:
        wait_for(four_failed_tries, timeout=15, poll_s=0.02, what="four tries while down")
    finally:
        client.close()
    between = [(pause_ends[n + 1] - pause_ends[n]) / 1000 for n in (1, 2, 3)]
    # 0.5-1 s, 1-2 s, 2-4 s (plus up to a poll of the index)
    assert between[0] >= 0.45 and between[1] >= 0.95 and between[2] >= 1.95, between
    assert between[2] > between[0], between
    assert metric(cluster, "rooms_webhook_batches_total", 'outcome="unreachable"') >= 4
    receiver.start()
    wait_for(lambda: receiver.has(message_ids(users, room)), timeout=15,
             what="every message once the receiver is back")
    assert in_stored_order(receiver.delivered())


def test_a_receiver_that_hangs_is_timed_out_and_tried_again(users, receiver, cluster, room):
    a = joined(receiver, users, "node-1", room, "wh")
    receiver.mode, receiver.hang_s = HANG, 2.5
    a.ok("send", {"room": room, "text": "into the void"})
    timeouts = metric(cluster, "rooms_webhook_batches_total", 'outcome="timeout"')
    wait_for(lambda: metric(cluster, "rooms_webhook_batches_total",
                            'outcome="timeout"') > timeouts, timeout=10,
             what="a request timed out")
    receiver.mode = OK
    wait_for(lambda: receiver.has(message_ids(users, room)), timeout=15,
             what="the message once the receiver answers")


def test_the_metrics_and_the_cluster_pages_figures_show_the_webhooks(
        users, receiver, cluster, room):
    _, a = users.user_on("node-1", "wm")
    a.ok("join", {"room": room})
    a.ok("send", {"room": room, "text": "counted"})
    wait_for(lambda: receiver.has(message_ids(users, room)), what="the message")
    assert metric(cluster, "rooms_webhook_events_total", 'outcome="delivered"') >= 1
    assert metric(cluster, "rooms_webhook_pending_outboxes") >= 0

    def delivered_by_the_nodes() -> int:
        stats = node_stats(cluster)  # what /admin/cluster.json shows of each node
        assert all(node["webhooks"] is not None for node in stats)
        return sum(node["webhooks"]["delivered"] for node in stats)

    wait_for(lambda: delivered_by_the_nodes() >= 1, what="the nodes' figures count it")


def node_stats(cluster: Cluster) -> list[dict]:
    """Every node's figures as its last heartbeat left them in the registry."""
    client = cluster.redis_client(decode_responses=True)
    try:
        return [json.loads(client.hget(keys.node_info(cluster.node_name(i)), "stats") or "{}")
                for i in cluster.indexes()]
    finally:
        client.close()
