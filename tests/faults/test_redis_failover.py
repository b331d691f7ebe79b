"""Redis fails under traffic from senders on every node: on one Redis it restarts, on a Redis
Cluster the master of the rooms' slot is killed (SIGKILL) for good and its replica takes over,
left with no replica of its own. No acknowledged message is lost or duplicated, every receiver
keeps stored order, every room takes sends again within seconds of the failover (acknowledged
after the master alone, which the nodes show as degraded while they stay ready), and when the
dead server comes back as a replica, acknowledgements wait for it again."""

from __future__ import annotations

import threading
import time
from collections import defaultdict

import pytest
import requests

from service.primitives.ids import parse_id
from service.store import keys
from tests.waiting import wait_for

# also on a Redis Cluster: a master fails over (MOVED, a replica promoted)
pytestmark = [pytest.mark.local_cluster, pytest.mark.redis_cluster]
MESSAGES_PER_SENDER = 200
SEND_EVERY_S = 0.05  # so the traffic spans the failure (about 10 s)
RETRY_FOR_S = 45  # a sender retries `unavailable` with the same client_id this long
SENDS_AGAIN_WITHIN_S = 10  # of the failover, every room (a few seconds, generous for busy CI)


def all_ready(cluster) -> bool:
    return all(requests.get(cluster.node_url(i) + "/readyz", timeout=5).status_code == 200
               for i in cluster.indexes())


class Sender(threading.Thread):
    """Sends numbered messages, retrying each with its client_id until it is acknowledged."""

    def __init__(self, client, room: str, name: str, started: threading.Event):
        super().__init__(daemon=True)
        self.client, self.room, self.name = client, room, name
        self.started = started
        self.acked: dict[str, str] = {}  # client_id -> id
        self.acked_at: list[float] = []  # monotonic time of each acknowledgement
        self.retries = 0
        self.failure: str | None = None

    def run(self) -> None:
        for number in range(MESSAGES_PER_SENDER):
            client_id = f"{self.name}-{number}"
            deadline = time.monotonic() + RETRY_FOR_S
            while True:
                try:
                    answer = self.client.call("send", {"room": self.room, "text": client_id,
                                                       "client_id": client_id}, timeout=10)
                except Exception as error:  # a timed-out call is retried like `unavailable`
                    answer = {"ok": False, "error": {"code": "timeout", "message": str(error)}}
                if answer.get("ok"):
                    self.acked[client_id] = answer["id"]
                    self.acked_at.append(time.monotonic())
                    break
                if answer["error"]["code"] not in ("unavailable", "timeout"):
                    self.failure = str(answer)
                    return
                if time.monotonic() > deadline:
                    self.failure = f"{client_id} not acknowledged within {RETRY_FOR_S} s"
                    return
                self.retries += 1
                time.sleep(0.05)  # pacing of the sender's retries, not a wait in the test
            if number == 10:
                self.started.set()
            time.sleep(SEND_EVERY_S)  # the sender's pace


@pytest.fixture
def restores_redis(cluster):
    """Starts every Redis server a test killed again, so the next tests find the cluster whole."""
    yield
    if cluster.clustered:
        killed = [port for port in cluster.redis_ports()
                  if f"redis-{port}" not in cluster.processes]
        for port in killed:
            cluster.start_redis_server(port)
        if killed:
            wait_for(cluster.redis_cluster_ok, 60, "the killed server to be a replica in sync")


def test_redis_fails_under_traffic_and_nothing_acknowledged_is_lost_or_doubled(cluster, users,
                                                                                restores_redis):
    rooms = [f"failover-{n}-{time.time_ns()}" for n in range(3)]
    receivers = []
    for node in ("node-1", "node-2", "node-3"):
        _, receiver = users.user_on(node, "rx")
        for room in rooms:
            receiver.ok("join", {"room": room})
        receivers.append(receiver)
    started = [threading.Event() for _ in rooms]
    senders = []
    for index, (node, room) in enumerate(zip(("node-1", "node-2", "node-3"), rooms, strict=True)):
        name, client = users.user_on(node, "tx")
        client.ok("join", {"room": room})
        senders.append(Sender(client, room, name, started[index]))
    for sender in senders:
        sender.start()
    for event in started:
        assert event.wait(30), "the senders did not get going"

    victim = None
    if cluster.clustered:
        victim = cluster.master_of(keys.room_log(rooms[0]))
        masters_before = set(cluster.redis_masters())
        cluster.kill_redis_server(victim)  # and never restarted while the senders send
        wait_for(lambda: len(set(cluster.redis_masters()) - masters_before) == 1, 30,
                 "a replica to take over the killed master's slots")
        failed_over_at = time.monotonic()
        [promoted] = set(cluster.redis_masters()) - masters_before
    else:
        cluster.stop_redis()
        wait_for(lambda: not all_ready(cluster), 10, "the nodes to report Redis gone")
        wait_for(lambda: sum(sender.retries for sender in senders) > 0, 20,
                 "a send to meet the outage")
        cluster.start_redis()

    assert any(sender.is_alive() for sender in senders), "the failure came after the traffic"
    for sender in senders:
        sender.join(RETRY_FOR_S * MESSAGES_PER_SENDER)
        assert sender.failure is None, sender.failure
        assert len(sender.acked) == MESSAGES_PER_SENDER
    assert sum(sender.retries for sender in senders) > 0, "no send met the failure"
    wait_for(lambda: all_ready(cluster), 30, "every node to be ready again")
    if victim is not None:
        for sender in senders:  # every room took sends again soon after the failover
            after = [at for at in sender.acked_at if at >= failed_over_at]
            assert after, f"{sender.room}: nothing acknowledged after the failover"
            assert after[0] - failed_over_at < SENDS_AGAIN_WITHIN_S, (
                f"{sender.room}: first send acknowledged {after[0] - failed_over_at:.1f} s "
                "after the failover")
        degraded = degraded_masters(cluster)
        assert all(entries == [f"127.0.0.1:{promoted}"] for entries in degraded), degraded

    acked_by_room = {sender.room: set(sender.acked.values()) for sender in senders}
    history = {room: [m["id"] for m in users.history(room)] for room in rooms}
    for room, acked in acked_by_room.items():
        assert acked <= set(history[room]), f"acknowledged but not stored in {room}"
        assert len(history[room]) == len(set(history[room]))
    markers = [sender.client.mark_room(sender.room) for sender in senders]
    for receiver in receivers:
        got: dict[str, list[str]] = defaultdict(list)
        for marker in markers:
            for message in receiver.until_marker(marker, timeout=30):
                got[message["room"]].append(message["id"])
        for room in rooms:
            ids = got[room]
            missing = acked_by_room[room] - set(ids)
            assert not missing, f"{receiver.node} never got {len(missing)} of {room}"
            assert len(ids) == len(set(ids)), f"{receiver.node} got duplicates in {room}"
            assert ids == sorted(ids, key=parse_id), f"{receiver.node} out of order in {room}"
    if victim is not None:
        cluster.start_redis_server(victim)  # back, as the promoted master's replica
        wait_for(cluster.redis_cluster_ok, 60, "the killed server to be a replica in sync")
        wait_for(lambda: degraded_masters(cluster) == [[]] * cluster.nodes, 10,
                 "the nodes to wait for the replica again")
        receivers[0].ok("send", {"room": rooms[0], "text": "safe on a replica again"})
    print(f"retries while Redis failed: {[sender.retries for sender in senders]}")


def degraded_masters(cluster) -> list[list[str]]:
    """Each node's masters whose writes wait for fewer replicas than ACK_REPLICAS (/readyz)."""
    return [[entry["master"] for entry in requests.get(
        cluster.node_url(i) + "/readyz", timeout=5).json()["redis"]["degraded"]]
        for i in cluster.indexes()]
