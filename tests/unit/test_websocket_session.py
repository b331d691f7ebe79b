"""The project's WebSocket transport without a task per connection (service/transport/websocket.py),
served in this process on gevent's loop over socket pairs: an idle connection holds no task, one
connection's events are handled in order and never two at once while different connections' run
side by side, a flood of frames is read in bounded steps with its inbox bounded, silence and half
a frame are cut off on the timer, and descriptors reused at once never cross connections.

python-engineio's real server and socket class serve the sessions; the test's `message` handler
stands for python-socketio."""

from __future__ import annotations

import gc
import os
import struct

import engineio
import gevent
import gevent.event
import pytest
from gevent import socket as gevent_socket
from greenlet import greenlet

from service.transport import compat, frames, websocket
from service.transport.frames import FrameReader
from service.transport.heartbeat import Heartbeat
from service.transport.packet_guard import acceptable

CONNECT_TIMEOUT_S = 0.6
BOUND = websocket.INBOX_PAUSE + websocket.FRAMES_PER_CALL  # the most a connection's inbox holds


def client_frame(opcode: int, payload: bytes, *, fin: bool = True) -> bytes:
    mask = os.urandom(4)
    length = len(payload)
    head = bytes(((0x80 if fin else 0) | opcode,))
    if length < 126:
        head += bytes((0x80 | length,))
    elif length < 1 << 16:
        head += bytes((0x80 | 126,)) + struct.pack("!H", length)
    else:
        head += bytes((0x80 | 127,)) + struct.pack("!Q", length)
    return head + mask + frames.unmask(payload, mask)


def wait_for(condition, timeout: float = 10, what: str = "the condition") -> None:
    """tests/waiting.py's wait, letting gevent's loop run (this process is not monkey-patched)."""
    with gevent.Timeout(timeout, AssertionError(f"timed out after {timeout} s: {what}")):
        while not condition():
            gevent.sleep(0.01)


class Client:
    """The far end of one connection: raw frames out, server frames in."""

    def __init__(self, sock: gevent_socket.socket, session: websocket.WebSocketSession):
        self.sock, self.session, self.buffer = sock, session, b""

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def text(self, payload: str) -> None:
        self.send(client_frame(frames.TEXT, payload.encode()))

    def next_frame(self, timeout: float = 10) -> tuple[int, bytes]:
        with gevent.Timeout(timeout):
            while True:
                if len(self.buffer) >= 2:
                    length, offset = self.buffer[1] & 0x7F, 2
                    if length == 126:
                        (length,), offset = struct.unpack("!H", self.buffer[2:4]), 4
                    elif length == 127:
                        (length,), offset = struct.unpack("!Q", self.buffer[2:10]), 10
                    if len(self.buffer) >= offset + length:
                        frame = (self.buffer[0] & 0x0F, self.buffer[offset:offset + length])
                        self.buffer = self.buffer[offset + length:]
                        return frame
                data = self.sock.recv(65536)
                if not data:
                    raise ConnectionError("closed")
                self.buffer += data

    def close_code(self) -> int:
        while (frame := self.next_frame())[0] != frames.CLOSE:
            pass
        return struct.unpack("!H", frame[1][:2])[0]


class Node:
    """A transport on a real python-engineio server, with the handler a test gives it."""

    def __init__(self, *, joined: bool = True, send_buffer_bytes: int = 1 << 20):
        self.eio = engineio.Server(async_mode="gevent", monitor_clients=False,
                                   async_handlers=False)  # as python-socketio makes it
        self.handled: list[tuple[str, str]] = []  # (sid, data) in the order handled
        self.on_message = lambda sid, data: None
        self.eio.on("message", self._message)
        limits = websocket.Limits(ping_interval_s=25, ping_timeout_s=20, max_message=1 << 20,
                                  send_buffer_bytes=send_buffer_bytes,
                                  connect_timeout_s=CONNECT_TIMEOUT_S, max_sessions=10_000,
                                  accepts=acceptable)
        self.heartbeat = Heartbeat(0.05, sleep=gevent.sleep)
        self.timer = gevent.spawn(self.heartbeat.run_forever)
        self.transport = websocket.WebSocketTransport(
            lambda environ, start_response: [], self.eio, limits, self.heartbeat, ["*"],
            start_heartbeat=lambda: None, is_joined=lambda sid: joined)

    def _message(self, sid: str, data: str) -> None:
        self.handled.append((sid, data))
        self.on_message(sid, data)

    def connect(self) -> Client:
        ours, theirs = gevent_socket.socketpair()
        eio_socket = websocket.WebSocketEngineIOSocket(self.eio, self.eio.generate_id())
        self.eio.sockets[eio_socket.sid] = eio_socket
        eio_socket.connected = eio_socket.upgraded = True
        session = self.transport.session(eio_socket, websocket.take_descriptor(ours))
        eio_socket.websocket = session
        session.start(b"")
        session.listen()
        return Client(theirs, session)

    def stop(self) -> None:
        self.timer.kill()


@pytest.fixture
def node():
    instance = Node()
    yield instance
    instance.stop()


def live_greenlets() -> int:
    return sum(1 for thing in gc.get_objects()
               if isinstance(thing, greenlet) and thing and not thing.dead)


def test_idle_connections_hold_no_task(node):
    gevent.sleep(0)  # the hub and the node's timer are running
    gc.collect()
    before = live_greenlets()
    clients = [node.connect() for _ in range(200)]
    for client in clients:
        client.text("42hello")
    wait_for(lambda: len(node.handled) == 200, what="every connection's event handled")
    wait_for(lambda: node.transport.tasks == 0, what="their tasks ended")
    gc.collect()
    assert live_greenlets() <= before  # no task for any of the 200 idle connections
    assert node.transport.held == 200
    clients[0].text("42again")  # and an idle connection is still served
    wait_for(lambda: len(node.handled) == 201, what="the next event")


def test_one_connections_events_run_in_order_and_never_two_at_once(node):
    running: dict[str, int] = {}
    overlap: list[str] = []
    most_at_once = [0]

    def slow(sid: str, data: str) -> None:
        running[sid] = running.get(sid, 0) + 1
        if running[sid] > 1:
            overlap.append(sid)
        most_at_once[0] = max(most_at_once[0], sum(running.values()))
        gevent.sleep(0.002)
        running[sid] -= 1

    node.on_message = slow
    first, second = node.connect(), node.connect()
    first.send(b"".join(client_frame(frames.TEXT, f"42a{i}".encode()) for i in range(100)))
    second.send(b"".join(client_frame(frames.TEXT, f"42b{i}".encode()) for i in range(100)))
    wait_for(lambda: len(node.handled) == 200, what="200 events handled")
    assert overlap == []
    for client, prefix in ((first, "a"), (second, "b")):
        sid = client.session.eio_socket.sid
        assert [data for handled_sid, data in node.handled if handled_sid == sid] == [
            f"2{prefix}{i}" for i in range(100)]
    assert most_at_once[0] == 2  # the two connections' handlers did run side by side


def test_a_flood_keeps_its_inbox_bounded_and_others_are_answered(node):
    deepest = [0]
    gate = gevent.event.Event()

    def blocked(sid: str, data: str) -> None:
        inbox = flooder.session.inbox
        deepest[0] = max(deepest[0], len(inbox) if inbox else 0)
        if sid == flooder.session.eio_socket.sid:
            gate.wait()

    node.on_message = blocked
    flooder, other = node.connect(), node.connect()
    flood = client_frame(frames.TEXT, b"42x") * 10_000
    sender = gevent.spawn(flooder.send, flood)
    wait_for(lambda: flooder.session.paused, what="the flooder's reading paused")
    assert node.transport.paused == 1
    other.send(client_frame(frames.PING, b"still there?"))
    assert other.next_frame(timeout=5) == (frames.PONG, b"still there?")
    other.text("42served")
    wait_for(lambda: (other.session.eio_socket.sid, "2served") in node.handled,
             what="the other connection's event handled while the flooder waits")
    assert deepest[0] <= BOUND
    gate.set()
    wait_for(lambda: sum(1 for sid, _ in node.handled
                         if sid == flooder.session.eio_socket.sid) == 10_000,
             timeout=60, what="all of the flood handled, in the end")
    sender.join(timeout=10)
    assert deepest[0] <= BOUND and node.transport.paused == 0


class CountingReader(FrameReader):
    """The transport's reader, counting the events each call gives."""

    def __init__(self, max_message: int):
        super().__init__(max_message)
        self.calls: list[int] = []

    def feed(self, data: bytes, limit: int = 0) -> list:
        events = super().feed(data, limit)
        self.calls.append(len(events))
        return events


def test_a_read_parses_a_bounded_number_of_frames(node):
    client = node.connect()
    reader = client.session.reader = CountingReader(1 << 20)
    client.send(client_frame(frames.TEXT, b"6") * 1000 + client_frame(frames.PING, b"end"))
    assert client.next_frame() == (frames.PONG, b"end")
    assert max(reader.calls) <= websocket.FRAMES_PER_CALL and sum(reader.calls) == 1001


@pytest.mark.parametrize(("data", "code"), [
    (client_frame(frames.TEXT, b"2"), frames.POLICY_VIOLATION),
    (client_frame(frames.TEXT, b"0"), frames.POLICY_VIOLATION),
    (client_frame(frames.TEXT, b"hello"), frames.POLICY_VIOLATION),
    (client_frame(frames.TEXT, b"4\xff"), frames.INVALID_DATA),
    (client_frame(frames.PING, b"x", fin=False), frames.PROTOCOL_ERROR),
])
def test_a_violation_read_in_the_callback_closes_with_its_code(node, data, code, caplog):
    client = node.connect()
    client.send(data)
    assert client.close_code() == code
    wait_for(lambda: client.session.finished, what="the connection finished")
    assert client.session.eio_socket.sid not in node.eio.sockets
    assert not [record for record in caplog.records if record.exc_info]


def test_silence_and_half_a_frame_are_cut_off_on_the_timer_without_a_task():
    node = Node(joined=False)
    try:
        silent, halfway = node.connect(), node.connect()
        halfway.send(client_frame(frames.TEXT, b"4" + b"x" * 300)[:40])
        wait_for(lambda: node.transport.tasks == 0 and halfway.session.reader.buffered == 40,
                 what="the half frame held without a task")
        assert silent.close_code() == frames.POLICY_VIOLATION
        assert halfway.close_code() == frames.POLICY_VIOLATION
        wait_for(lambda: node.transport.held == 0, what="both sessions finished")
        assert node.transport.tasks == 0
    finally:
        node.stop()


def test_the_end_comes_after_the_events_before_it(node):
    ended: list[str] = []
    node.eio.on("disconnect", lambda sid, reason: ended.append(sid))
    node.on_message = lambda sid, data: gevent.sleep(0.001)
    client = node.connect()
    client.send(b"".join(client_frame(frames.TEXT, f"42m{i}".encode()) for i in range(50))
                + client_frame(frames.CLOSE, struct.pack("!H", 1000)))
    sid = client.session.eio_socket.sid
    wait_for(lambda: ended == [sid], what="the disconnect handled")
    assert [data for handled_sid, data in node.handled if handled_sid == sid] == [
        f"2m{i}" for i in range(50)]


def test_descriptors_reused_at_once_never_cross_connections(node):
    for round_number in range(300):
        client = node.connect()
        client.text(f"42r{round_number}")
        client.send(client_frame(frames.CLOSE, struct.pack("!H", 1000)))
        assert client.close_code() == 1000
        client.sock.close()
        session = client.session
        wait_for(lambda session=session: session.finished, what="the session finished")
    sids = {}
    for sid, data in node.handled:
        sids.setdefault(sid, []).append(data)
    assert all(len(datas) == 1 for datas in sids.values()) and len(sids) == 300
    assert node.transport.held == 0 and node.transport.tasks == 0


def test_one_frame_larger_than_the_send_buffer_goes_out_and_a_stopped_reader_is_cut_off():
    node = Node(send_buffer_bytes=64 * 1024)
    try:
        client = node.connect()
        big = websocket.server_frame(frames.TEXT, b"4" + b"y" * 300_000)
        client.session.write(big)
        opcode, data = client.next_frame()
        assert (opcode, len(data)) == (frames.TEXT, 300_001)
        assert not client.session.ended
        client.session.write(big)  # the reader stops reading: frames pile up and it is cut off
        for _ in range(20):
            client.session.write(websocket.server_frame(frames.TEXT, b"4" + b"z" * 10_000))
        assert client.session.ended
    finally:
        node.stop()


def test_compat_checks_the_loop_it_serves_connections_on():
    assert compat._gevent_loop()


def test_a_burst_of_events_is_followed_by_one_trim(node):
    from service.transport.memory import BurstTrimmer

    trims: list[int] = []
    node.transport.trimmer = BurstTrimmer(trim=lambda: trims.append(node.transport.tasks))
    node.on_message = lambda sid, data: gevent.sleep(0.05)
    clients = [node.connect() for _ in range(100)]
    for client in clients:
        client.text("42burst")
    wait_for(lambda: len(node.handled) == 100, what="the burst handled")
    wait_for(lambda: trims == [0], what="one trim once no task runs")
