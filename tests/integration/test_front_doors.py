"""Two front doors with the same settings send a sticky key to the same node, so a plain TCP load
balancer can spread clients over them; each front door's own status (stub_status) is scrapable.
The lean front door (nginx/cluster.conf.template: Socket.IO through 1k relay buffers) streams large
frames whole in both directions and still fits a polling answer's headers."""

from __future__ import annotations

import json
import re
import time
import uuid

import pytest
import requests

from .conftest import API_KEY, Client

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


# ---- large frames through the 1k relay buffers -------------------------------------------------

def four_byte_text(length: int = 4000, shift: int = 0) -> str:
    """`length` characters of 4 bytes each in UTF-8 (emoji and CJK extension B, varied, so a
    reordered or dropped piece of the frame shows)."""
    return "".join(chr((0x1F300 if i % 2 else 0x20000) + (i * 7 + shift) % 0x2FF)
                   for i in range(length))


@pytest.mark.parametrize("transport", ["websocket", "polling"])
def test_a_4000_character_message_of_4_byte_characters_arrives_byte_exact(cluster, users, room,
                                                                          transport):
    """16,000 bytes of text each way: client to node and node to client, on either transport
    (long-polling with an allowed Origin, as a browser sends it; the WebSocket client sends its
    own)."""
    _, token = users.register()
    headers = {"Origin": cluster.url} if transport == "polling" else {}
    reader = users.connect(token, transports=[transport], headers=headers)
    writer = users.connect(token, transports=[transport], headers=headers)
    for client in (reader, writer):
        client.ok("join", {"room": room})
    text = four_byte_text()
    assert len(text) == 4000 and len(text.encode()) == 16_000
    sent = writer.ok("send", {"room": room, "text": text})
    for client in (reader, writer):
        [got] = client.take("message", 1)
        assert got["id"] == sent["id"]
        assert got["text"].encode() == text.encode()


# Under the node's own SEND_BUFFER_BYTES (1 MiB) as one frame: about 16,150 bytes a message.
MISSED_UNDER_SEND_BUFFER = 60


@pytest.mark.parametrize("count", [MISSED_UNDER_SEND_BUFFER, 500])
def test_a_resuming_join_gets_its_whole_missed_through_the_front_door(cluster, users, room,
                                                                      count):
    """A join with `since` whose `missed` holds `count` messages of 4,000 4-byte characters: one
    frame of about 1 MB (60) or 8 MB (500, the most `missed` holds), relayed 1k at a time."""
    _, token = users.register()
    client = users.connect(token)
    joined = client.ok("join", {"room": room})
    first = client.ok("send", {"room": room, "text": "before"})["id"]
    client.close()
    texts = [four_byte_text(shift=n) for n in range(count)]
    with requests.Session() as api:
        api.headers["Authorization"] = f"Bearer {API_KEY}"
        ids = []
        for text in texts:
            answer = api.post(f"{cluster.url}/api/rooms/{room}/messages", json={"text": text},
                              timeout=10)
            assert answer.status_code == 202, answer.text
            ids.append(answer.json()["id"])
    assert joined["missed"] == []
    back = users.connect(token)
    answer = back.call("join", {"room": room, "since": first}, timeout=60)
    assert answer.get("ok") is True, str(answer)[:300]
    assert answer["truncated"] is False
    assert [m["id"] for m in answer["missed"]] == ids
    for message, text in zip(answer["missed"], texts, strict=True):
        assert message["text"].encode() == text.encode()


def test_long_polling_with_an_allowed_origin_through_the_front_door(cluster, users):
    """A polling session from a browser's origin: the node's answers, CORS headers included, fit
    the Socket.IO location's 1k buffer (else nginx answers 502, "upstream sent too big header")."""
    _, token = users.register()
    origin = cluster.url
    with requests.Session() as session:
        session.headers.update({"Origin": origin, "User-Agent": "Mozilla/5.0 " + "x" * 200,
                                "Cookie": "node_key=poll-origin; other=" + "y" * 600})
        query = {"EIO": "4", "transport": "polling"}
        opened = session.get(f"{cluster.url}/socket.io/", params=query, timeout=10)
        assert opened.status_code == 200, opened.text
        assert opened.headers["Access-Control-Allow-Origin"] == origin
        query["sid"] = json.loads(opened.text.removeprefix("0"))["sid"]
        connected = session.post(f"{cluster.url}/socket.io/", params=query, timeout=10,
                                 data="40" + json.dumps({"token": token}))
        assert connected.status_code == 200 and connected.text.lower() == "ok", connected.text
        deadline = time.monotonic() + 10
        welcome = None
        while welcome is None and time.monotonic() < deadline:
            polled = session.get(f"{cluster.url}/socket.io/", params=query, timeout=10)
            assert polled.status_code == 200, polled.text
            assert polled.headers["Access-Control-Allow-Origin"] == origin
            welcome = next((json.loads(packet[2:])[1] for packet in polled.text.split("\x1e")
                            if packet.startswith('42["welcome"')), None)
        assert welcome is not None, "no welcome over long-polling"
        assert welcome["node"] == node_of(cluster.url, "poll-origin", cookie=True)
        session.post(f"{cluster.url}/socket.io/", params=query, data="1", timeout=10)
