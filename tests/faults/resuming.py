"""Clients that behave like the page: reconnect by themselves, with jittered exponential backoff
(python-socketio's: the delay doubles from `reconnection_delay` up to `reconnection_delay_max`,
each randomized by half), and resume their room with `since`."""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from typing import Any

import requests

from service.store.messages import parse_id
from tests.in_order_client import InOrderClient
from tests.integration.conftest import API_KEY
from tests.waiting import wait_for

MISSED_PAGE = 500  # the most messages a join's `missed` holds


def post_marker(base: str, room: str) -> str:
    """The id of a message posted to `room` over the HTTP API once its senders stopped: it is
    stored and published after every message sent before, so a client that got it got every
    one of them it was going to get, duplicates included (tests/integration/conftest.py's
    Client tells why)."""
    answer = requests.post(f"{base}/api/rooms/{room}/messages", json={"text": "marker"},
                           headers={"Authorization": f"Bearer {API_KEY}"}, timeout=10)
    assert answer.status_code == 202, answer.text
    return answer.json()["id"]


class ResumingClient:
    """Reconnects through the front door and rejoins its room from the last id it holds.

    `ids` is every message id it was given (join answers and live messages), in arrival order;
    `nodes` the node of each connection it had, `welcomed_at` when each was welcomed (monotonic);
    `outages` each (lost, back) pair of monotonic times: from a lost connection until the join
    on the next one was answered (the time it went without service)."""

    def __init__(self, base: str, token: str, node_key: str, room: str,
                 origin: str | None = None):
        self.room = room
        self.ids: list[str] = []
        self.nodes: list[str] = []
        self.welcomed_at: list[float] = []
        self.outages: list[tuple[float, float]] = []
        self.joined_on: str | None = None  # the node that answered the last join
        self._lost_at: float | None = None
        self._joining = False
        self._held: list[str] = []
        self.join_errors: list[str] = []
        self.joins: list[tuple[str | None, int, str]] = []  # (since, missed, node) of each join
        self._lock = threading.Lock()
        self.sio = InOrderClient(reconnection=True, reconnection_delay=0.2,
                                reconnection_delay_max=1.0,
                                websocket_extra_options={"origin": origin} if origin else {})
        self.sio.on("welcome", self._on_welcome)
        self.sio.on("disconnect", self._on_disconnect)
        self.sio.on("message", self._on_message)
        self.sio.on("connect", lambda: self.sio.start_background_task(self._join))
        self.sio.connect(f"{base}?node_key={node_key}", auth={"token": token},
                         transports=["websocket"], wait_timeout=10)
        self.wait_joined(10)

    def _on_welcome(self, welcome: dict[str, Any]) -> None:
        self.welcomed_at.append(time.monotonic())
        self.nodes.append(welcome["node"])

    def _on_disconnect(self, *_reason: Any) -> None:
        if self._lost_at is None:
            self._lost_at = time.monotonic()

    def _on_message(self, message: dict[str, Any]) -> None:
        if message["room"] != self.room:
            return
        with self._lock:
            (self._held if self._joining else self.ids).append(message["id"])

    def _join(self) -> None:
        """Rejoin from the last id held; retried while this connection lasts, as the page does."""
        connection, attempts = self.sio.get_sid(), 0
        while "/" in self.sio.namespaces and self.sio.get_sid() == connection:
            with self._lock:
                self._joining = True
                since = self.ids[-1] if self.ids else None
            payload = {"room": self.room, **({"since": since} if since else {})}
            attempts += 1
            try:
                answer = self.sio.call("join", payload, timeout=10)
            except Exception as error:  # no answer: again, unless the connection went
                self.join_errors.append(type(error).__name__)
                continue
            if not answer.get("ok"):
                self.join_errors.append(answer.get("error", {}).get("code", "?"))
                time.sleep(0.2)  # pacing of the retries, as the page's
                continue
            missed = [m["id"] for m in answer["missed"]]
            if since and answer.get("truncated") and len(missed) == MISSED_PAGE:
                try:
                    missed = self._older(since, missed[0]) + missed
                except Exception as error:  # the gap stays open: the join again, from `since`
                    self.join_errors.append(f"history: {error}")
                    continue
            with self._lock:
                self.ids.extend(missed)
                self.joins.append((since, len(missed), answer["node"]))
                self.joined_on = answer["node"]
                newest = parse_id(self.ids[-1]) if self.ids else (-1, -1)
                # what arrived during a failed attempt can be in this answer's missed too; after
                # one attempt, any overlap is the server's duplicate and stays for the test to see
                self.ids.extend(i for i in self._held if attempts == 1 or parse_id(i) > newest)
                self._held.clear()
                self._joining = False
                if self._lost_at is not None:
                    self.outages.append((self._lost_at, time.monotonic()))
                    self._lost_at = None
            return

    def _older(self, since: str, before: str) -> list[str]:
        """The ids after `since` and before `before`: a join answers with the newest
        MISSED_PAGE messages after `since`, and the older ones are read as history, as the page
        does."""
        older: list[str] = []
        while True:
            answer = self.sio.call("history", {"room": self.room, "before": before,
                                               "limit": MISSED_PAGE}, timeout=10)
            if not answer.get("ok"):
                raise RuntimeError(answer.get("error", {}).get("code", "?"))
            batch = [m["id"] for m in answer["messages"]]
            newer = [i for i in batch if parse_id(i) > parse_id(since)]
            older = newer + older
            if len(newer) < len(batch) or not batch:
                return older
            before = batch[0]

    def wait_joined(self, timeout: float) -> None:
        wait_for(lambda: self.joined_on is not None and not self._joining, timeout,
                 f"{self.room} to be joined", poll_s=0.02)

    def wait_for(self, message_id: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while message_id not in self.ids:
            if time.monotonic() > deadline:
                raise AssertionError(f"never got {message_id}; {self.state()}")
            time.sleep(0.05)

    def state(self) -> str:
        return (f"has {len(self.ids)} ids, last {self.ids[-3:]}; nodes {self.nodes}; connected "
                f"{self.sio.connected}; joining {self._joining} with {len(self._held)} held; "
                f"join errors {self.join_errors}; joins (since, missed, node) {self.joins}")

    def close(self) -> None:
        self.sio.reconnection = False
        if self.sio.connected:
            self.sio.disconnect()


class Sender(threading.Thread):
    """Sends to a room as fast as acks come back, through its own resuming connection, and keeps
    the ids of the acknowledged messages. Each message carries a client_id and is sent again
    with it until acknowledged (no ack, `unavailable`), so none is stored twice."""

    def __init__(self, client: ResumingClient, interval_s: float = 0.01):
        super().__init__(daemon=True)
        self.client, self.interval_s = client, interval_s
        self.name = uuid.uuid4().hex[:8]  # its client_ids' prefix
        self.acked: list[str] = []
        self.failures: Counter[str] = Counter()  # error code (or `no_ack`) -> count
        self.stop = threading.Event()

    def run(self) -> None:
        n = 0
        while not self.stop.is_set():
            client_id = f"{self.name}-{n}"
            try:
                answer = self.client.sio.call("send", {"room": self.client.room, "text": f"n{n}",
                                                       "client_id": client_id}, timeout=5)
            except Exception:  # disconnected or no ack: not acknowledged, sent again
                answer = None
            if answer and answer.get("ok"):
                self.acked.append(answer["id"])
                n += 1
            else:
                self.failures[answer["error"]["code"] if answer else "no_ack"] += 1
                time.sleep(0.1)  # pacing of the retries
            time.sleep(self.interval_s)  # the sender's pace
