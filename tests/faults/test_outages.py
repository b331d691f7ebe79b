"""A dead node's users leave presence; Redis down means `unavailable`; nodes recover alone."""

import signal
import time

import pytest
import requests
from cluster import Cluster

from service.store.messages import parse_id
from tests.conftest import RESULTS, TEST_ENV, own_cluster
from tests.integration.conftest import API_KEY, Users
from tests.waiting import wait_for

from .resuming import ResumingClient, Sender, post_marker

# also on a Redis Cluster: a dead node's presence swept across slots
pytestmark = [pytest.mark.local_cluster, pytest.mark.redis_cluster]


def test_presence_forgets_the_users_of_a_node_that_dies(cluster, users, room):
    doomed_name, doomed = users.user_on("node-3")
    survivor_name, survivor = users.user_on("node-1")
    for client in (doomed, survivor):
        client.ok("join", {"room": room})
    # its own join: the doomed user joined before it was there to hear
    assert survivor.take("presence", 1) == [{"room": room, "user": survivor_name,
                                             "action": "join"}]
    assert survivor.ok("presence", {"room": room})["members"] == sorted(
        [doomed_name, survivor_name])
    killed_at = time.monotonic()
    cluster.kill_node(3, signal.SIGKILL)
    try:
        [event] = survivor.take("presence", 1, timeout=float(TEST_ENV["NODE_TTL_S"]) + 5)
        waited = time.monotonic() - killed_at
        assert event == {"room": room, "user": doomed_name, "action": "leave"}
        assert waited < float(TEST_ENV["NODE_TTL_S"]) + 2 * float(TEST_ENV["HEARTBEAT_INTERVAL_S"])
        assert survivor.ok("presence", {"room": room})["members"] == [survivor_name]
        cluster_view = requests.get(cluster.url + "/api/cluster", timeout=5, headers={
            "Authorization": f"Bearer {API_KEY}"}).json()["nodes"]
        assert "node-3" not in {n["node"] for n in cluster_view}
    finally:
        cluster.start_node(3)


@pytest.fixture
def pair_cluster():
    with own_cluster("pair-cluster", nodes=2, port=28080, redis_port=26379,
                     node_base_port=25001) as instance:
        yield instance


def stored_ids(base: str, room: str) -> list[str]:
    """Every id in the room's history, read page by page over the HTTP API."""
    ids: list[str] = []
    while True:
        answer = requests.get(f"{base}/api/rooms/{room}/messages",
                              params={"after": ids[-1] if ids else "0-0", "limit": 500},
                              headers={"Authorization": f"Bearer {API_KEY}"}, timeout=5)
        page = [m["id"] for m in answer.json()["messages"]]
        ids += page
        if len(page) < 500:
            return ids


def by_id(ids):
    return sorted(ids, key=parse_id)


def test_redis_restarting_under_traffic_loses_no_acknowledged_message(pair_cluster):
    pool = Users(pair_cluster)
    room = "outage"
    keys = {}
    for n in range(200):
        node = requests.get(f"{pair_cluster.url}/healthz?node_key=o{n}", timeout=5).json()["node"]
        keys.setdefault(node, []).append(f"o{n}")
    clients = [ResumingClient(pair_cluster.url, pool.register("o")[1], keys[node][i], room)
               for node in ("node-1", "node-2") for i in range(2)]
    senders = [Sender(clients[0]), Sender(clients[2])]
    try:
        for sender in senders:
            sender.start()
        wait_for(lambda: all(len(s.acked) > 10 for s in senders), 20, "the senders to get going")
        pair_cluster.stop_redis()
        acked_before = {i for s in senders for i in s.acked}
        wait_for(lambda: all(s.failures["unavailable"] > 0 for s in senders), 20,
                 "every sender to be answered `unavailable`")
        for index in pair_cluster.indexes():
            wait_for(lambda index=index: requests.get(
                pair_cluster.node_url(index) + "/readyz", timeout=5).status_code == 503, 10,
                f"node {index} to say it is not ready")
            assert requests.get(pair_cluster.node_url(index) + "/healthz",
                                timeout=5).status_code == 200
        assert all(c.sio.connected for c in clients)  # nobody is dropped for Redis's sake

        restarted_at = time.monotonic()
        pair_cluster.start_redis()
        for index in pair_cluster.indexes():
            pair_cluster.wait_node_ready(index, timeout=20)
        recovery = time.monotonic() - restarted_at
        count_before_restart = sum(len(s.acked) for s in senders)
        wait_for(lambda: sum(len(s.acked) for s in senders) >= count_before_restart + 40, 10,
                 "sending to resume after Redis came back")
        for sender in senders:
            sender.stop.set()
            sender.join(10)
        acked = by_id({i for s in senders for i in s.acked})
        assert acked_before <= set(acked)
        stored = stored_ids(pair_cluster.url, room)
        assert set(acked) <= set(stored), "an acknowledged message is not in the history"
        marker = post_marker(pair_cluster.url, room)
        for client in clients:
            client.wait_for(marker, timeout=10)
            assert client.ids == by_id(set(client.ids)), "a duplicate or a message out of order"
            assert set(acked) <= set(client.ids)
        assert recovery < 10
        print(f"redis restart: {len(acked)} acknowledged ({len(acked_before)} before the outage), "
              f"{sum(s.failures['unavailable'] for s in senders)} `unavailable` answers, "
              f"nodes ready {recovery:.2f} s after Redis restarted, nothing lost or duplicated")
    finally:
        for client in clients:
            client.close()
        pool.close()


def test_a_bad_setting_stops_the_start_with_a_message_naming_it():
    bad = Cluster(nodes=1, port=21080, redis_port=21379, node_base_port=21001,
                  run_dir=RESULTS / "bad-settings", env={"MAX_TEXT_CHARS": "lots"})
    with pytest.raises(SystemExit) as info:
        bad.start()
    assert "configuration error: MAX_TEXT_CHARS must be an integer" in str(info.value)
    assert not bad.processes  # nothing it started is left running
