"""Clients that behave like the page: reconnect by themselves and resume their room with `since`."""

from __future__ import annotations

import threading
import time
from collections import Counter
from typing import Any

import socketio


class ResumingClient:
    """Reconnects through the front door and rejoins its room from the last id it holds.

    `ids` is every message id it was given (join answers and live messages), in arrival order;
    `nodes` the node of each connection it had."""

    def __init__(self, base: str, token: str, node_key: str, room: str):
        self.room = room
        self.ids: list[str] = []
        self.nodes: list[str] = []
        self._joining = False
        self._held: list[str] = []
        self._lock = threading.Lock()
        self.sio = socketio.Client(reconnection=True, reconnection_delay=0.2,
                                   reconnection_delay_max=1.0)
        self.sio.on("welcome", lambda welcome: self.nodes.append(welcome["node"]))
        self.sio.on("message", self._on_message)
        self.sio.on("connect", lambda: self.sio.start_background_task(self._join))
        self.sio.connect(f"{base}?node_key={node_key}", auth={"token": token},
                         transports=["websocket"], wait_timeout=10)
        self.wait_joined(10)

    def _on_message(self, message: dict[str, Any]) -> None:
        if message["room"] != self.room:
            return
        with self._lock:
            (self._held if self._joining else self.ids).append(message["id"])

    def _join(self) -> None:
        with self._lock:
            self._joining = True
            since = self.ids[-1] if self.ids else None
        payload = {"room": self.room, **({"since": since} if since else {})}
        try:
            answer = self.sio.call("join", payload, timeout=10)
        except Exception:  # the connection went again; the next connect rejoins
            return
        with self._lock:
            if answer.get("ok"):
                self.ids.extend(m["id"] for m in answer["missed"])
                self.joined_on = answer["node"]
            self.ids.extend(self._held)
            self._held.clear()
            self._joining = False

    def wait_joined(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while getattr(self, "joined_on", None) is None or self._joining:
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.room}: not joined within {timeout} s")
            time.sleep(0.02)

    def wait_for(self, message_id: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while message_id not in self.ids:
            if time.monotonic() > deadline:
                raise AssertionError(f"never got {message_id}; has {len(self.ids)} ids, "
                                     f"last {self.ids[-3:]}")
            time.sleep(0.05)

    def close(self) -> None:
        self.sio.reconnection = False
        if self.sio.connected:
            self.sio.disconnect()


class Sender(threading.Thread):
    """Sends to a room as fast as acks come back, through its own resuming connection, and keeps
    the ids of the acknowledged messages; failed sends (no ack, `unavailable`) are retried."""

    def __init__(self, client: ResumingClient, interval_s: float = 0.01):
        super().__init__(daemon=True)
        self.client, self.interval_s = client, interval_s
        self.acked: list[str] = []
        self.failures: Counter[str] = Counter()  # error code (or `no_ack`) -> count
        self.stop = threading.Event()

    def run(self) -> None:
        n = 0
        while not self.stop.is_set():
            try:
                answer = self.client.sio.call("send", {"room": self.client.room,
                                                       "text": f"n{n}"}, timeout=5)
            except Exception:  # disconnected or no ack: not acknowledged, retry
                answer = None
            if answer and answer.get("ok"):
                self.acked.append(answer["id"])
                n += 1
            else:
                self.failures[answer["error"]["code"] if answer else "no_ack"] += 1
                time.sleep(0.1)
            time.sleep(self.interval_s)
