"""Repeated network drops between the clients and the front door: a proxy cuts every connection
every few seconds and refuses new ones for about 2 s, again and again, while senders in several
rooms keep sending with `client_id` and receivers resume with `since`. Every acknowledged message
reaches every receiver exactly once and in order (the published benchmark of such drops measured
84.6% delivered for Socket.IO; `make bench PARTS=drops` runs the same probe against it)."""

from __future__ import annotations

import time

import pytest

from loadtests.drops_proxy import DropsProxy
from tests.faults.test_node_stop import ordered
from tests.waiting import wait_for

from .resuming import ResumingClient, Sender, post_marker

pytestmark = pytest.mark.local_cluster
ROOMS, RECEIVERS_PER_ROOM = 3, 3
UP_S, DOWN_S, DROPS = 3.0, 2.0, 4


def test_every_acknowledged_message_arrives_once_and_in_order_through_repeated_drops(
        cluster, users):
    if cluster.clustered:
        pytest.skip("the drops are between clients and the front door: Redis plays no part")
    host, port = cluster.url.removeprefix("http://").split(":")
    rooms = [f"drops-{n}-{time.time_ns()}" for n in range(ROOMS)]
    clients: list[ResumingClient] = []
    with DropsProxy((host, int(port)), up_s=UP_S, down_s=DOWN_S, dropping=False) as proxy:
        try:
            for n in range(ROOMS * (RECEIVERS_PER_ROOM + 1)):
                clients.append(ResumingClient(proxy.url, users.register("d")[1],
                                              f"drops{n}-{time.time_ns()}", rooms[n % ROOMS],
                                              origin=cluster.url))
            senders = [Sender(client, interval_s=0.05) for client in clients[:ROOMS]]
            for sender in senders:
                sender.start()
            proxy.start_dropping()
            wait_for(lambda: proxy.drops >= DROPS, 5 * DROPS * (UP_S + DOWN_S),
                     f"the proxy to drop the connections {DROPS} times")
            proxy.stop_dropping()  # the network stays up from here
            for sender in senders:
                sender.stop.set()
                sender.join(15)
            for room, sender in zip(rooms, senders, strict=True):
                acked = sender.acked
                assert len(acked) > 20, f"{room}: the sender barely sent ({sender.failures})"
                marker = post_marker(cluster.url, room)
                for client in (c for c in clients if c.room == room):
                    client.wait_for(marker, timeout=30)
                    assert len(client.ids) == len(set(client.ids)), "a message arrived twice"
                    assert ordered(client.ids), "messages arrived out of order"
                    missing = set(acked) - set(client.ids)
                    assert not missing, f"{len(missing)} acknowledged messages never arrived"
            reconnects = sum(len(client.nodes) - 1 for client in clients)
            assert reconnects >= len(clients) * (DROPS - 1), "the drops did not reach everyone"
            print(f"{proxy.drops} drops ({proxy.reset} connections reset), {reconnects} "
                  f"reconnections: {sum(len(s.acked) for s in senders)} acknowledged, each "
                  f"delivered once and in order to every receiver of its room (100%); resends: "
                  f"{sum(sum(s.failures.values()) for s in senders)}")
        finally:
            for client in clients:
                client.close()
