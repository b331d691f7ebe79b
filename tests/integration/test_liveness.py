"""Engine.IO liveness with directly written pings: idle clients stay, silent clients are cut off."""

import json
import time

import gevent
import pytest
import requests

from loadtests.lean_client import LeanClient
from tests.conftest import own_cluster

from .conftest import Users

pytestmark = pytest.mark.local_cluster

PING_INTERVAL_S, PING_TIMEOUT_S = 1, 1


@pytest.fixture(scope="module")
def ping_cluster():
    with own_cluster("ping-cluster", nodes=1, port=24080, redis_port=24379, node_base_port=24001,
                     env={"PING_INTERVAL_S": str(PING_INTERVAL_S),
                          "PING_TIMEOUT_S": str(PING_TIMEOUT_S)}) as instance:
        yield instance


def test_an_idle_client_that_answers_pings_outlives_many_ping_cycles(ping_cluster):
    pool = Users(ping_cluster)
    try:
        _, token = pool.register("idle")
        client = pool.connect(token)
        # the thing under test, not a wait: idle for three ping cycles (upstream's writer would
        # give up at two)
        time.sleep(3 * (PING_INTERVAL_S + PING_TIMEOUT_S))
        assert client.sio.connected
        client.ok("join", {"room": "still-here"})
        sent = client.ok("send", {"room": "still-here", "text": "after the quiet"})
        assert client.take("message", 1)[0]["id"] == sent["id"]
    finally:
        pool.close()


def test_a_client_that_stops_answering_pings_is_cut_off_and_leaves_its_rooms(ping_cluster):
    pool = Users(ping_cluster)
    try:
        silent_name, token = pool.register("silent")
        _, watcher_token = pool.register("watcher")
        watcher = pool.connect(watcher_token)
        watcher.ok("join", {"room": "liveness"})
        client = LeanClient(ping_cluster.url, token, node_key="silent")
        client.connect()
        assert client.call("join", {"room": "liveness"})["ok"]
        client._reader.kill()  # the client's process lives on but answers nothing
        started = time.monotonic()
        closed = False
        while time.monotonic() - started < 15 and not closed:
            with gevent.Timeout(15, False):
                try:
                    client._read_packet()
                except ConnectionError:
                    closed = True
        assert closed, "the node kept a client that ignores pings"
        assert time.monotonic() - started < 4 * (PING_INTERVAL_S + PING_TIMEOUT_S) + 2
        seen = []
        while {"room": "liveness", "user": silent_name, "action": "leave"} not in seen:
            seen += watcher.take("presence", 1, timeout=10)  # fails after 10 s without it
    finally:
        pool.close()


def test_a_long_polling_client_that_vanishes_is_closed_after_ping_interval_and_timeout(
        ping_cluster):
    """Without python-engineio's service task (transport/polling_liveness.py)."""
    pool = Users(ping_cluster)
    try:
        name, token = pool.register("vanishing")
        _, watcher_token = pool.register("watcher")
        watcher = pool.connect(watcher_token)
        watcher.ok("join", {"room": "polling-liveness"})
        url = f"{ping_cluster.url}/socket.io/?EIO=4&transport=polling&node_key=vanishing"
        opened = requests.get(url, timeout=5)
        sid = opened.text.split('"sid":"')[1].split('"')[0]
        session = f"{url}&sid={sid}"
        assert requests.post(session, data="40" + json.dumps({"token": token}), timeout=5).ok
        assert requests.get(session, timeout=5).text.startswith("40")
        assert requests.post(session, data='421["join",{"room":"polling-liveness"}]',
                             timeout=5).ok
        assert '"ok":true' in requests.get(session, timeout=5).text
        vanished = time.monotonic()  # no poll, no PONG from now on
        seen = []
        while {"room": "polling-liveness", "user": name, "action": "leave"} not in seen:
            seen += watcher.take("presence", 1, timeout=10)  # fails after 10 s without it
        took = time.monotonic() - vanished
        assert took < PING_INTERVAL_S + PING_TIMEOUT_S + 1.5, took
        assert requests.get(session, timeout=5).status_code == 400  # the session is gone
    finally:
        pool.close()
