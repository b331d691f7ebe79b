"""Against the compose cluster: the node service scaled 3 -> 5 -> 3 under traffic. The front door
follows the replicas (nginx/follow-nodes.sh); a sticky key moves only to a new node or away from a
node that left; open WebSocket connections outlive both changes; every acknowledged message
reaches every member, live or by `join` with `since` after a reconnect."""

from __future__ import annotations

import collections
import os
import subprocess
import time
from pathlib import Path

import pytest
import requests

from .room_traffic import Member, Pump, Sender, wait_until_received

COMMAND = os.environ.get("SCALE_NODES_COMMAND")  # {replicas}: scale the node service to that
REPORT = os.environ.get("SCALE_REPORT")  # a file for the figures
pytestmark = pytest.mark.skipif(not COMMAND, reason="set SCALE_NODES_COMMAND (make compose-test)")
PROBES = [f"scale-probe-{n}" for n in range(200)]


def placement(base: str) -> dict[str, str]:
    """The node each probe key reaches through the front door now."""
    with requests.Session() as session:
        return {key: session.get(f"{base}/healthz", params={"node_key": key},
                                 timeout=5).json()["node"] for key in PROBES}


def settled_placement(base: str, count: int, timeout: float = 90) -> tuple[dict[str, str], float]:
    """Waits until the probe keys reach exactly `count` nodes, the same way twice in a row;
    returns that placement and the seconds it took."""
    started, previous, current = time.monotonic(), None, {}
    while True:
        try:
            current = placement(base)
        except (requests.RequestException, ValueError, KeyError):
            current = {}  # a request that no node could answer: not settled
        if len(set(current.values())) == count and current == previous:
            return current, time.monotonic() - started
        previous = current
        assert time.monotonic() - started < timeout, (
            f"the front door reaches {collections.Counter(current.values())}, not {count} nodes")


def scale(replicas: int) -> float:
    started = time.monotonic()
    subprocess.run(COMMAND.format(replicas=replicas), shell=True, check=True,  # noqa: S602
                   timeout=180)
    return time.monotonic() - started


def test_scaling_3_to_5_to_3_under_traffic_loses_nothing(users, room, nodes):
    assert len(nodes) == 3
    before, _ = settled_placement(users.base, 3)
    _, writer_token = users.register("writer")
    writer = users.connect(writer_token, nodes[0])
    writer.ok("join", {"room": room})
    _, token = users.register("member")
    members = [Member(users.connect(token, node, reconnection=True), room)
               for node in nodes for _ in range(2)]
    sender, pump = Sender(writer, room), Pump()
    pump.add(*members)
    sender.start()
    pump.start()
    try:
        sender.wait_for_more(20)

        up_command = scale(5)
        grown, pickup = settled_placement(users.base, 5)
        new_nodes = set(grown.values()) - set(nodes)
        assert len(new_nodes) == 2
        moved_up = [key for key in PROBES if grown[key] != before[key]]
        assert moved_up and all(grown[key] in new_nodes for key in moved_up), \
            "a key moved between nodes that stayed"
        assert all(m.reconnects == 0 for m in members) and writer.arrived("welcome") == [], \
            "an open connection was cut when nodes were added"
        newcomers = [Member(users.connect(token, node, reconnection=True), room,
                            since=sender.acked[-1]) for node in sorted(new_nodes) for _ in range(2)]
        pump.add(*newcomers)
        assert len({m.nodes[0] for m in members + newcomers}) == 5  # as `welcome` names them
        sender.wait_for_more(20)

        down_command = scale(3)
        shrunk, settle = settled_placement(users.base, 3)
        assert set(shrunk.values()) == set(nodes)
        assert all(shrunk[key] == grown[key] for key in PROBES if grown[key] in nodes), \
            "a key of a node that stayed moved"
        assert shrunk == before  # the same three nodes: the same hash ring
        sender.wait_for_more(20)
    finally:
        sender.stop()
        everyone = pump.stop()
    wait_until_received(everyone, sender.acked)
    assert all(m.reconnects == 0 for m in members) and writer.sio.connected \
        and writer.arrived("welcome") == [], "an open connection to a staying node was cut"
    assert all(m.reconnects == 1 and m.nodes[-1] in nodes for m in newcomers), \
        [m.nodes for m in newcomers]
    figures = (
        f"{len(sender.acked)} messages acknowledged ({sender.failures} sends repeated), "
        f"{sum(len(m.ids) for m in everyone)} received by {len(everyone)} members, none lost; "
        f"3 -> 5: `up --scale` {up_command:.1f} s, front door on 5 nodes {pickup:.1f} s later, "
        f"{len(moved_up)}/{len(PROBES)} keys moved, all to the new nodes; 5 -> 3: stop and remove "
        f"{down_command:.1f} s, routing settled {settle:.1f} s later, the 4 members on the "
        f"removed nodes resumed on the others, every key back on its first node; "
        f"{len(members) + 1} WebSocket connections to staying nodes never dropped")
    print(figures)
    if REPORT:
        Path(REPORT).write_text(figures + "\n")
