"""Real Socket.IO clients of the cluster under test (`cluster` is in tests/conftest.py)."""

from __future__ import annotations

import itertools
import os
import threading
import uuid
from collections.abc import Iterator
from typing import Any, NamedTuple

import pytest
import requests
from cluster import Cluster

from service.settings import DEV_API_KEY, DEV_SECRET_KEY
from tests.conftest import RESULTS, TEST_ENV, ExternalCluster  # noqa: F401 - used by the tests
from tests.in_order_client import InOrderClient

API_KEY = os.environ.get("API_KEY", DEV_API_KEY)
SECRET_KEY = os.environ.get("SECRET_KEY", DEV_SECRET_KEY)


MARKER_PREFIX = "marker-"  # the client_id of a marker message: Client records it apart


class Marker(NamedTuple):
    """A message sent after the events under test, on a channel that carries them, so that its
    arrival shows that they all arrived (`Client.until_marker`)."""

    event: str  # "message" (sent to a room) or "direct" (sent to a user)
    client_id: str


class Client:
    """A Socket.IO client through the front door that records every event it receives, in the
    order they arrived.

    Absence is shown by order, never by waiting a while: after the events under test were
    published (their acknowledgements came back), send a marker on the channel they travel on
    (`mark_room`: a room's messages, presence and typing; `mark_user`: a user's direct messages,
    read positions and emitted events) and take what arrived before it (`until_marker`). That is
    sound because every step keeps a channel's order: Redis sends what is published on one master
    to a subscriber connection in publish order; a node reads each of its bus connections (one
    per master) in one thread and writes each frame to its connections before it reads the next
    (service/bus/link.py, bus.py; a resuming join holds stored messages back and releases them in
    order); a connection's frames arrive in the order they were written; and InOrderClient hands
    them to the recorder in that order (tests/in_order_client.py). Channels of one hash slot share
    a master and so a bus connection: a user named like a room has its channel in the room's slot
    (service/store/keys.py), so a direct to that user is a marker for the room's channel too, and
    a room named like a user for the user's.
    """

    def __init__(self, base_url: str, token: str | None, node_key: str | None,
                 transports: list[str] | None = None, headers: dict[str, str] | None = None,
                 auth: Any = "token", reconnection: bool = False):
        self.sio = InOrderClient(reconnection=reconnection, reconnection_delay=0.5,
                                reconnection_delay_max=2)
        self._arrived = threading.Condition()
        self._arrivals = itertools.count()
        self._events: dict[str, list[tuple[int, Any]]] = {}  # name -> (arrival, data), not taken
        self._markers: dict[str, int] = {}  # a marker's client_id -> its arrival
        self.listen("message", "direct", "presence", "welcome")
        url = base_url + (f"?node_key={node_key}" if node_key else "")
        self.sio.connect(url, auth={"token": token} if auth == "token" else auth,
                         transports=transports or ["websocket"], headers=headers or {},
                         wait_timeout=10)
        [self.welcome] = self.take("welcome", 1)

    def listen(self, *names: str) -> None:
        """Record these events too (before they can arrive)."""
        for name in names:
            self._events.setdefault(name, [])
            self.sio.on(name, lambda data, name=name: self._record(name, data))

    def _record(self, name: str, data: Any) -> None:
        with self._arrived:
            arrival = next(self._arrivals)
            client_id = data.get("client_id") if isinstance(data, dict) else None
            if isinstance(client_id, str) and client_id.startswith(MARKER_PREFIX):
                self._markers[client_id] = arrival
            else:
                self._events[name].append((arrival, data))
            self._arrived.notify_all()

    @property
    def node(self) -> str:
        return self.welcome["node"]

    def call(self, event: str, payload: Any = None, timeout: float = 10) -> Any:
        if payload is None:
            return self.sio.call(event, timeout=timeout)
        return self.sio.call(event, payload, timeout=timeout)

    def ok(self, event: str, payload: Any) -> dict[str, Any]:
        answer = self.call(event, payload)
        assert answer.get("ok") is True, answer
        return answer

    def take(self, name: str, count: int, timeout: float = 10) -> list[Any]:
        """The next `count` `name` events, once they arrived."""
        with self._arrived:
            pending = self._events[name]
            if not self._arrived.wait_for(lambda: len(pending) >= count, timeout):
                raise AssertionError(f"got {len(pending)} of {count} {name} events: "
                                     f"{[data for _, data in pending]}")
            taken, pending[:count] = pending[:count], []
        return [data for _, data in taken]

    def arrived(self, name: str) -> list[Any]:
        """The `name` events that arrived and were not taken yet, taken now. It says nothing of
        events still on their way (`until_marker` does)."""
        with self._arrived:
            taken = self._events[name][:]
            self._events[name].clear()
        return [data for _, data in taken]

    def mark_room(self, room: str) -> Marker:
        """A marker sent to `room` (this client joined it); see the class's description."""
        marker = Marker("message", MARKER_PREFIX + uuid.uuid4().hex[:16])
        self.ok("send", {"room": room, "text": "marker", "client_id": marker.client_id})
        return marker

    def mark_user(self, user: str) -> Marker:
        """A marker sent to `user` as a direct message; see the class's description."""
        marker = Marker("direct", MARKER_PREFIX + uuid.uuid4().hex[:16])
        self.ok("direct", {"to": user, "text": "marker", "client_id": marker.client_id})
        return marker

    def until_marker(self, marker: Marker, name: str | None = None,
                     timeout: float = 10) -> list[Any]:
        """The `name` events (by default the marker's kind) that arrived before `marker`, taken,
        once the marker arrived: all of them that were published on the marker's channel before
        it (see the class's description). Markers themselves are never among the events."""
        name = name or marker.event
        with self._arrived:
            if not self._arrived.wait_for(lambda: marker.client_id in self._markers, timeout):
                raise AssertionError(f"the marker {marker.client_id} did not arrive within "
                                     f"{timeout} s")
            position = self._markers[marker.client_id]
            pending = self._events[name]
            before = [data for arrival, data in pending if arrival < position]
            pending[:] = [(arrival, data) for arrival, data in pending if arrival > position]
        return before

    def close(self) -> None:
        if self.sio.connected:
            self.sio.disconnect()


class Users:
    """Registers users and opens clients pinned to a chosen node."""

    def __init__(self, cluster: Cluster | ExternalCluster):
        self.cluster = cluster
        self.base = cluster.url
        self.clients: list[Client] = []
        self._keys = itertools.count()

    def register(self, prefix: str = "u", *, name: str | None = None) -> tuple[str, str]:
        """A new user (`name`, or a fresh one starting with `prefix`) and a token of it."""
        name = name or f"{prefix}{uuid.uuid4().hex[:10]}"
        password = "correct-horse-" + name
        answer = requests.post(self.base + "/api/register",
                               json={"username": name, "password": password}, timeout=10)
        assert answer.status_code == 201, answer.text
        answer = requests.post(self.base + "/api/token",
                               json={"username": name, "password": password}, timeout=10)
        assert answer.status_code == 200, answer.text
        return name, answer.json()["token"]

    def connect(self, token: str, node: str | None = None, **kwargs: Any) -> Client:
        """A client on `node` (found by trying sticky keys), or on any node."""
        for _ in range(60):
            client = Client(self.base, token, f"k{uuid.uuid4().hex[:8]}{next(self._keys)}",
                            **kwargs)
            if node is None or client.node == node:
                self.clients.append(client)
                return client
            client.close()
        raise AssertionError(f"no sticky key led to {node}")

    def user_on(self, node: str, prefix: str = "u", *, name: str | None = None,
                **kwargs: Any) -> tuple[str, Client]:
        name, token = self.register(prefix, name=name)
        return name, self.connect(token, node, **kwargs)

    def history(self, room: str) -> list[dict[str, Any]]:
        """Every stored message of `room`, oldest first (the HTTP API, page by page)."""
        messages: list[dict[str, Any]] = []
        after = "0-0"
        while True:
            answer = requests.get(f"{self.base}/api/rooms/{room}/messages",
                                  params={"after": after, "limit": 500}, timeout=10,
                                  headers={"Authorization": f"Bearer {API_KEY}"})
            assert answer.status_code == 200, answer.text
            page = answer.json()["messages"]
            messages += page
            if len(page) < 500:
                return messages
            after = page[-1]["id"]

    def close(self) -> None:
        for client in self.clients:
            client.close()


@pytest.fixture
def users(cluster: Cluster) -> Iterator[Users]:
    pool = Users(cluster)
    yield pool
    pool.close()


@pytest.fixture
def room() -> str:
    return "room-" + uuid.uuid4().hex[:12]


@pytest.fixture(scope="session")
def nodes(cluster: Cluster | ExternalCluster) -> list[str]:
    """The node names, sorted: the launcher's node-1..N, or those another deployment's front door
    reaches (compose names each replica after its container)."""
    if isinstance(cluster, Cluster):
        return [cluster.node_name(i) for i in cluster.indexes()]
    reached = {requests.get(f"{cluster.url}/healthz", params={"node_key": f"probe{key}"},
                            timeout=10).json()["node"] for key in range(200)}
    return sorted(reached)
