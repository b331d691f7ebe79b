"""Room messages, direct messages, presence, order and resume across the nodes of a real cluster."""

import json
import statistics
import threading
import time

import pytest
import requests

from service.store.messages import parse_id
from tests.waiting import wait_for

from .conftest import API_KEY, RESULTS


@pytest.mark.redis_cluster
def test_room_messages_reach_every_member_on_every_node(users, room, nodes):
    members = [users.user_on(node) for node in nodes]
    assert sorted(client.node for _, client in members) == nodes
    for _, client in members:
        client.ok("join", {"room": room})
    sent = []
    for name, client in members:
        ack = client.ok("send", {"room": room, "text": f"hello from {name}", "client_id": name})
        sent.append({"id": ack["id"], "room": room, "user": name, "text": f"hello from {name}",
                     "ts": ack["ts"], "node": client.node, "client_id": name})
    marker = members[0][1].mark_room(room)
    for _, client in members:
        # the sender's own copy included, in order, and nothing else
        assert client.until_marker(marker) == sent


def test_message_node_names_the_accepting_node_and_ts_is_server_time(users, room, nodes):
    _, sender = users.user_on(nodes[1])
    _, receiver = users.user_on(nodes[2])
    for client in (sender, receiver):
        client.ok("join", {"room": room})
    before = time.time() * 1000
    ack = sender.ok("send", {"room": room, "text": "t"})
    [message] = receiver.take("message", 1)
    assert message["node"] == nodes[1]
    assert "client_id" not in message
    assert before - 2000 <= ack["ts"] <= time.time() * 1000 + 2000
    assert message["ts"] == ack["ts"]


@pytest.mark.redis_cluster
def test_direct_messages_cross_nodes_to_every_connection(users, nodes):
    alice, token = users.register("alice")
    alice_1 = users.connect(token, nodes[0])
    alice_2 = users.connect(token, nodes[1])
    bob, bob_client = users.user_on(nodes[2], "bob")

    ack = bob_client.ok("direct", {"to": alice, "text": "hi alice", "client_id": "d1"})
    expected = {"id": ack["id"], "from": bob, "to": alice, "text": "hi alice", "ts": ack["ts"],
                "node": nodes[2], "client_id": "d1"}
    assert alice_1.take("direct", 1) == [expected]
    assert alice_2.take("direct", 1) == [expected]

    ack = alice_1.ok("direct", {"to": bob, "text": "hi bob"})
    # the next direct on bob's channel, so the sending connection got the ack, not a copy
    assert bob_client.take("direct", 1)[0]["text"] == "hi bob"
    assert alice_2.take("direct", 1)[0]["id"] == ack["id"]  # the sender's other connection
    assert alice_1.until_marker(bob_client.mark_user(alice)) == []  # but not the sending one


@pytest.mark.redis_cluster
def test_presence_is_the_same_from_every_node_and_follows_leaves(users, room, nodes):
    clients = {}
    for node in nodes:
        name, client = users.user_on(node)
        clients[name] = client
        client.ok("join", {"room": room})
    names = sorted(clients)
    for client in clients.values():
        assert client.ok("presence", {"room": room})["members"] == names
    first, *rest = names
    watcher = clients[rest[-1]]
    joined_since_the_watcher = list(clients)[list(clients).index(rest[-1]):]
    assert watcher.until_marker(watcher.mark_room(room), "presence") == [
        {"room": room, "user": name, "action": "join"} for name in joined_since_the_watcher]
    clients[first].ok("leave", {"room": room})
    assert watcher.take("presence", 1) == [{"room": room, "user": first, "action": "leave"}]
    clients[rest[0]].close()  # a disconnect leaves every room
    assert watcher.take("presence", 1) == [{"room": room, "user": rest[0], "action": "leave"}]
    assert watcher.ok("presence", {"room": room})["members"] == [rest[-1]]
    outsider = users.user_on(nodes[0])[1]
    assert outsider.ok("presence", {"room": room})["members"] == [rest[-1]]


@pytest.mark.redis_cluster
def test_join_announces_presence_to_members_on_other_nodes(users, room, nodes):
    watcher_name, watcher = users.user_on(nodes[0])
    watcher.ok("join", {"room": room})
    assert watcher.take("presence", 1) == [{"room": room, "user": watcher_name, "action": "join"}]
    name, joiner = users.user_on(nodes[2])
    answer = joiner.ok("join", {"room": room})
    assert answer["node"] == nodes[2]
    assert name in answer["members"]
    assert watcher.take("presence", 1) == [{"room": room, "user": name, "action": "join"}]


@pytest.mark.redis_cluster
def test_concurrent_senders_on_all_nodes_give_every_receiver_the_stored_order(users, room, nodes):
    senders = [users.user_on(node)[1] for node in nodes]
    receivers = [users.user_on(node)[1] for node in nodes * 2]
    for client in senders + receivers:
        client.ok("join", {"room": room})
    per_sender = 60
    acked: list[str] = []
    lock = threading.Lock()

    def send_many(client, label):
        for i in range(per_sender):
            ack = client.ok("send", {"room": room, "text": f"{label}-{i}"})
            with lock:
                acked.append(ack["id"])

    threads = [threading.Thread(target=send_many, args=pair)
               for pair in zip(senders, nodes, strict=True)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    total = per_sender * len(senders)
    assert len(acked) == total
    history = senders[0].ok("history", {"room": room, "limit": 500})["messages"]
    stored = [m["id"] for m in history]
    assert sorted(acked, key=parse_id) == stored
    for client in receivers + senders:
        got = [m["id"] for m in client.take("message", total, timeout=30)]
        assert got == stored, f"{client.node} received out of stored order"


@pytest.mark.redis_cluster
def test_join_with_since_returns_exactly_what_was_missed(users, room, nodes):
    _name, token = users.register()
    reader = users.connect(token, nodes[0])
    _, writer = users.user_on(nodes[1])
    for client in (reader, writer):
        client.ok("join", {"room": room})
    writer.ok("send", {"room": room, "text": "seen"})
    last = reader.take("message", 1)[0]["id"]
    reader.close()
    missed_ids = [writer.ok("send", {"room": room, "text": f"missed {i}"})["id"] for i in range(5)]

    back = users.connect(token, nodes[2])
    answer = back.ok("join", {"room": room, "since": last})
    assert [m["id"] for m in answer["missed"]] == missed_ids
    assert [m["text"] for m in answer["missed"]] == [f"missed {i}" for i in range(5)]
    assert answer["truncated"] is False
    assert back.ok("join", {"room": room, "since": missed_ids[-1]})["missed"] == []
    assert back.until_marker(writer.mark_room(room)) == []  # none of them live as well


@pytest.mark.redis_cluster
def test_resuming_while_messages_flow_gives_each_message_exactly_once(users, room, nodes):
    _, writer = users.user_on(nodes[0])
    writer.ok("join", {"room": room})
    first = writer.ok("send", {"room": room, "text": "start"})["id"]
    stop = threading.Event()
    acked = [first]

    def keep_sending():
        i = 0
        while not stop.is_set() and i < 400:
            acked.append(writer.ok("send", {"room": room, "text": f"live {i}"})["id"])
            i += 1
            time.sleep(0.025)  # pacing: under the test cluster's rate limit of 50 events/s

    thread = threading.Thread(target=keep_sending)
    thread.start()
    try:
        wait_for(lambda: len(acked) > 5, what="messages flowing before the resumers join")
        resumers = [users.user_on(node)[1] for node in nodes]
        answers = [client.ok("join", {"room": room, "since": first}) for client in resumers]
        flowing = len(acked)
        wait_for(lambda: len(acked) > flowing + 10, what="messages flowing after the joins")
    finally:
        stop.set()
        thread.join(30)
    marker = writer.mark_room(room)
    for client, answer in zip(resumers, answers, strict=True):
        seen = [m["id"] for m in answer["missed"]] + [m["id"] for m in client.until_marker(marker)]
        assert seen == acked[1:], f"{client.node}: duplicates or gaps while resuming"


@pytest.mark.redis_cluster
def test_api_publish_reaches_the_room_as_user_api(users, room, cluster, nodes):
    _, client = users.user_on(nodes[1])
    client.ok("join", {"room": room})
    answer = requests.post(f"{cluster.url}/api/rooms/{room}/messages", json={"text": "from api"},
                           headers={"Authorization": f"Bearer {API_KEY}"}, timeout=10)
    assert answer.status_code == 202, answer.text
    [message] = client.take("message", 1)
    assert message["user"] == "api" and message["text"] == "from api"
    assert message["id"] == answer.json()["id"]


def test_delivery_times_same_node_and_cross_node_are_recorded(users, room, nodes):
    """Every message reaches every receiver; the times are written to test-results (not asserted:
    speed is measured by the load tests, not by unit timings)."""
    _, sender = users.user_on(nodes[0])
    receivers = {node: users.user_on(node)[1] for node in nodes}
    arrivals: dict[str, dict[str, float]] = {node: {} for node in nodes}
    for node, client in receivers.items():
        client.sio.on("message", lambda m, node=node: arrivals[node].setdefault(
            m["client_id"], time.perf_counter()))
        client.ok("join", {"room": room})
    sender.ok("join", {"room": room})
    sent: dict[str, float] = {}
    count = 200
    for i in range(count):
        sent[str(i)] = time.perf_counter()
        sender.ok("send", {"room": room, "text": "timing", "client_id": str(i)})
        time.sleep(0.025)  # pacing: under the test cluster's rate limit
    wait_for(lambda: all(len(a) == count for a in arrivals.values()), 10,
             f"every receiver to get all {count} messages")
    report = {}
    for node, got in arrivals.items():
        assert sorted(got, key=int) == [str(i) for i in range(count)], f"{node} lost messages"
        latencies = sorted((got[key] - sent[key]) * 1000 for key in got)
        report[("same-node " if node == nodes[0] else "cross-node ") + node] = {
            "p50_ms": round(statistics.median(latencies), 2),
            "p99_ms": round(latencies[int(len(latencies) * 0.99) - 1], 2),
            "max_ms": round(latencies[-1], 2),
        }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "delivery-latency.json").write_text(json.dumps(report, indent=2) + "\n")
