"""Locust scenarios for the rooms service, acting as real clients of PROTOCOL.md.

SCENARIO=chat    rooms of ROOM_SIZE users; every user sends SEND_RATE messages/s and receives.
SCENARIO=fanout  one room; SENDERS users send FANOUT_RATE messages/s each; everyone receives.
SCENARIO=smallrooms  rooms of ROOM_SIZE (4) users; every user sends SEND_RATE (0.5) messages/s,
                 DIRECT_SHARE (0.2) of them as direct messages to another member of its room.

Reported to locust as request types: `connect` (Socket.IO connect until `welcome`), `send` (ack
time), `deliver` named `same-node` / `cross-node` (send to receipt, from the send time carried in
client_id). Each process writes a delivery ledger when the test stops (see accounting.py).

A send or direct whose ack is lost (no ack within ACK_TIMEOUT_S, or the connection dropped before
it) is sent again with the same client_id, up to RESENDS times (resend.py); a dropped connection
reconnects and joins its room again first. Its ack time and delivery latency run from the first
send. A user whose connection dropped is owed nothing from then on: it may have missed messages
while it was away.
"""

from __future__ import annotations

import itertools
import json
import os
import random
import time
import uuid
from pathlib import Path

import gevent
import requests
import socketio
from gevent.event import AsyncResult, Event
from locust import User, events, task

from loadtests.accounting import Ledger, Receiver
from loadtests.pacing import steady_rate
from loadtests.resend import ACK_TIMEOUT_S, RECONNECT_S, Unacknowledged, until_acknowledged

SCENARIO = os.environ.get("SCENARIO", "chat")
SMALL = SCENARIO == "smallrooms"
ROOM_SIZE = int(os.environ.get("ROOM_SIZE") or ("4" if SMALL else "10"))
SEND_RATE = float(os.environ.get("SEND_RATE") or ("0.5" if SMALL else "1"))
DIRECT_SHARE = float(os.environ.get("DIRECT_SHARE") or ("0.2" if SMALL else "0"))
SENDERS = int(os.environ.get("SENDERS", "5"))
FANOUT_RATE = float(os.environ.get("FANOUT_RATE", "5"))
USERS = int(os.environ.get("USERS", "100"))
RUN_ID = os.environ.get("LOADTEST_RUN_ID") or uuid.uuid4().hex[:8]
STOP_SENDING_AT = float(os.environ.get("LOADTEST_STOP_SENDING_AT", "inf"))
RESULTS = Path(os.environ.get("LOADTEST_RESULTS", "loadtests/results/latest"))
TOKENS_FILE = os.environ.get("LOADTEST_TOKENS")
PASSWORD = os.environ.get("LOADTEST_PASSWORD", "load-test-password")

ledger = Ledger()
local_index = itertools.count()
_tokens: list[str] | None = None
members: dict[str, dict[str, str]] = {}  # room -> uid -> username, of this process's users


def worker_index(environment) -> int:
    return getattr(environment.runner, "worker_index", 0) or 0


def account_token(host: str, index: int) -> str:
    """A token from the prepared file, else register (or log in) an account of our own."""
    global _tokens
    if TOKENS_FILE and _tokens is None:
        _tokens = json.loads(Path(TOKENS_FILE).read_text())
    if _tokens:
        return _tokens[index % len(_tokens)]
    username = f"lt-{RUN_ID}-{index}"
    requests.post(f"{host}/api/register", json={"username": username, "password": PASSWORD},
                  timeout=30)
    answer = requests.post(f"{host}/api/token", json={"username": username, "password": PASSWORD},
                           timeout=30)
    answer.raise_for_status()
    return answer.json()["token"]


class RoomsUser(User):
    """A plain python-socketio client (locust's SocketIOUser would report every emit and receipt
    with a response time of 0 under its own names; this reports what the contract measures)."""

    abstract = True

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # reconnects after a drop, so that a send whose ack was lost can be sent again: with
        # jittered exponential backoff (0.5 s doubling up to 5 s, each 50-150%), for as long as
        # the user runs (on_stop ends the attempts)
        self.sio = socketio.Client(reconnection_delay=0.5, reconnection_delay_max=5,
                                   randomization_factor=0.5, reconnection_attempts=0)
        self.up = Event()  # welcomed on the current connection
        self.joined = False  # the current connection is in the room: it may send
        self.stopping = False
        self.pending: AsyncResult | None = None  # the ack being waited for

    def on_start(self) -> None:
        n = next(local_index)
        worker = worker_index(self.environment)
        self.uid = f"w{worker}-{n}"
        self.room, self.sender = self.placement(worker, n)
        self.seq = itertools.count()
        token = account_token(self.host, worker * 100_003 + n)
        self.sio.on("welcome", self.on_welcome)
        self.sio.on("message", self.on_room_message)
        self.sio.on("direct", self.on_direct)
        started = time.perf_counter()
        try:
            self.sio.connect(f"{self.host}?node_key=lt-{RUN_ID}-{self.uid}", auth={"token": token},
                             transports=["websocket"], wait_timeout=30)
            if not self.up.wait(timeout=30):
                raise TimeoutError("no welcome within 30 s")
        except Exception as error:
            self.fire("connect", "socketio", started, error)
            raise
        self.fire("connect", "socketio", started)
        ledger.inbox_open[self.uid] = [time.time() * 1000, 0]
        self.receiver = Receiver(self.room, self.node)
        ledger.receivers[self.uid] = self.receiver
        answer = self.sio.call("join", {"room": self.room}, timeout=30)
        newest = self.sio.call("history", {"room": self.room, "limit": 1}, timeout=30)
        if not answer.get("ok") or not newest.get("ok"):
            raise RuntimeError(f"join failed: {answer} {newest}")
        self.receiver.watermark = newest["messages"][-1]["id"] if newest["messages"] else None
        self.receiver.listening = self.joined = self.sio.connected
        self.sio.on("disconnect", self.on_disconnect)
        members.setdefault(self.room, {})[self.uid] = self.username
        gevent.sleep(self.wait_time())

    def on_stop(self) -> None:
        self.stopping = True
        if hasattr(self, "receiver"):
            self.receiver.listening = self.receiver.listening and self.sio.connected
            members.get(self.room, {}).pop(self.uid, None)
        window = ledger.inbox_open.get(self.uid)
        if window is not None and window[1] == 0:  # still open: not closed by a drop
            window[1] = time.time() * 1000 if self.sio.connected else -1
        self.sio.shutdown()  # disconnects, or ends reconnection attempts

    def on_welcome(self, greeting: dict) -> None:
        self.node, self.username = greeting["node"], greeting["user"]
        self.up.set()

    def on_disconnect(self, *_reason) -> None:
        """The connection dropped: this user is owed nothing more (it misses what is sent until it
        is back), and the ack being waited for is lost."""
        if self.stopping:
            return
        self.up.clear()
        self.joined = self.receiver.listening = False
        window = ledger.inbox_open.get(self.uid)
        if window is not None:
            window[1] = -1
        members.get(self.room, {}).pop(self.uid, None)
        if self.pending is not None:
            self.pending.set_exception(ConnectionError("the connection dropped before the ack"))

    def back_in_room(self, wait_s: float) -> bool:
        """Whether this user can send: in its room on the current connection, or, after a drop,
        reconnected within `wait_s` and joined again."""
        if self.joined:
            return True
        if self.stopping or not self.up.wait(timeout=wait_s):
            return False
        try:
            answer = self.sio.call("join", {"room": self.room}, timeout=ACK_TIMEOUT_S)
        except socketio.exceptions.SocketIOError:
            return False
        self.joined = bool(answer.get("ok")) and self.sio.connected
        return self.joined

    def recover(self) -> bool:
        return self.back_in_room(RECONNECT_S)

    def placement(self, worker: int, n: int) -> tuple[str, bool]:
        raise NotImplementedError

    def fire(self, kind: str, name: str, started: float, error: Exception | None = None) -> None:
        self.environment.events.request.fire(
            request_type=kind, name=name, response_time=(time.perf_counter() - started) * 1000,
            response_length=0, exception=error, context={})

    def on_room_message(self, message: dict) -> None:
        now_ms = time.time() * 1000
        client_id = message.get("client_id", "")
        self.receiver.received(message["id"], client_id)
        if not client_id.startswith("lt:"):
            return
        latency = max(0.0, now_ms - float(client_id.rsplit(":", 1)[1]))
        kind = "same_node" if message["node"] == self.node else "cross_node"
        ledger.latencies[kind].append(latency)
        self.environment.events.request.fire(
            request_type="deliver", name=kind.replace("_", "-"), response_time=latency,
            response_length=len(message.get("text", "")), exception=None, context={})

    def on_direct(self, message: dict) -> None:
        client_id = message.get("client_id", "")
        if not client_id.startswith("ld:"):
            return
        ledger.direct_received(self.uid, client_id, message["id"])
        latency = max(0.0, time.time() * 1000 - float(client_id.rsplit(":", 1)[1]))
        kind = "same_node" if message["node"] == self.node else "cross_node"
        ledger.latencies[kind].append(latency)
        self.environment.events.request.fire(
            request_type="deliver", name="direct", response_time=latency, response_length=0,
            exception=None, context={})

    def ack(self, event: str, payload: dict) -> dict:
        """One emit of `event` and its answer: gevent.Timeout after ACK_TIMEOUT_S, ConnectionError
        when the connection is down or drops first."""
        result = self.pending = AsyncResult()
        try:
            self.sio.emit(event, payload, callback=result.set)
            return result.get(timeout=ACK_TIMEOUT_S)
        except socketio.exceptions.SocketIOError as error:  # not connected
            raise ConnectionError(str(error)) from error
        finally:
            self.pending = None

    def acknowledged(self, event: str, payload: dict) -> dict | None:
        """Call `event`, sending it again while its ack is lost, and report it to locust; the answer
        if it was ok, else None (counted)."""
        started = time.perf_counter()
        try:
            answer, resent = until_acknowledged(lambda: self.ack(event, payload), self.recover)
        except Unacknowledged as lost:
            ledger.retries += lost.resent
            ledger.send_failures["timeout" if self.joined else "disconnected"] += 1
            self.fire(event, event, started, lost)
            return None
        ledger.retries += resent
        if not answer.get("ok"):
            ledger.send_failures[answer["error"]["code"]] += 1
            self.fire(event, event, started, RuntimeError(answer["error"]["code"]))
            return None
        self.fire(event, event, started)
        return answer

    def send_direct(self) -> None:
        """A direct message to another member of the room (listening in this process)."""
        others = [(uid, name) for uid, name in members.get(self.room, {}).items()
                  if uid != self.uid]
        if not others:
            return
        uid, name = random.choice(others)
        client_id = f"ld:{self.uid}:{next(self.seq)}:{time.time() * 1000:.3f}"
        if self.acknowledged("direct", {"to": name, "text": "d" * 64, "client_id": client_id}):
            ledger.direct_acknowledged(uid, client_id, time.time() * 1000)

    @task
    def send(self) -> None:
        if not self.sender or time.time() >= STOP_SENDING_AT or not self.back_in_room(0):
            return
        if DIRECT_SHARE and random.random() < DIRECT_SHARE:
            self.send_direct()
            return
        client_id = f"lt:{self.uid}:{next(self.seq)}:{time.time() * 1000:.3f}"
        answer = self.acknowledged("send", {"room": self.room, "text": "x" * 64,
                                            "client_id": client_id})
        if answer:
            ledger.acknowledged(self.room, answer["id"])


class ChatUser(RoomsUser):
    wait_time = steady_rate(SEND_RATE)

    def placement(self, worker: int, n: int) -> tuple[str, bool]:
        return f"chat-{RUN_ID}-w{worker}-{n // ROOM_SIZE}", True


class FanoutUser(RoomsUser):
    wait_time = steady_rate(FANOUT_RATE)

    def placement(self, worker: int, n: int) -> tuple[str, bool]:
        every = max(1, USERS // max(1, SENDERS))
        return f"fanout-{RUN_ID}", n % every == 0


SCENARIOS = {"chat": ChatUser, "fanout": FanoutUser, "smallrooms": ChatUser}
if SCENARIO not in SCENARIOS:
    raise SystemExit(f"SCENARIO must be chat, fanout or smallrooms, got {SCENARIO!r}")


@events.test_stop.add_listener
def write_ledger(environment, **_kwargs) -> None:
    if not ledger.receivers and not ledger.sent:
        return
    RESULTS.mkdir(parents=True, exist_ok=True)
    ledger.write(RESULTS / f"ledger-{os.getpid()}.json")
