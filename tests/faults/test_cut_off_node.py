"""A node cut off from Redis while Redis is fine for the others: it answers /readyz at once, turns
new sessions away with a 503 before any upgrade, and after REDIS_LOST_GRACE_S hands its clients
to the other nodes, where they carry on chatting with users elsewhere and lose nothing
acknowledged; when the partition heals it takes sessions again at once."""

from __future__ import annotations

import re
import signal
import time

import pytest
import requests

from service.store.messages import parse_id
from tests.faults.redis_proxy import RedisProxy
from tests.faults.test_node_stop import keys_for_nodes, ordered
from tests.waiting import wait_for

from .resuming import ResumingClient, Sender, post_marker

pytestmark = pytest.mark.local_cluster
CUT = 3  # node-3 reaches Redis through the proxy
GRACE_S, SPREAD_S = 3.0, 1.0
ANSWERS_WITHIN_S = 1.0  # /readyz, whatever Redis does


def readiness(url: str) -> tuple[int, dict]:
    started = time.monotonic()
    answer = requests.get(url + "/readyz", timeout=5)
    took = time.monotonic() - started
    assert took < ANSWERS_WITHIN_S, f"/readyz took {took:.2f} s"
    return answer.status_code, answer.json()


def handshake(url: str) -> int:
    """The status of a new Engine.IO session's first request (long-polling), straight to a node."""
    return requests.get(url + "/socket.io/?EIO=4&transport=polling", timeout=5).status_code


@pytest.fixture
def node_behind_proxy(cluster):
    if cluster.clustered:
        pytest.skip("the proxy stands in front of one Redis (a Redis Cluster's slot map names "
                    "its servers' own addresses)")
    proxy = RedisProxy(cluster.redis_port)
    cluster.kill_node(CUT, signal.SIGTERM)
    cluster.start_node(CUT, env={
        "REDIS_URL": cluster.redis_url.replace(f":{cluster.redis_port}/", f":{proxy.port}/"),
        "REDIS_LOST_GRACE_S": str(GRACE_S), "HANDOVER_SPREAD_S": str(SPREAD_S)})
    try:
        yield proxy
    finally:
        proxy.heal()
        cluster.kill_node(CUT, signal.SIGTERM)
        proxy.close()
        cluster.start_node(CUT)


def test_a_node_cut_off_from_redis_moves_its_clients_to_the_others(cluster, users, room,
                                                                  node_behind_proxy):
    proxy = node_behind_proxy
    node_url = cluster.node_url(CUT)
    keys = keys_for_nodes(cluster.url, 2)
    clients: list[ResumingClient] = []
    try:
        for node in ("node-1", "node-2", "node-3"):
            for key in keys[node]:
                clients.append(ResumingClient(cluster.url, users.register("p")[1], key, room))
        assert [c.nodes[0] for c in clients] == ["node-1"] * 2 + ["node-2"] * 2 + ["node-3"] * 2
        senders = [Sender(clients[0]), Sender(clients[4])]  # on node-1 and on the cut node
        for sender in senders:
            sender.start()
        wait_for(lambda: all(len(s.acked) > 5 for s in senders), 20, "the senders to get going")

        proxy.cut()
        cut_at = time.monotonic()
        wait_for(lambda: readiness(node_url)[0] == 503, 15, "the cut node to say it is not ready")
        not_ready_after = time.monotonic() - cut_at
        _, body = readiness(node_url)
        assert body["redis"]["up"] is False and body["accepting"] is False, body
        assert handshake(node_url) == 503, "a new session on the cut node was not refused"
        for index in (1, 2):  # the others are fine
            assert readiness(cluster.node_url(index))[0] == 200

        wait_for(lambda: all(c.nodes[-1] != "node-3" and not c._joining and c.sio.connected
                             for c in clients[4:]), 40,
                 "the cut node's clients to be served elsewhere")
        moved_after = time.monotonic() - cut_at
        assert moved_after >= GRACE_S, "clients moved before the grace period ran out"
        count = len(senders[1].acked)
        wait_for(lambda: len(senders[1].acked) > count + 5, 20,
                 "the moved sender to be acknowledged again")
        log = (cluster.log_dir / f"node-{CUT}.log").read_text()
        assert re.search(r"node=node-3 has not reached redis for [\d.]+ s while node-\d does: "
                         r"handing its connections over", log), log[-3000:]

        proxy.heal()
        healed_at = time.monotonic()
        ready_after_heal = wait_for(lambda: readiness(node_url)[0] == 200, 15,
                                    "the healed node to be ready")
        assert handshake(node_url) == 200, "the healed node still refuses new sessions"
        for sender in senders:
            sender.stop.set()
            sender.join(15)
        acked = sorted({i for s in senders for i in s.acked}, key=parse_id)
        assert len(acked) == sum(len(s.acked) for s in senders), "an id acknowledged twice"
        stored = {m["id"] for m in users.history(room)}
        assert set(acked) <= stored, "an acknowledged message is not stored"
        marker = post_marker(cluster.url, room)
        for index, client in enumerate(clients):
            client.wait_for(marker, timeout=30)
            assert len(client.ids) == len(set(client.ids)), "a message arrived twice"
            assert ordered(client.ids), "messages arrived out of order"
            missing = sorted(set(acked) - set(client.ids), key=parse_id)
            assert not missing, (f"client {index} never got {len(missing)} acknowledged "
                                 f"messages, {missing[:5]}...; {client.state()}")
        assert "Traceback" not in (cluster.log_dir / f"node-{CUT}.log").read_text()
        print(f"cut off: not ready after {not_ready_after:.1f} s, clients served elsewhere "
              f"{moved_after:.1f} s after the cut (grace {GRACE_S:g} s, spread {SPREAD_S:g} s); "
              f"healed: ready after {ready_after_heal:.1f} s; {len(acked)} acknowledged, "
              f"each delivered once and in order to all {len(clients)} clients (the largest "
              f"catch-up {max(missed for c in clients for _, missed, _ in c.joins)}); "
              f"{time.monotonic() - cut_at:.0f} s in all ({time.monotonic() - healed_at:.0f} "
              f"since the heal)")
    finally:
        for client in clients:
            client.close()
