"""Sticky routing through the front door: long-polling and WebSocket, keys, cookie, origins."""

import collections
import contextlib

import requests
import socketio

from tests.waiting import wait_for

from .conftest import Client


def test_long_polling_clients_stay_on_their_node_and_work(users, room):
    name, token = users.register()
    clients = [Client(users.base, token, f"poll-{i}", transports=["polling"]) for i in range(12)]
    users.clients.extend(clients)
    spread = collections.Counter(client.node for client in clients)
    assert len(spread) >= 2, f"sticky keys did not spread polling clients: {spread}"
    for client in clients:
        assert client.sio.transport() == "polling"
        client.ok("join", {"room": room})
    # Many polling round trips: a request routed to another node would fail with an unknown sid.
    for i in range(3):
        clients[i].ok("send", {"room": room, "text": f"poll {i}"})
    for client in clients:
        assert [m["text"] for m in client.take("message", 3)] == ["poll 0", "poll 1", "poll 2"]
        assert client.ok("presence", {"room": room})["members"] == [name]


def test_the_same_key_always_reaches_the_same_node(users):
    _, token = users.register()
    for key in ("alpha", "bravo-2", "c_3"):
        nodes = {Client(users.base, token, key).node for _ in range(4)}
        assert len(nodes) == 1, f"key {key} reached {nodes}"


def test_the_node_key_cookie_pins_a_client_when_no_argument_is_given(users, nodes):
    _, token = users.register()
    seen = set()
    for key in ("cookie-a", "cookie-b", "cookie-c", "cookie-d", "cookie-e"):
        reached = set()
        for _ in range(3):
            client = Client(users.base, token, None, headers={"Cookie": f"node_key={key}"})
            reached.add(client.node)
            client.close()
        assert len(reached) == 1, f"cookie key {key} reached {reached}"
        seen |= reached
    assert seen <= set(nodes)


def test_upgrade_to_websocket_through_the_front_door(users):
    _, token = users.register()
    client = Client(users.base, token, "upgrader", transports=["polling", "websocket"])
    users.clients.append(client)
    wait_for(lambda: client.sio.transport() == "websocket", 10, "the upgrade to a WebSocket")
    assert client.ok("presence", {"room": "lobby"})["room"] == "lobby"


def test_requests_from_origins_that_are_not_allowed_are_refused(cluster, users):
    _, token = users.register()
    polling = requests.get(f"{cluster.url}/socket.io/?EIO=4&transport=polling",
                           headers={"Origin": "https://evil.example"}, timeout=5)
    assert polling.status_code == 400
    client = socketio.Client(reconnection=False)
    with contextlib.suppress(socketio.exceptions.ConnectionError):
        client.connect(cluster.url, auth={"token": token}, transports=["websocket"],
                       headers={"Origin": "https://evil.example"}, wait_timeout=5)
    assert not client.connected
    allowed = requests.get(f"{cluster.url}/socket.io/?EIO=4&transport=polling",
                           headers={"Origin": cluster.url}, timeout=5)
    assert allowed.status_code == 200
