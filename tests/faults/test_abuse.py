"""Abuse: a flooding client is limited, then cut off, while others carry on at normal speed; the
front door limits new sessions and open connections per address."""

from __future__ import annotations

import contextlib
import queue
import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
import websocket

from tests.conftest import TEST_ENV, own_cluster
from tests.waiting import wait_for

pytestmark = pytest.mark.local_cluster


def ack_times_ms(client, room: str, count: int) -> list[float]:
    times = []
    for n in range(count):
        started = time.perf_counter()
        client.ok("send", {"room": room, "text": f"bystander {n}"})
        times.append((time.perf_counter() - started) * 1000)
        time.sleep(0.03)  # pacing: a bystander's normal rate
    return times


def test_flooding_is_rate_limited_then_cut_off_while_others_carry_on(users, room):
    _, flooder = users.user_on("node-1")
    _, bystander = users.user_on("node-1")
    bystander.ok("join", {"room": room})
    baseline = statistics.median(ack_times_ms(bystander, room, 20))

    burst = int(TEST_ENV["RATE_LIMIT_BURST"])
    answers: queue.Queue = queue.Queue()
    for _ in range(burst + 10):  # fired without waiting for acks: the bucket has no time to
        flooder.sio.emit("presence", {"room": room}, callback=answers.put)  # refill
    codes = []
    for _ in range(burst + 10):  # the limiter answers every one: ok, then rate_limited
        answer = answers.get(timeout=30)
        codes.append("ok" if answer["ok"] else answer["error"]["code"])
    assert codes.count("ok") >= burst - 5
    assert codes.count("rate_limited") >= 5, codes

    def flood() -> None:  # then fire and forget, as fast as the socket takes it
        with contextlib.suppress(Exception):
            while flooder.sio.connected:
                flooder.sio.emit("presence", {"room": room})

    flooding = threading.Thread(target=flood, daemon=True)
    flooding.start()
    during = ack_times_ms(bystander, room, 30)
    flooding.join(10)
    assert not flooder.sio.connected, "a client that kept flooding was not disconnected"
    assert statistics.median(during) < max(50.0, 5 * baseline), (baseline, during)
    print(f"bystander ack p50: {baseline:.1f} ms before, {statistics.median(during):.1f} ms "
          f"during the flood (max {max(during):.1f} ms)")


@pytest.fixture(scope="module")
def limited_cluster():
    with own_cluster("limited-cluster", nodes=1, port=22080, redis_port=22379,
                     node_base_port=22001, env={"CONNECT_RATE_PER_S": "10", "CONNECT_BURST": "10",
                                                "CONNECTIONS_PER_ADDRESS": "15"}) as instance:
        yield instance


def handshake(base: str) -> requests.Response:
    return requests.get(f"{base}/socket.io/?EIO=4&transport=polling", timeout=5)


def test_the_front_door_limits_new_sessions_per_address(limited_cluster):
    time.sleep(1.5)  # not a wait on a condition: the bucket refills by time, to full
    with ThreadPoolExecutor(40) as pool:  # at once: a slow machine must not refill the bucket
        statuses = [answer.status_code for answer in pool.map(
            lambda _: handshake(limited_cluster.url), range(40))]
    assert statuses.count(200) >= 10
    assert statuses.count(429) >= 15, statuses
    sid = handshake_sid(limited_cluster.url)
    for _ in range(20):  # requests of an open session are not handshakes: never limited
        answer = requests.post(f"{limited_cluster.url}/socket.io/?EIO=4&transport=polling"
                               f"&sid={sid}", data="3", timeout=5)  # a pong
        assert answer.status_code != 429
    time.sleep(1.0)  # the thing under test: the limit refills by time
    assert handshake(limited_cluster.url).status_code == 200


def handshake_sid(base: str) -> str:
    for _ in range(50):
        answer = handshake(base)
        if answer.status_code == 200:
            return answer.text.split('"sid":"')[1].split('"')[0]
        time.sleep(0.1)  # pacing: the bucket refills at 10 handshakes a second
    raise AssertionError("no handshake got through")


def test_the_front_door_limits_open_connections_per_address(limited_cluster):
    url = limited_cluster.url.replace("http://", "ws://") + "/socket.io/?EIO=4&transport=websocket"
    opened, refused = [], 0
    try:
        for _ in range(20):
            time.sleep(0.12)  # under the handshake rate: only the connection limit applies
            try:
                opened.append(websocket.create_connection(url, timeout=5))
            except websocket.WebSocketBadStatusException as error:
                assert error.status_code == 429
                refused += 1
        assert len(opened) == 15 and refused == 5
        opened.pop().close()

        def opens() -> bool:
            try:
                opened.append(websocket.create_connection(url, timeout=5))
            except websocket.WebSocketBadStatusException as error:
                assert error.status_code == 429
                return False
            return True

        # polled under the handshake rate, as above
        wait_for(opens, 10, "room for one connection again", poll_s=0.12)
    finally:
        for connection in opened:
            connection.close()
    wait_for(lambda: handshake(limited_cluster.url).status_code == 200, 10,
             "all closed: served as before", poll_s=0.12)
