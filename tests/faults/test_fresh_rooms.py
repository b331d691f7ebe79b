"""Many clients join rooms their node does not serve yet, on every node, while others send to
those rooms: the node subscribes before the join reads, so each joiner gets exactly every
message after its `since`, once and in order (in the answer's `missed`, then live)."""

from __future__ import annotations

import random
import threading
import time
from collections import defaultdict

import pytest

from service.primitives.ids import parse_id

# also on a Redis Cluster: sharded subscriptions on the master of each room's slot
pytestmark = pytest.mark.redis_cluster

ROOMS = 12
JOINERS_PER_NODE = 2
SEND_EVERY_S = 0.02  # each room's sender's pace


class Sender(threading.Thread):
    def __init__(self, client, room: str):
        super().__init__(daemon=True)
        self.client, self.room = client, room
        self.stop = threading.Event()
        self.acked: list[str] = []
        self.failure: str | None = None

    def run(self) -> None:
        number = 0
        while not self.stop.is_set():
            answer = self.client.call("send", {"room": self.room, "text": f"m{number}"})
            if not answer.get("ok"):
                self.failure = str(answer)
                return
            self.acked.append(answer["id"])
            number += 1
            self.stop.wait(SEND_EVERY_S)


def test_joining_rooms_new_to_the_node_while_others_send_loses_nothing(cluster, users):
    tag = time.time_ns()
    rooms = [f"fresh-{n}-{tag}" for n in range(ROOMS)]
    nodes = ("node-1", "node-2", "node-3")
    senders = []
    for index, room in enumerate(rooms):
        _, client = users.user_on(nodes[index % 3], "tx")
        client.ok("join", {"room": room})
        client.ok("send", {"room": room, "text": "first"})
        senders.append(Sender(client, room))
    joiners = [users.user_on(node, "join")[1] for node in nodes for _ in range(JOINERS_PER_NODE)]
    for sender in senders:
        sender.start()

    since: dict[tuple[int, str], str] = {}
    missed: dict[tuple[int, str], list[str]] = {}
    failures: list[str] = []

    def join_all(index: int, client) -> None:
        order = list(rooms)
        random.Random(index).shuffle(order)
        for room in order:
            position = users.history(room)[-1]["id"]
            answer = client.call("join", {"room": room, "since": position})
            if not answer.get("ok") or answer["truncated"]:
                failures.append(f"{client.node}: {answer}")
                return
            since[index, room] = position
            missed[index, room] = [m["id"] for m in answer["missed"]]

    threads = [threading.Thread(target=join_all, args=(i, c)) for i, c in enumerate(joiners)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    for sender in senders:
        sender.stop.set()
        sender.join(10)
        assert sender.failure is None, sender.failure
    assert failures == []

    history = {room: [m["id"] for m in users.history(room)] for room in rooms}
    markers = [sender.client.mark_room(sender.room) for sender in senders]
    for index, client in enumerate(joiners):
        expected = {room: [i for i in history[room]
                           if parse_id(i) > parse_id(since[index, room])] for room in rooms}
        live: dict[str, list[str]] = defaultdict(list)
        wanted = sum(len(expected[room]) - len(missed[index, room]) for room in rooms)
        for message in client.take("message", wanted, timeout=20):
            live[message["room"]].append(message["id"])
        for room in rooms:
            got = missed[index, room] + live[room]
            assert got == expected[room], (
                f"joiner {index} on {client.node}, {room}: {len(got)} messages, "
                f"{len(expected[room])} stored after its since")
        assert [m for marker in markers for m in client.until_marker(marker)] == []
