"""Long-polling sessions' liveness without python-engineio's service task
(service/transport/polling_liveness.py), on a real python-engineio server with short timers.

The server runs in threading mode (its ping tasks are threads), the wheel in a thread of its own;
the client is this test, speaking Engine.IO's long-polling through the server's WSGI handler."""

import threading
import time

import engineio
import pytest

from service.transport import compat, polling_liveness
from service.transport.heartbeat import Heartbeat
from tests.waiting import wait_for

PING_INTERVAL_S, PING_TIMEOUT_S, TICK_S = 0.3, 0.3, 0.05


class Server:
    def __init__(self, run_wheel=True):
        self.eio = engineio.Server(async_mode="threading", ping_interval=PING_INTERVAL_S,
                                   ping_timeout=PING_TIMEOUT_S,
                                   **polling_liveness.server_options("gevent"))
        self.started = []  # what the server started in the background
        start = self.eio.start_background_task

        def recorded(target, *args, **kwargs):
            self.started.append(getattr(target, "__name__", repr(target)))
            return start(target, *args, **kwargs)

        self.eio.start_background_task = recorded
        self.ended = {}
        self.gone = threading.Condition()
        self.eio.on("connect", lambda sid, environ: True)
        self.eio.on("disconnect", self.on_disconnect)
        self.wheel = Heartbeat(TICK_S)
        spawn = self.eio.start_background_task if run_wheel else (lambda *args: None)
        self.liveness = polling_liveness.attach(self.eio, self.wheel, spawn)

    def on_disconnect(self, sid, reason):
        with self.gone:
            self.ended[sid] = (reason, time.monotonic())
            self.gone.notify_all()

    def wait_ended(self, sid, timeout_s):
        with self.gone:
            self.gone.wait_for(lambda: sid in self.ended, timeout=timeout_s)
        return self.ended.get(sid)

    def request(self, method, query, body=b""):
        answer = {}
        environ = {"REQUEST_METHOD": method, "PATH_INFO": "/engine.io/", "QUERY_STRING": query,
                   "SERVER_NAME": "test", "SERVER_PORT": "80", "wsgi.url_scheme": "http",
                   "CONTENT_LENGTH": str(len(body)), "wsgi.input": _Body(body)}
        chunks = self.eio.handle_request(environ, lambda status, headers: answer.update(
            status=status))
        return answer["status"], b"".join(chunks).decode()

    def open(self):
        status, body = self.request("GET", "EIO=4&transport=polling")
        assert status.startswith("200"), body
        return body.split('"sid":"')[1].split('"')[0]

    def stop(self):
        self.wheel.running = False


class _Body:
    def __init__(self, data):
        self.data = data

    def read(self, length=-1):
        return self.data


@pytest.fixture
def server():
    instance = Server()
    yield instance
    instance.stop()


def test_a_node_turns_the_service_task_off_only_in_gevent_mode():
    assert polling_liveness.server_options("gevent") == {"monitor_clients": False}
    assert polling_liveness.server_options("eventlet") == {"monitor_clients": True}
    assert polling_liveness.server_options("threading") == {"monitor_clients": True}
    eio = engineio.Server(async_mode="threading")
    handle = eio.handle_request
    assert polling_liveness.install(eio, spawn=eio.start_background_task) is None
    assert eio.handle_request == handle  # other modes: python-engineio's service task


def test_a_vanished_polling_client_is_closed_after_ping_interval_and_timeout(server):
    opened = time.monotonic()
    sid = server.open()  # then the client vanishes: no poll, no PONG
    ended = server.wait_ended(sid, timeout_s=10)
    assert ended is not None, "the session of a vanished client was never closed"
    reason, at = ended
    assert reason == server.eio.reason.PING_TIMEOUT
    took = at - opened
    assert PING_INTERVAL_S + PING_TIMEOUT_S <= took < PING_INTERVAL_S + PING_TIMEOUT_S + 1.0
    assert sid not in server.eio.sockets
    assert server.request("GET", f"EIO=4&transport=polling&sid={sid}")[0].startswith("400")
    assert "_service_task" not in server.started  # monitor_clients=False: never started
    assert server.started.count("run_forever") == 1  # one wheel for the node


def test_a_polling_client_that_answers_pings_stays_open(server):
    sid = server.open()
    started = time.monotonic()
    while time.monotonic() - started < 3 * (PING_INTERVAL_S + PING_TIMEOUT_S):
        status, body = server.request("GET", f"EIO=4&transport=polling&sid={sid}")  # waits
        assert status.startswith("200") and body == "2", body
        assert server.request("POST", f"EIO=4&transport=polling&sid={sid}", b"3")[0] \
            .startswith("200")
    assert sid not in server.ended and not server.eio.sockets[sid].closed
    assert len(server.wheel) == 1  # still watched


def test_a_poll_past_the_deadline_is_refused_before_the_wheel_gets_there():
    server = Server(run_wheel=False)  # no visits: only the request's own check
    sid = server.open()
    socket = server.eio.sockets[sid]
    wait_for(lambda: compat.unanswered_ping_at(socket) is not None, 5, "the server's PING",
             poll_s=0.01)
    sent_at = compat.unanswered_ping_at(socket)
    wait_for(lambda: time.time() - sent_at > PING_TIMEOUT_S, 5, "the PING's deadline",
             poll_s=0.01)
    assert not socket.closed  # nothing visited it
    status, _ = server.request("GET", f"EIO=4&transport=polling&sid={sid}")
    assert status.startswith("400")
    assert server.ended[sid][0] == server.eio.reason.PING_TIMEOUT
    assert sid not in server.eio.sockets


def test_websocket_sessions_are_not_filed_and_an_upgraded_one_is_dropped():
    server = Server(run_wheel=False)

    class WebSocketSession(compat.EngineIOSocket):
        pass

    socket = compat.open_session(server.eio, WebSocketSession, {})
    assert socket is not None and len(server.wheel) == 0
    sid = server.open()
    assert len(server.wheel) == 1
    server.eio.sockets[sid].upgraded = True  # the transport took it over
    assert server.wheel.run_due(time.monotonic() + PING_TIMEOUT_S + 1) == 1
    assert len(server.wheel) == 0 and sid in server.eio.sockets and sid not in server.ended


def test_a_session_closed_by_the_client_without_a_poll_leaves_the_table():
    server = Server(run_wheel=False)
    sid = server.open()
    assert server.request("POST", f"EIO=4&transport=polling&sid={sid}", b"1")[0] \
        .startswith("200")
    assert server.eio.sockets[sid].closed  # python-engineio keeps it until a request comes
    server.wheel.run_due(time.monotonic() + PING_TIMEOUT_S + 1)
    assert sid not in server.eio.sockets and len(server.wheel) == 0


def test_a_pong_that_comes_between_the_deadline_and_the_close_keeps_the_session_watched():
    server = Server(run_wheel=False)
    spawned = []
    sid = server.open()
    server.liveness.spawn = lambda *call: spawned.append(call)
    socket = server.eio.sockets[sid]
    socket.last_ping = time.time() - PING_TIMEOUT_S - 0.1  # a PING past its deadline
    assert server.wheel.run_due(time.monotonic() + PING_TIMEOUT_S + 1) == 1
    assert len(spawned) == 1 and len(server.wheel) == 0  # its close is on its way
    socket.last_ping = None  # the PONG came first
    function, *args = spawned[0]
    function(*args)
    assert not socket.closed and sid not in server.ended
    assert len(server.wheel) == 1  # watched again
