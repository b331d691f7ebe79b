"""Packets written by the emitting task, over a real socket pair, with python-engineio's Socket."""

import socket
from types import SimpleNamespace

import engineio
import gevent
import pytest
from engineio import packet as eio_packet
from gevent import socket as gsocket

from service.transport.websocket import DirectFrameWebSocket


def read_frames(sock: socket.socket, count: int) -> list[bytes]:
    """Unmasked server frames from the peer's end, payloads only."""
    data, frames = b"", []
    while len(frames) < count:
        while True:
            if len(data) >= 2:
                length, offset = data[1] & 0x7F, 2
                if length == 126:
                    length, offset = int.from_bytes(data[2:4], "big"), 4
                elif length == 127:
                    length, offset = int.from_bytes(data[2:10], "big"), 10
                if len(data) >= offset + length:
                    frames.append(data[offset:offset + length])
                    data = data[offset + length:]
                    break
            data += sock.recv(1 << 20)
    return frames


@pytest.fixture
def connection():
    server = engineio.Server(async_mode="gevent")
    eio_socket = engineio.socket.Socket(server, "sid-1")
    eio_socket.connected = eio_socket.upgraded = True
    ours, peer = gsocket.socketpair()
    ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    ws = DirectFrameWebSocket(eio_socket._websocket_handler, server)
    ws.ws = SimpleNamespace(sock=ours, connected=True)
    yield eio_socket, ws, peer
    ours.close()
    peer.close()


def message(text: str) -> eio_packet.Packet:
    return eio_packet.Packet(eio_packet.MESSAGE, text)


def test_packets_are_written_at_once_in_order_without_the_queue(connection):
    eio_socket, _, peer = connection
    for index in range(5):
        eio_socket.send(message(f'2["message",{index}]'))
    assert eio_socket.queue.empty()
    assert read_frames(peer, 5) == [f'42["message",{index}]'.encode() for index in range(5)]


def test_a_broadcast_packet_is_framed_once_for_all_its_recipients(connection):
    eio_socket, _, peer = connection
    shared = message('2["message","hi"]')
    encodings = []
    encode = shared.encode
    shared.encode = lambda *args: encodings.append(1) or encode(*args)
    for _ in range(3):
        eio_socket.send(shared)
    assert read_frames(peer, 3) == [b'42["message","hi"]'] * 3
    assert len(encodings) == 1


def test_a_slow_reader_sends_the_rest_through_the_writer_in_order(connection):
    eio_socket, ws, peer = connection
    big = "x" * 200_000
    texts = [f"{index}{big}" for index in range(6)]
    for text in texts:
        eio_socket.send(message(text))
    assert not eio_socket.queue.empty()  # the kernel took part; the rest waits for the writer

    def writer() -> None:  # what python-engineio's writer task does
        while packets := eio_socket.poll():
            for pkt in packets:
                ws.send(pkt.encode())

    eio_socket.queue.put(None)
    task = gevent.spawn(writer)
    frames = read_frames(peer, len(texts))
    task.join(timeout=5)
    assert frames == [f"4{text}".encode() for text in texts]


def test_before_the_upgrade_packets_wait_in_the_queue(connection):
    eio_socket, _, peer = connection
    eio_socket.upgraded = False
    eio_socket.send(message("polling"))
    assert eio_socket.queue.qsize() == 1
    peer.setblocking(False)
    with pytest.raises(BlockingIOError):
        peer.recv(10)
