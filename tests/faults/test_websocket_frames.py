"""Hostile WebSocket clients against a node's own transport (service/transport/websocket.py):
frames that break RFC 6455 end their connection with the right close code and no traceback,
slow-loris handshakes and half-open sessions are cut off on a timer, and a client that stops
reading is disconnected once its send buffer is full. Other connections never notice."""

from __future__ import annotations

import base64
import json
import os
import socket
import struct
import threading
import time
import uuid

import pytest
import requests

from tests.conftest import own_cluster
from tests.integration.conftest import API_KEY, Users
from tests.waiting import wait_for

pytestmark = pytest.mark.local_cluster

CONNECT_TIMEOUT_S = 2
SEND_BUFFER_BYTES = 131072
WORKER_CONNECTIONS = 30


@pytest.fixture(scope="module")
def frames_cluster():
    with own_cluster("frames-cluster", nodes=1, port=23080, redis_port=23379,
                     node_base_port=23001,
                     env={"CONNECT_TIMEOUT_S": str(CONNECT_TIMEOUT_S),
                          "SEND_BUFFER_BYTES": str(SEND_BUFFER_BYTES),
                          "WORKER_CONNECTIONS": str(WORKER_CONNECTIONS)}) as instance:
        yield instance


def client_frame(opcode: int, payload: bytes, *, fin: bool = True, rsv: int = 0,
                 masked: bool = True, length: bytes | None = None) -> bytes:
    first = (0x80 if fin else 0) | rsv | opcode
    mask_bit = 0x80 if masked else 0
    if length is None:
        if len(payload) < 126:
            length = bytes((mask_bit | len(payload),))
        elif len(payload) < 1 << 16:
            length = bytes((mask_bit | 126,)) + struct.pack("!H", len(payload))
        else:
            length = bytes((mask_bit | 127,)) + struct.pack("!Q", len(payload))
    if not masked:
        return bytes((first,)) + length + payload
    mask = os.urandom(4)
    body = bytes(byte ^ mask[i % 4] for i, byte in enumerate(payload))
    return bytes((first,)) + length + mask + body


class HandshakeRefused(Exception):
    def __init__(self, head: bytes, body: bytes):
        super().__init__(head.decode(errors="replace"))
        self.status = head.split(b"\r\n", 1)[0].decode()
        self.body = body


class RawWebSocket:
    """A WebSocket client that sends whatever bytes it is given, straight to one node."""

    def __init__(self, host: str, port: int, *, token: str | None = None):
        self.sock = socket.create_connection((host, port), timeout=10)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall((f"GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\n"
                           f"Host: {host}:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                           f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n")
                          .encode())
        self.buffer = b""
        while b"\r\n\r\n" not in self.buffer:
            self.buffer += self.recv_some()
        head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
        if not head.startswith(b"HTTP/1.1 101"):
            raise HandshakeRefused(head, self.read_body(head))
        opcode, data = self.next_frame()
        assert opcode == 1 and data.startswith(b"0{"), data  # Engine.IO open
        if token is not None:
            self.send(client_frame(1, b"40" + json.dumps({"token": token}).encode()))
            while True:
                opcode, data = self.next_frame()
                if data.startswith(b"40"):
                    break

    def read_body(self, head: bytes) -> bytes:
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        while len(self.buffer) < length:
            self.buffer += self.recv_some()
        return self.buffer[:length]

    def recv_some(self) -> bytes:
        data = self.sock.recv(65536)
        if not data:
            raise ConnectionError("closed")
        return data

    def next_frame(self) -> tuple[int, bytes]:
        while True:
            if len(self.buffer) >= 2:
                length = self.buffer[1] & 0x7F
                offset = 2
                if length == 126:
                    (length,), offset = struct.unpack("!H", self.buffer[2:4]), 4
                elif length == 127:
                    (length,), offset = struct.unpack("!Q", self.buffer[2:10]), 10
                if len(self.buffer) >= offset + length:
                    opcode = self.buffer[0] & 0x0F
                    data = self.buffer[offset:offset + length]
                    self.buffer = self.buffer[offset + length:]
                    return opcode, data
            self.buffer += self.recv_some()

    def close_code(self) -> int:
        """The code of the node's close frame (skipping anything before it)."""
        while True:
            opcode, data = self.next_frame()
            if opcode == 8:
                return struct.unpack("!H", data[:2])[0]

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)


VIOLATIONS = {
    "reserved bit set": (client_frame(1, b"40", rsv=0x40), 1002),
    "unknown data opcode": (client_frame(3, b"40"), 1002),
    "unknown control opcode": (client_frame(0xB, b""), 1002),
    "unmasked client frame": (client_frame(1, b"40", masked=False), 1002),
    "invalid UTF-8 in a text message": (client_frame(1, b"4\xff\xfe"), 1007),
    "invalid UTF-8 split over fragments": (client_frame(1, b"4\xe2", fin=False)
                                           + client_frame(0, b"\x28\xa1"), 1007),
    "continuation without a start": (client_frame(0, b"40"), 1002),
    "a new message inside a fragmented one": (client_frame(1, b"4", fin=False)
                                              + client_frame(1, b"0"), 1002),
    "control frame over 125 bytes": (client_frame(9, b"x" * 126), 1002),
    "fragmented control frame": (client_frame(9, b"ping", fin=False), 1002),
    "length in a longer form than needed": (client_frame(1, b"40", length=bytes((0x80 | 126,))
                                                         + struct.pack("!H", 2)), 1002),
    "64-bit length with the top bit set": (client_frame(1, b"", length=bytes((0x80 | 127,))
                                                        + struct.pack("!Q", 1 << 63)), 1002),
    "length past the message limit": (client_frame(2, b"", length=bytes((0x80 | 127,))
                                                   + struct.pack("!Q", 1 << 40)), 1009),
    "close with a code never sent on the wire": (client_frame(8, struct.pack("!H", 1005)), 1002),
    "close with an unassigned code": (client_frame(8, struct.pack("!H", 1100)), 1002),
    "close with a one-byte payload": (client_frame(8, b"\x03"), 1002),
    "text that is not an Engine.IO packet": (client_frame(1, b"hello"), 1008),
    "an Engine.IO OPEN from the client": (client_frame(1, b"0"), 1008),
    "an Engine.IO PING from the client": (client_frame(1, b"2"), 1008),
    "an upgrade probe on an open WebSocket": (client_frame(1, b"2probe"), 1008),
}


def node_address(cluster) -> tuple[str, int]:
    url = cluster.node_url(1).removeprefix("http://")
    host, port = url.split(":")
    return host, int(port)


@pytest.fixture(scope="module")
def witness(frames_cluster):
    """A connected user in a room on the same node, who must notice nothing."""
    users = Users(frames_cluster)
    room = "witness-" + uuid.uuid4().hex[:6]
    _, client = users.user_on("node-1")
    client.ok("join", {"room": room})
    yield client, room
    users.close()


def assert_witness_unharmed(cluster, witness) -> None:
    client, room = witness
    sent = client.ok("send", {"room": room, "text": "still here"})
    assert [m["id"] for m in client.take("message", 1)] == [sent["id"]]
    assert requests.get(cluster.node_url(1) + "/healthz", timeout=5).status_code == 200


@pytest.mark.parametrize("violation", list(VIOLATIONS))
def test_a_protocol_violation_ends_that_connection_with_its_close_code(frames_cluster, witness,
                                                                      violation):
    data, code = VIOLATIONS[violation]
    raw = RawWebSocket(*node_address(frames_cluster))
    raw.send(data)
    assert raw.close_code() == code
    raw.sock.close()
    assert_witness_unharmed(frames_cluster, witness)
    log = (frames_cluster.log_dir / "node-1.log").read_text()
    assert "Traceback" not in log, log[-3000:]


def test_pings_are_answered_and_a_clean_close_is_echoed(frames_cluster):
    raw = RawWebSocket(*node_address(frames_cluster))
    raw.send(client_frame(9, b"are you there"))
    assert raw.next_frame() == (0xA, b"are you there")
    raw.send(client_frame(8, struct.pack("!H", 1000) + b"bye"))
    assert raw.close_code() == 1000
    raw.sock.close()


def test_a_session_that_never_joins_socketio_is_cut_off(frames_cluster, witness):
    raw = RawWebSocket(*node_address(frames_cluster))
    started = time.monotonic()
    assert raw.close_code() == 1008
    assert CONNECT_TIMEOUT_S - 0.5 <= time.monotonic() - started <= CONNECT_TIMEOUT_S + 3
    assert_witness_unharmed(frames_cluster, witness)


def transport_gauge(cluster, name: str) -> float:
    text = requests.get(cluster.node_url(1) + "/metrics", timeout=5).text
    [value] = [float(line.split()[-1]) for line in text.splitlines() if line.startswith(name + " ")]
    return value


def test_half_a_frame_then_silence_holds_no_task_and_is_cut_off_on_the_timer(frames_cluster,
                                                                               witness):
    raw = RawWebSocket(*node_address(frames_cluster))
    started = time.monotonic()
    raw.send(client_frame(1, b'40{"token":"' + b"x" * 200 + b'"}')[:60])
    wait_for(lambda: transport_gauge(frames_cluster, "rooms_transport_tasks") == 0,
             what="no task while the connection waits for the rest of its frame")
    assert raw.close_code() == 1008
    assert CONNECT_TIMEOUT_S - 0.5 <= time.monotonic() - started <= CONNECT_TIMEOUT_S + 3
    raw.sock.close()
    assert_witness_unharmed(frames_cluster, witness)


def test_a_flood_of_tiny_frames_does_not_starve_the_others(frames_cluster, witness):
    users = Users(frames_cluster)
    try:
        _, token = users.register("flooder")
        flooder = RawWebSocket(*node_address(frames_cluster), token=token)
        noop = client_frame(1, b"6")
        flood = noop * 100_000 + client_frame(9, b"after the flood")
        sender = threading.Thread(target=flooder.send, args=(flood,), daemon=True)
        sender.start()
        assert_witness_unharmed(frames_cluster, witness)  # answered while the flood is read
        sender.join(timeout=120)
        assert not sender.is_alive()
        while (frame := flooder.next_frame())[0] != 0xA:
            assert frame[0] == 1, frame  # Engine.IO pings may come first
        assert frame == (0xA, b"after the flood")
        log = (frames_cluster.log_dir / "node-1.log").read_text()
        assert "Traceback" not in log, log[-3000:]
    finally:
        users.close()


def test_a_slow_loris_handshake_is_cut_off(frames_cluster):
    sock = socket.create_connection(node_address(frames_cluster), timeout=CONNECT_TIMEOUT_S + 10)
    sock.sendall(b"GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: x\r\n")
    started = time.monotonic()
    assert sock.recv(1024) == b""  # the node hangs up on the unfinished request
    assert time.monotonic() - started <= CONNECT_TIMEOUT_S + 3
    sock.close()


def test_a_client_that_stops_reading_is_disconnected_and_others_carry_on(frames_cluster,
                                                                         witness):
    users = Users(frames_cluster)
    try:
        _, token = users.register("stalled")
        room = "flood-" + uuid.uuid4().hex[:6]
        stalled = RawWebSocket(*node_address(frames_cluster), token=token)
        stalled.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        stalled.send(client_frame(1, b'421["join",{"room":"' + room.encode() + b'"}]'))
        _, listener = users.user_on("node-1")
        listener.ok("join", {"room": room})
        text = "x" * 3900
        published = 0
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            answer = requests.post(f"{frames_cluster.url}/api/rooms/{room}/messages",
                                   json={"text": text}, timeout=10,
                                   headers={"Authorization": f"Bearer {API_KEY}"})
            assert answer.status_code == 202, answer.text
            published += 1
            if published % 50 == 0 and "cut off: it stopped reading" in (
                    frames_cluster.log_dir / "node-1.log").read_text():
                break
        log = (frames_cluster.log_dir / "node-1.log").read_text()
        assert "cut off: it stopped reading" in log, f"{published} messages and still connected"
        assert len(listener.take("message", published, timeout=30)) == published
        assert_witness_unharmed(frames_cluster, witness)
        assert "Traceback" not in log, log[-3000:]
    finally:
        users.close()


def handshake_status(host: str, port: int) -> tuple[str, bytes]:
    """The status line and body of a WebSocket handshake's answer (the socket is then closed)."""
    with socket.create_connection((host, port), timeout=10) as sock:
        key = base64.b64encode(os.urandom(16)).decode()
        sock.sendall((f"GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: x\r\n"
                      f"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}"
                      f"\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
        answer = b""
        while b"\r\n\r\n" not in answer:
            chunk = sock.recv(65536)
            assert chunk, answer
            answer += chunk
        head, body = answer.split(b"\r\n\r\n", 1)
        if head.startswith(b"HTTP/1.1 503"):
            length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                              if line.lower().startswith(b"content-length")))
            while len(body) < length:
                body += sock.recv(65536)
        return head.split(b"\r\n", 1)[0].decode(), body


def test_a_full_node_answers_503_until_a_connection_leaves(frames_cluster, witness):
    users = Users(frames_cluster)
    address = node_address(frames_cluster)
    held: list[RawWebSocket] = []
    try:
        _, token = users.register("crowd")
        status, body = "", b""
        for _ in range(WORKER_CONNECTIONS + 1):
            try:
                held.append(RawWebSocket(*address, token=token))
            except HandshakeRefused as refused:
                status, body = refused.status, refused.body
                break
        assert status.startswith("HTTP/1.1 503"), status
        assert "WORKER_CONNECTIONS" in json.loads(body)["error"]["message"]
        # the witness holds one; connections of earlier tests may not have ended yet
        assert WORKER_CONNECTIONS - 3 <= len(held) + 1 <= WORKER_CONNECTIONS
        held.pop().sock.close()
        wait_for(lambda: not handshake_status(*address)[0].startswith("HTTP/1.1 503"), 10,
                 "the node to take a connection again")
        assert_witness_unharmed(frames_cluster, witness)
    finally:
        for raw in held:
            raw.sock.close()
        users.close()
