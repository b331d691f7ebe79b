"""Traffic for the compose checks: a sender that never sends a message twice, and room members
that resume from their last id whenever their connection comes back (PROTOCOL.md)."""

from __future__ import annotations

import contextlib
import threading
import time
from typing import Any

from service.store.messages import parse_id
from tests.integration.conftest import Client


class Sender(threading.Thread):
    """Sends to `room` about `per_second` times a second until stopped; a send that failed or
    timed out is sent again with the same client_id, so nothing is stored twice."""

    def __init__(self, client: Client, room: str, per_second: float = 10):
        super().__init__(daemon=True)
        self.client, self.room, self.pause = client, room, 1 / per_second
        self.acked: list[str] = []
        self.failures = 0
        self.stopping = threading.Event()

    def run(self) -> None:
        number = 0
        while not self.stopping.is_set():
            payload = {"room": self.room, "text": f"m{number}", "client_id": f"scale-{number}"}
            try:
                answer = self.client.call("send", payload, timeout=5)
            except Exception:  # a lost ack: send the same client_id again
                answer = {}
            if answer.get("ok"):
                self.acked.append(answer["id"])
                number += 1
            else:
                self.failures += 1
            self.stopping.wait(self.pause)

    def wait_for_more(self, count: int, timeout: float = 30) -> None:
        target = len(self.acked) + count
        deadline = time.monotonic() + timeout
        while len(self.acked) < target:
            assert time.monotonic() < deadline, f"only {len(self.acked)} of {target} acknowledged"
            self.stopping.wait(0.05)

    def stop(self) -> None:
        self.stopping.set()
        self.join(30)


class Member:
    """A room member that records every message id it gets, live or from `join`'s `missed`, and
    after a reconnect (a new `welcome`) joins again with `since` its last id."""

    def __init__(self, client: Client, room: str, since: str | None = None):
        self.client, self.room = client, room
        self.since = since  # it is owed every message stored after this id (None: all)
        self.last = since
        self.ids: set[str] = set()
        self.nodes = [client.node]  # one more per reconnect
        self.rejoin_pending = False
        self.join()

    def join(self) -> None:
        payload: dict[str, Any] = {"room": self.room}
        if self.last is not None:
            payload["since"] = self.last
        answer = self.client.ok("join", payload)
        assert not answer.get("truncated"), "missed more than the resume window"
        self.record(answer.get("missed", []))

    def record(self, messages: list[dict[str, Any]]) -> None:
        for message in messages:
            self.ids.add(message["id"])
            if self.last is None or parse_id(message["id"]) > parse_id(self.last):
                self.last = message["id"]

    def pump(self) -> None:
        """Takes what arrived; joins again if the connection came back."""
        self.record(self.client.arrived("message"))
        for welcome in self.client.arrived("welcome"):
            self.nodes.append(welcome["node"])
            self.rejoin_pending = True
        if self.rejoin_pending and self.client.sio.connected:
            with contextlib.suppress(Exception):  # not connected after all: the next pump retries
                self.join()
                self.rejoin_pending = False

    def owed(self, acked: list[str]) -> set[str]:
        return {i for i in acked if self.since is None or parse_id(i) > parse_id(self.since)}

    @property
    def reconnects(self) -> int:
        return len(self.nodes) - 1


class Pump(threading.Thread):
    """Pumps members in the background, so each rejoins soon after its connection comes back."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.members: list[Member] = []
        self.lock = threading.Lock()
        self.stopping = threading.Event()

    def add(self, *members: Member) -> None:
        with self.lock:
            self.members += members

    def run(self) -> None:
        while not self.stopping.wait(0.1):
            with self.lock:
                for member in self.members:
                    member.pump()

    def stop(self) -> list[Member]:
        self.stopping.set()
        self.join(30)
        return self.members


def wait_until_received(members: list[Member], acked: list[str], timeout: float = 30) -> None:
    """Pumps the members until each has every acknowledged message it is owed."""
    deadline = time.monotonic() + timeout
    while True:
        for member in members:
            member.pump()
        missing = [(m.nodes, len(m.owed(acked) - m.ids)) for m in members if m.owed(acked) - m.ids]
        if not missing:
            return
        assert time.monotonic() < deadline, f"messages missing (member's nodes, count): {missing}"
        time.sleep(0.05)  # between polls of the members' queues
