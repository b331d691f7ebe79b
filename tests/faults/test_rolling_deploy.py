"""Rolling deploys: every node of the cluster is stopped (SIGTERM) and started again, one after
another, under chat traffic in several rooms. Nothing acknowledged is lost, no client goes without
service for longer than the bound, and spreading each node's hand-over (HANDOVER_SPREAD_S) lowers
the peak rate of new connections at the nodes that stay: measured with and without it."""

from __future__ import annotations

import json
import signal
import time

import pytest

from tests.conftest import RESULTS, TEST_ENV
from tests.faults.test_node_stop import keys_for_nodes, ordered

from .resuming import ResumingClient, Sender, post_marker

pytestmark = pytest.mark.local_cluster
NODES = ("node-1", "node-2", "node-3")
ROOMS = 3
PER_NODE = 8  # clients each node holds at the start
WITHOUT_SERVICE_BOUND_S = 10.0  # spread + backoff (at most 1 s) + resume, with room to spare
WINDOW_S = 0.5  # new connections are counted in windows this long


def peak_rate(times: list[float], window_s: float = WINDOW_S) -> float:
    """The most events in any `window_s` starting at an event, per second."""
    times = sorted(times)
    best, start = 0, 0
    for end, at in enumerate(times):
        while at - times[start] > window_s:
            start += 1
        best = max(best, end - start + 1)
    return best / window_s


def roll(cluster, clients, spread_next: str) -> dict[str, float]:
    """Restart every node in turn (SIGTERM, then start it with HANDOVER_SPREAD_S=spread_next);
    the peak rate of new connections at the nodes that stayed, over the roll."""
    peaks = []
    for index in cluster.indexes():
        stopped = cluster.node_name(index)
        began = time.monotonic()
        cluster.kill_node(index, signal.SIGTERM)
        cluster.start_node(index, env={"HANDOVER_SPREAD_S": spread_next})
        arrivals = [at for client in clients
                    for at, node in zip(client.welcomed_at, client.nodes, strict=False)
                    if at >= began and node != stopped]
        peaks.append(peak_rate(arrivals))
    return {"peak_new_connections_per_s": max(peaks)}


def test_rolling_every_node_under_traffic_loses_nothing(cluster, users):
    if cluster.clustered:
        pytest.skip("hand-over and reconnection do not depend on how Redis is deployed")
    spread = TEST_ENV["HANDOVER_SPREAD_S"]
    rooms = [f"roll-{n}-{time.time_ns()}" for n in range(ROOMS)]
    keys = keys_for_nodes(cluster.url, PER_NODE)
    clients: list[ResumingClient] = []
    try:
        for node in NODES:
            for n, key in enumerate(keys[node]):
                clients.append(ResumingClient(cluster.url, users.register("r")[1], key,
                                              rooms[n % ROOMS]))
        senders = [Sender(client, interval_s=0.05) for client in clients[:ROOMS]]
        for sender in senders:
            sender.start()
        with_spread = roll(cluster, clients, spread_next="0")
        without_spread = roll(cluster, clients, spread_next=spread)
        for sender in senders:
            sender.stop.set()
            sender.join(15)

        outages = [back - lost for client in clients for lost, back in client.outages]
        assert outages, "no client was moved"
        longest = max(outages)
        assert longest < WITHOUT_SERVICE_BOUND_S, f"a client went {longest:.1f} s without service"
        for room, sender in zip(rooms, senders, strict=True):
            acked = sender.acked
            assert len(acked) > 20, f"{room}: the sender barely sent ({sender.failures})"
            assert len(set(acked)) == len(acked) and ordered(acked)
            marker = post_marker(cluster.url, room)
            for client in (c for c in clients if c.room == room):
                client.wait_for(marker, timeout=30)
                assert len(client.ids) == len(set(client.ids)), "a message arrived twice"
                assert ordered(client.ids), "messages arrived out of order"
                assert not set(acked) - set(client.ids), "acknowledged messages never arrived"
        figures = {"handover_spread_s": float(spread), "clients": len(clients),
                   "moves": len(outages), "longest_without_service_s": round(longest, 2),
                   "median_without_service_s": round(sorted(outages)[len(outages) // 2], 2),
                   "peak_new_connections_per_s_with_spread":
                       with_spread["peak_new_connections_per_s"],
                   "peak_new_connections_per_s_without_spread":
                       without_spread["peak_new_connections_per_s"],
                   "acknowledged": sum(len(s.acked) for s in senders)}
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / "rolling-deploy.json").write_text(json.dumps(figures, indent=2))
        assert (figures["peak_new_connections_per_s_with_spread"]
                < figures["peak_new_connections_per_s_without_spread"]), figures
        print(f"rolling deploy: {figures}")
    finally:
        for client in clients:
            client.close()


def test_peak_rate_counts_the_busiest_window():
    assert peak_rate([0.0, 0.1, 0.2, 1.0], window_s=0.25) == 12.0
    assert peak_rate([0.0, 0.5, 1.0], window_s=0.25) == 4.0
    assert peak_rate([0.0, 0.1, 0.2, 0.7]) == 6.0
    assert peak_rate([]) == 0.0
