"""A node stopped under traffic, gently (SIGTERM: it drains) or not (SIGKILL): its clients move to
other nodes through the front door, resume with `since`, and no acknowledged message is missing or
duplicated for anyone."""

from __future__ import annotations

import re
import signal
import time
from itertools import pairwise

import pytest
import requests

from service.store.messages import parse_id
from tests.conftest import TEST_ENV
from tests.waiting import wait_for

from .resuming import ResumingClient, Sender, post_marker

pytestmark = pytest.mark.local_cluster
NODES = ("node-1", "node-2", "node-3")


def keys_for_nodes(base: str, per_node: int) -> dict[str, list[str]]:
    """Sticky keys that the front door routes to each node."""
    keys: dict[str, list[str]] = {node: [] for node in NODES}
    for n in range(2000):
        key = f"stop-{time.monotonic_ns()}-{n}"
        node = requests.get(f"{base}/healthz?node_key={key}", timeout=5).json()["node"]
        if len(keys[node]) < per_node:
            keys[node].append(key)
        if all(len(found) == per_node for found in keys.values()):
            return keys
    raise AssertionError(f"no sticky keys for every node: {keys}")


def ordered(ids: list[str]) -> bool:
    return all(parse_id(a) < parse_id(b) for a, b in pairwise(ids))


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
def test_a_node_stopped_under_traffic_loses_nothing(cluster, users, room, sig):
    clients: list[ResumingClient] = []
    try:
        for attempt in range(3):
            # nginx skips a node for fail_timeout (5 s) after one failed request, which a node
            # restarted by the previous test can still cause: place the clients once it settled
            keys = keys_for_nodes(cluster.url, 3)
            for node in NODES:
                for key in keys[node]:
                    _, token = users.register("s")
                    clients.append(ResumingClient(cluster.url, token, key, room))
            placed = [c.nodes[0] for c in clients] == [n for n in NODES for _ in range(3)]
            if placed or attempt == 2:
                break
            for client in clients:
                client.close()
            clients.clear()
            time.sleep(6)  # not a wait on a condition: nginx's fail_timeout runs out, unreported
        assert [c.nodes[0] for c in clients] == [n for n in NODES for _ in range(3)]
        senders = [Sender(clients[0]), Sender(clients[6])]  # on node-1 and on the doomed node-3
        for sender in senders:
            sender.start()
        wait_for(lambda: all(len(s.acked) > 5 for s in senders), 20, "the senders to get going")
        stopped_at = time.monotonic()
        cluster.kill_node(3, sig)
        exited_after = time.monotonic() - stopped_at
        count = len(senders[1].acked)
        # see below: the client can take this long to notice its node is gone
        wait_for(lambda: len(senders[1].acked) > count + 5, 45,
                 "the sender on node-3 to be acknowledged again on another node")
        for sender in senders:
            sender.stop.set()
            sender.join(10)
        acked = sorted({i for s in senders for i in s.acked}, key=parse_id)
        assert len(acked) == sum(len(s.acked) for s in senders)  # no id acknowledged twice
        marker = post_marker(cluster.url, room)
        for client in clients:
            # python-engineio's threaded client can take up to max(ping interval, ping timeout)
            # + 5 s to notice a dropped connection when a `None` it queues for its writer lands
            # behind packets being sent (the sender's client); it then reconnects and resumes
            client.wait_for(marker, timeout=45)
        for client in clients:
            assert len(client.ids) == len(set(client.ids)), "a message arrived twice"
            assert ordered(client.ids), "messages arrived out of order"
            missing = set(acked) - set(client.ids)
            assert not missing, f"{len(missing)} acknowledged messages never arrived"
        moved = [c.nodes[-1] for c in clients[6:]]
        assert all(node in ("node-1", "node-2") for node in moved), moved
        if sig == signal.SIGTERM:
            drain_bound = (float(TEST_ENV.get("DRAIN_TIMEOUT_S", "5"))
                           + float(TEST_ENV["HANDOVER_SPREAD_S"]) + 3)
            assert exited_after < drain_bound, f"took {exited_after:.1f} s to stop"
            log = (cluster.log_dir / "node-3.log").read_text()
            # the last drain in the log: other tests stop node-3 too
            handed_over = re.findall(r"node=node-3 drained: (\d+) connections handed over", log)
            assert handed_over and int(handed_over[-1]) >= 3, log[-2000:]
        print(f"{sig.name}: {len(acked)} acknowledged, delivered to all {len(clients)} clients "
              f"once and in order; node-3 exited after {exited_after:.2f} s; moved to {moved}")
    finally:
        for client in clients:
            client.close()
        cluster.start_node(3)
