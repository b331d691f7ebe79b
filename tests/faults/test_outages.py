"""A dead node's users leave presence; Redis down means `unavailable`; nodes recover alone."""

import shutil
import signal
import time

import pytest
import requests
from cluster import Cluster

from tests.conftest import RESULTS, TEST_ENV
from tests.integration.conftest import API_KEY, Users

pytestmark = pytest.mark.local_cluster


def test_presence_forgets_the_users_of_a_node_that_dies(cluster, users, room):
    doomed_name, doomed = users.user_on("node-3")
    survivor_name, survivor = users.user_on("node-1")
    for client in (doomed, survivor):
        client.ok("join", {"room": room})
    survivor.drain("presence")
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
def small_cluster():
    shutil.rmtree(RESULTS / "small-cluster", ignore_errors=True)
    instance = Cluster(nodes=1, port=28080, redis_port=26379, node_base_port=25001,
                       run_dir=RESULTS / "small-cluster", env=dict(TEST_ENV))
    instance.start()
    yield instance
    instance.stop()


def test_redis_down_answers_unavailable_then_everything_recovers(small_cluster):
    pool = Users(small_cluster)
    try:
        _name, client = pool.user_on("node-1")
        room = "outage"
        client.ok("join", {"room": room})
        before = client.ok("send", {"room": room, "text": "before the outage"})
        client.take("message", 1)

        small_cluster.stop_redis()
        answer = client.call("send", {"room": room, "text": "during the outage"})
        assert answer["ok"] is False and answer["error"]["code"] == "unavailable"
        assert client.call("history", {"room": room})["error"]["code"] == "unavailable"
        ready = requests.get(small_cluster.node_url(1) + "/readyz", timeout=5)
        assert ready.status_code == 503
        assert requests.get(small_cluster.node_url(1) + "/healthz", timeout=5).status_code == 200
        assert client.sio.connected

        restarted_at = time.monotonic()
        small_cluster.start_redis()
        small_cluster.wait_node_ready(1, timeout=20)
        recovery = time.monotonic() - restarted_at
        assert recovery < 20
        after = client.ok("send", {"room": room, "text": "after the outage"})
        assert client.take("message", 1)[0]["id"] == after["id"]  # the subscription is back
        history = client.ok("history", {"room": room})["messages"]
        assert [m["id"] for m in history] == [before["id"], after["id"]]
    finally:
        pool.close()


def test_a_bad_setting_stops_the_start_with_a_message_naming_it():
    bad = Cluster(nodes=1, port=38080, redis_port=36379, node_base_port=35001,
                  run_dir=RESULTS / "bad-settings", env={"MAX_TEXT_CHARS": "lots"})
    with pytest.raises(SystemExit) as info:
        bad.start()
    assert "configuration error: MAX_TEXT_CHARS must be an integer" in str(info.value)
    assert not bad.processes  # nothing it started is left running
