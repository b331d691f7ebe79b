"""Handing connections over (node/handover.py), deciding that a node is cut off from Redis
(node/cut_off.py) and the session gate (node/gate.py), with stand-ins for python-socketio's server
and for the other nodes' /readyz (a real HTTP server)."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace
from typing import ClassVar

import pytest

from service.node.cut_off import CutOff, PeerView
from service.node.gate import SessionGate
from service.node.handover import hand_over


class FakeSocket:
    def __init__(self, log: list, sid: str):
        self.log, self.sid, self.closed = log, sid, False

    def close(self, wait: bool, abort: bool, reason: str) -> None:
        assert (wait, abort) == (False, True)  # no CLOSE packet: clients come back elsewhere
        self.closed = True
        self.log.append((self.sid, self.log_clock[0]))


class FakeServer:
    """python-socketio's Server as far as handover.py reaches (compat.end_transport(s)_of)."""

    def __init__(self, sids: list[str], extra_sessions: int = 0):
        self.log: list[tuple[str, float]] = []
        self.clock = [0.0]
        sockets = {}
        for sid in [*sids, *(f"bare{n}" for n in range(extra_sessions))]:
            sock = FakeSocket(self.log, sid)
            sock.log_clock = self.clock
            sockets["e" + sid] = sock
        self.eio = SimpleNamespace(sockets=sockets,
                                   reason=SimpleNamespace(SERVER_DISCONNECT="server disconnect"))
        self.manager = SimpleNamespace(
            eio_sid_from_sid=lambda sid, namespace: "e" + sid if "e" + sid in sockets else None)

    def sleep(self, seconds: float) -> None:
        self.clock[0] += seconds

    def now(self) -> float:
        return self.clock[0]


def test_connections_are_ended_evenly_over_the_spread_then_everything_else():
    sids = [f"s{n}" for n in range(40)]
    server = FakeServer(sids, extra_sessions=2)
    ended = hand_over(server, sids, spread_s=2.0, busy_wait_s=5, busy=lambda sid: False,
                      sleep=server.sleep, monotonic=server.now)
    assert ended == 42 and not server.eio.sockets
    times = [at for sid, at in server.log if sid.startswith("s")]
    assert times == sorted(times) and times[-1] <= 2.0
    per_tenth = max(times.count(at) for at in set(times))
    assert per_tenth == 2  # 40 over 2 s: 2 each tick of 0.1 s, never all at once
    assert [sid for sid, _ in server.log[-2:]] == ["bare0", "bare1"]


def test_a_busy_connection_is_ended_after_its_event_or_when_the_wait_runs_out():
    sids = ["idle", "busy", "stuck"]
    server = FakeServer(sids)
    busy_until = {"busy": 0.35, "stuck": float("inf")}
    hand_over(server, sids, spread_s=0.1, busy_wait_s=1.0,
              busy=lambda sid: server.clock[0] < busy_until.get(sid, 0), sleep=server.sleep,
              monotonic=server.now)
    ended_at = dict(server.log)
    assert ended_at["idle"] == 0.0
    assert 0.35 <= ended_at["busy"] < 0.5
    assert 1.1 <= ended_at["stuck"] < 1.3  # spread + busy wait, then regardless


def test_a_hand_over_stops_when_told():
    sids = [f"s{n}" for n in range(10)]
    server = FakeServer(sids)
    hand_over(server, sids, spread_s=1.0, busy_wait_s=1, busy=lambda sid: False,
              sleep=server.sleep, keep_going=lambda: server.clock[0] < 0.25,
              monotonic=server.now)
    assert 2 <= len(server.log) <= 4 and len(server.eio.sockets) >= 6


def test_no_spread_ends_everything_at_once():
    sids = [f"s{n}" for n in range(5)]
    server = FakeServer(sids)
    assert hand_over(server, sids, spread_s=0, busy_wait_s=1, busy=lambda sid: False,
                     sleep=server.sleep, monotonic=server.now) == 5
    assert {at for _, at in server.log} == {0.0}


# ---- the other nodes' view of Redis ----------------------------------------------------------


class Peer(BaseHTTPRequestHandler):
    answers: ClassVar[dict[str, object]] = {}

    def do_GET(self) -> None:
        body = self.answers.get(self.server.name)  # type: ignore[attr-defined]
        if body == "hang":
            threading.Event().wait(3)
            body = {}
        data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *_args) -> None:
        pass


@pytest.fixture
def peers():
    servers = {}
    for name in ("up", "down", "garbage", "hang"):
        server = ThreadingHTTPServer(("127.0.0.1", 0), Peer)
        server.name = name
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers[name] = f"http://127.0.0.1:{server.server_address[1]}"
    Peer.answers = {"up": {"ready": True, "redis": {"up": True}},
                    "down": {"ready": False, "redis": {"up": False}},
                    "garbage": "not json", "hang": "hang"}
    yield servers


def test_a_peer_that_reaches_redis_is_found_and_others_are_not_taken_for_one(peers):
    view = PeerView("me")
    assert view.reaches_redis({"me": peers["up"], "down": peers["down"]}) is None
    assert view.reaches_redis({"down": peers["down"], "up": peers["up"]}) == "up"
    assert view.reaches_redis({"garbage": peers["garbage"], "hang": peers["hang"],
                               "gone": "http://127.0.0.1:9"}) is None


class Clock:
    def __init__(self):
        self.down = 0.0


def cut_off(clock: Clock, peer: str | None, handed: list[int]) -> CutOff:
    return CutOff("node-x", grace_s=10, down_for=lambda: clock.down,
                  peer_urls=lambda: {"node-y": "http://y"},
                  hand_over=lambda: handed.append(1) or 3,
                  peers=SimpleNamespace(reaches_redis=lambda urls: peer))


def test_a_node_hands_over_only_after_the_grace_period_and_only_if_another_reaches_redis():
    clock, handed = Clock(), []
    decision = cut_off(clock, "node-y", handed)
    clock.down = 9.9
    decision.check()
    assert not decision.active and handed == []
    clock.down = 10.0
    decision.check()
    assert decision.active and handed == [1] and decision.handed_over == 3
    clock.down = 0.0  # Redis answers again
    decision.check()
    assert not decision.active


def test_a_node_keeps_its_clients_when_redis_is_down_for_everyone():
    clock, handed = Clock(), []
    decision = cut_off(clock, None, handed)
    clock.down = 60
    decision.check()
    assert not decision.active and handed == []


# ---- the gate ---------------------------------------------------------------------------------


def call(gate: SessionGate, path: str, query: str = "", upgrade: bool = False):
    seen = {}

    def start_response(status, headers, *exc_info):
        seen["status"], seen["headers"] = status, dict(headers)

    environ = {"PATH_INFO": path, "QUERY_STRING": query}
    if upgrade:
        environ["HTTP_UPGRADE"] = "websocket"
    body = b"".join(gate(environ, start_response))
    return seen["status"], seen["headers"], body


def app(_environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"served"]


def test_the_gate_refuses_new_sessions_only_and_says_why():
    why: list[str | None] = ["this node cannot reach Redis now"]
    gate = SessionGate(app, lambda: why[0], lambda: False)
    status, headers, body = call(gate, "/socket.io/", "EIO=4&transport=websocket", upgrade=True)
    assert status.startswith("503") and headers["Retry-After"] == "1"
    assert json.loads(body) == {"error": {"code": "unavailable", "message": why[0]}}
    assert call(gate, "/socket.io/", "EIO=4&transport=polling&sid=abc")[0] == "200 OK"
    assert call(gate, "/readyz")[0] == "200 OK"
    why[0] = None
    assert call(gate, "/socket.io/", "EIO=4&transport=polling")[0] == "200 OK"


def test_a_closing_node_ends_kept_alive_connections_after_each_response():
    gate = SessionGate(app, lambda: None, lambda: True)
    assert call(gate, "/healthz")[1]["Connection"] == "close"
    assert "Connection" not in call(gate, "/socket.io/", "sid=a", upgrade=True)[1]
