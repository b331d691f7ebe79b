"""Two front doors with the same settings send a sticky key to the same node, so a plain TCP load
balancer can spread clients over them; each front door's own status (stub_status) is scrapable."""

from __future__ import annotations

import json
import re
import time
import uuid

import pytest
import requests

from .conftest import Client

pytestmark = pytest.mark.local_cluster  # the local launcher's second front door and status port

KEYS = [f"door{uuid.uuid4().hex[:6]}{n}" for n in range(60)]


def node_of(base: str, key: str, *, cookie: bool = False) -> str:
    """The node a plain request with this sticky key reaches (the query argument or the cookie)."""
    options = {"cookies": {"node_key": key}} if cookie else {"params": {"node_key": key}}
    answer = requests.get(f"{base}/healthz", timeout=5, **options)
    assert answer.status_code == 200, answer.text
    return answer.json()["node"]


def test_every_key_reaches_the_same_node_through_either_door(cluster):
    doors = [cluster.door_url(door) for door in cluster.doors()]
    assert len(doors) == 2
    placed = {}
    for key in KEYS:
        reached = {node_of(door, key, cookie=cookie) for door in doors for cookie in (False, True)}
        assert len(reached) == 1, f"key {key} reached {reached}"
        placed[key] = reached.pop()
    assert set(placed.values()) == {cluster.node_name(i) for i in cluster.indexes()}


class Polling:
    """A Socket.IO session over raw long-polling whose requests alternate between the doors; a
    node knows only its own sessions, so each request proves both doors chose the same node."""

    def __init__(self, doors: list[str], key: str, cookie: bool):
        self.doors, self.turn = doors, 0
        self.options = ({"cookies": {"node_key": key}} if cookie else {})
        self.query = {"EIO": "4", "transport": "polling"} | ({} if cookie else {"node_key": key})
        self.sid = json.loads(self.request("GET").removeprefix("0"))["sid"]

    def request(self, method: str, body: str | None = None) -> str:
        door = self.doors[self.turn % len(self.doors)]
        self.turn += 1
        query = self.query | ({"sid": self.sid} if self.turn > 1 else {})
        answer = requests.request(method, f"{door}/socket.io/", params=query, data=body,
                                  timeout=10, **self.options)
        assert answer.status_code == 200, f"{method} via {door}: {answer.status_code} {answer.text}"
        return answer.text

    def welcome(self, token: str) -> dict:
        assert self.request("POST", "40" + json.dumps({"token": token})).lower() == "ok"
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            for packet in self.request("GET").split("\x1e"):
                if packet.startswith('42["welcome"'):
                    return json.loads(packet[2:])[1]
        raise AssertionError("no welcome over long-polling")

    def close(self) -> None:
        self.request("POST", "1")


@pytest.mark.parametrize("cookie", [False, True], ids=["query", "cookie"])
def test_long_polling_sessions_work_through_both_doors_at_once(cluster, users, cookie):
    _, token = users.register()
    doors = [cluster.door_url(door) for door in cluster.doors()]
    for key in KEYS[:12]:
        session = Polling(doors, key, cookie)
        assert session.welcome(token)["node"] == node_of(doors[0], key)
        session.close()


def test_websocket_connections_meet_the_same_node_through_either_door(cluster, users):
    _, token = users.register()
    for key in KEYS[:20]:
        met = set()
        for door in cluster.doors():
            for client in (Client(cluster.door_url(door), token, key),
                           Client(cluster.door_url(door), token, None,
                                  headers={"Cookie": f"node_key={key}"})):
                met.add(client.node)
                client.close()
        assert met == {node_of(cluster.url, key)}, f"key {key} met {met}"


STUB_STATUS = re.compile(r"Active connections: (\d+) \nserver accepts handled requests\n"
                         r" (\d+) (\d+) (\d+) \nReading: \d+ Writing: \d+ Waiting: \d+ \n")


def test_each_front_door_serves_its_own_nginx_status(cluster):
    for door in cluster.doors():
        first = STUB_STATUS.fullmatch(requests.get(cluster.status_url(door), timeout=5).text)
        assert first, "not nginx's stub_status"
        for _ in range(5):
            node_of(cluster.door_url(door), "counted")
        second = STUB_STATUS.fullmatch(requests.get(cluster.status_url(door), timeout=5).text)
        assert int(second.group(4)) >= int(first.group(4)) + 6  # the five and the status itself
    # only on the status port: through the front door the path is the nodes' (no such page)
    assert requests.get(f"{cluster.url}/nginx_status", timeout=5).status_code == 404
