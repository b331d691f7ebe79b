"""Real Socket.IO clients of the cluster under test (`cluster` is in tests/conftest.py)."""

from __future__ import annotations

import itertools
import os
import queue
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from cluster import Cluster

from service.settings import DEV_API_KEY, DEV_SECRET_KEY
from tests.conftest import RESULTS, TEST_ENV, ExternalCluster  # noqa: F401 - used by the tests
from tests.strict_client import StrictClient

API_KEY = os.environ.get("API_KEY", DEV_API_KEY)
SECRET_KEY = os.environ.get("SECRET_KEY", DEV_SECRET_KEY)


class Client:
    """A Socket.IO client through the front door that records every event it receives."""

    def __init__(self, base_url: str, token: str | None, node_key: str | None,
                 transports: list[str] | None = None, headers: dict[str, str] | None = None,
                 auth: Any = "token", reconnection: bool = False):
        self.sio = StrictClient(reconnection=reconnection, reconnection_delay=0.5,
                                reconnection_delay_max=2)
        self.events: dict[str, queue.Queue] = {}
        self.welcome: dict[str, Any] = {}
        for name in ("message", "direct", "presence", "welcome"):
            self.events[name] = queue.Queue()
            self.sio.on(name, self._recorder(name))
        url = base_url + (f"?node_key={node_key}" if node_key else "")
        self.sio.connect(url, auth={"token": token} if auth == "token" else auth,
                         transports=transports or ["websocket"], headers=headers or {},
                         wait_timeout=10)
        self.welcome = self.events["welcome"].get(timeout=10)

    def _recorder(self, name: str):
        return lambda data: self.events[name].put(data)

    def listen(self, *names: str) -> None:
        """Record these events too (before they can arrive)."""
        for name in names:
            self.events.setdefault(name, queue.Queue())
            self.sio.on(name, self._recorder(name))

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
        deadline = time.monotonic() + timeout
        got = []
        while len(got) < count:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"got {len(got)} of {count} {name} events: {got}")
            got.append(self.events[name].get(timeout=remaining))
        return got

    def drain(self, name: str, settle: float = 0.3) -> list[Any]:
        time.sleep(settle)
        got = []
        while True:
            try:
                got.append(self.events[name].get_nowait())
            except queue.Empty:
                return got

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

    def register(self, prefix: str = "u") -> tuple[str, str]:
        name = f"{prefix}{uuid.uuid4().hex[:10]}"
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

    def user_on(self, node: str, prefix: str = "u", **kwargs: Any) -> tuple[str, Client]:
        name, token = self.register(prefix)
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
