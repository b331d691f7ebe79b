"""The project's RFC 6455 frame reader (service/transport/frames.py): every rule it enforces,
against frames made by hand and by an independent client implementation (wsproto)."""

from __future__ import annotations

import os
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st
from wsproto.frame_protocol import FrameProtocol, Opcode

from service.transport import frames
from service.transport.frames import Control, FrameReader, Message, ProtocolError

MAX = 64 * 1024


def client_frame(opcode: int, payload: bytes, *, fin: bool = True, rsv: int = 0,
                 masked: bool = True, length_form: str = "shortest") -> bytes:
    """A frame as a client sends it, with every field under the test's control."""
    first = (0x80 if fin else 0) | rsv | opcode
    length = len(payload)
    if length_form == "shortest":
        length_form = "7" if length < 126 else "16" if length < 1 << 16 else "64"
    head = bytes([first])
    mask_bit = 0x80 if masked else 0
    if length_form == "7":
        head += bytes([mask_bit | length])
    elif length_form == "16":
        head += bytes([mask_bit | 126]) + struct.pack("!H", length)
    else:
        head += bytes([mask_bit | 127]) + struct.pack("!Q", length)
    if not masked:
        return head + payload
    key = os.urandom(4)
    return head + key + frames.unmask(payload, key)


def wsproto_client() -> FrameProtocol:
    return FrameProtocol(client=True, extensions=[])


def read(data: bytes, max_message: int = MAX) -> list:
    return FrameReader(max_message).feed(data)


def refused(data: bytes, code: int, max_message: int = MAX) -> str:
    with pytest.raises(ProtocolError) as error:
        read(data, max_message)
    assert error.value.code == code
    return error.value.reason


# ---- what a compliant client sends ----------------------------------------------------------


def test_messages_from_an_independent_client_are_read_whole():
    client = wsproto_client()
    data = client.send_data("héllo ✓") + client.send_data(b"\x00\xff" * 40_000)
    data += client.ping(b"are you there") + client.close(1000, "bye")
    events = read(data, max_message=100_000)
    assert events[0] == Message(True, "héllo ✓".encode())
    assert events[1] == Message(False, b"\x00\xff" * 40_000)
    assert events[2] == Control(frames.PING, b"are you there")
    assert (events[3].opcode, events[3].code, events[3].reason) == (frames.CLOSE, 1000, "bye")


def test_fragments_with_control_frames_between_them_make_one_message():
    client = wsproto_client()
    data = client.send_data("first ", fin=False)
    data += client.ping(b"x") + client.send_data("second ", fin=False)
    data += client.pong(b"y") + client.send_data("third", fin=True)
    events = read(data)
    assert events == [Control(frames.PING, b"x"), Control(frames.PONG, b"y"),
                      Message(True, b"first second third")]


@given(st.binary(max_size=3000), st.integers(min_value=1, max_value=64))
def test_any_payload_read_in_any_chunks_comes_out_the_same(payload, chunk):
    data = wsproto_client().send_data(payload) + wsproto_client().send_data(payload[::-1])
    reader = FrameReader(MAX)
    events = []
    for start in range(0, len(data), chunk):
        events += reader.feed(data[start : start + chunk])
    assert events == [Message(False, payload), Message(False, payload[::-1])]
    assert reader.buffered == 0


def read_limited(reader: FrameReader, data: bytes, chunk: int, limit: int) -> list:
    """What a connection's read callback gets: `chunk` bytes a read, at most `limit` events a
    call, calls without data while `has_more`."""
    events: list = []
    for start in range(0, len(data), chunk):
        events += reader.feed(data[start : start + chunk], limit)
        while reader.has_more:
            batch = reader.feed(b"", limit)
            assert len(batch) <= limit
            events += batch
    return events


@given(st.lists(st.binary(max_size=300), min_size=1, max_size=40),
       st.integers(min_value=1, max_value=700), st.sampled_from([1, 2, 3, 64]))
def test_a_limit_on_events_per_call_changes_nothing_but_how_many_come_at_once(payloads, chunk,
                                                                              limit):
    client = wsproto_client()
    data = b"".join(client.send_data(payload) + client.ping(b"p") for payload in payloads)
    reader = FrameReader(MAX)
    events = read_limited(reader, data, chunk, limit)
    expected = [event for payload in payloads
                for event in (Message(False, payload), Control(frames.PING, b"p"))]
    assert events == expected
    assert reader.buffered == 0 and not reader.has_more


def test_a_flood_of_tiny_frames_is_parsed_in_bounded_steps():
    data = b"".join(client_frame(frames.TEXT, b"3") for _ in range(9000))
    reader = FrameReader(MAX)
    first = reader.feed(data, 64)
    assert len(first) == 64 and reader.has_more
    assert reader.buffered == len(data) - 64 * 7
    assert len(read_limited(reader, b"", 1, 64)) == 0  # no data: the caller drains has_more
    rest = []
    while reader.has_more:
        rest += reader.feed(b"", 64)
    assert len(first) + len(rest) == 9000 and reader.buffered == 0


def test_a_violation_after_the_limit_is_raised_when_its_frame_is_reached():
    data = client_frame(frames.TEXT, b"3") * 3 + client_frame(frames.TEXT, b"x", rsv=0x40)
    reader = FrameReader(MAX)
    assert len(reader.feed(data, 2)) == 2 and reader.has_more
    with pytest.raises(ProtocolError) as error:
        reader.feed(b"", 2)
    assert error.value.code == frames.PROTOCOL_ERROR


def test_lengths_of_every_form_are_read():
    for size in (0, 125, 126, 65535, 65536, 70_000):
        assert read(client_frame(frames.BINARY, b"a" * size), 100_000) == [
            Message(False, b"a" * size)]


def test_a_close_without_a_code_is_reported_as_no_status():
    [close] = read(client_frame(frames.CLOSE, b""))
    assert (close.code, close.reason) == (frames.NO_STATUS, "")


# ---- what a hostile or broken client sends --------------------------------------------------


@pytest.mark.parametrize("rsv", [0x40, 0x20, 0x10])
def test_reserved_bits_are_a_protocol_error(rsv):
    refused(client_frame(frames.TEXT, b"x", rsv=rsv), frames.PROTOCOL_ERROR)


@pytest.mark.parametrize("opcode", [0x3, 0x4, 0x5, 0x6, 0x7, 0xB, 0xC, 0xD, 0xE, 0xF])
def test_reserved_opcodes_are_a_protocol_error(opcode):
    refused(client_frame(opcode, b"x"), frames.PROTOCOL_ERROR)


def test_unmasked_client_frames_are_a_protocol_error():
    assert "masked" in refused(client_frame(frames.TEXT, b"hi", masked=False),
                               frames.PROTOCOL_ERROR)


def test_control_frames_over_125_bytes_or_fragmented_are_protocol_errors():
    refused(client_frame(frames.PING, b"x" * 126), frames.PROTOCOL_ERROR)
    refused(client_frame(frames.PING, b"x", fin=False), frames.PROTOCOL_ERROR)
    refused(client_frame(frames.CLOSE, struct.pack("!H", 1000), fin=False), frames.PROTOCOL_ERROR)


def test_a_continuation_without_a_start_or_a_start_inside_a_message_is_a_protocol_error():
    refused(client_frame(frames.CONTINUATION, b"x"), frames.PROTOCOL_ERROR)
    started = client_frame(frames.TEXT, b"a", fin=False)
    refused(started + client_frame(frames.TEXT, b"b"), frames.PROTOCOL_ERROR)
    refused(started + client_frame(frames.BINARY, b"b"), frames.PROTOCOL_ERROR)


def test_lengths_that_are_not_in_their_shortest_form_or_overflow_are_protocol_errors():
    refused(client_frame(frames.TEXT, b"x" * 10, length_form="16"), frames.PROTOCOL_ERROR)
    refused(client_frame(frames.TEXT, b"x" * 200, length_form="64"), frames.PROTOCOL_ERROR)
    overflowing = bytes([0x81, 0x80 | 127]) + struct.pack("!Q", 1 << 63) + bytes(4)
    refused(overflowing, frames.PROTOCOL_ERROR)


def test_a_message_announced_as_too_big_is_refused_before_its_payload_arrives():
    header = bytes([0x81, 0x80 | 127]) + struct.pack("!Q", 100 << 20)  # 100 MB, no payload yet
    reader = FrameReader(MAX)
    with pytest.raises(ProtocolError) as error:
        reader.feed(header)
    assert error.value.code == frames.TOO_BIG
    fragments = client_frame(frames.TEXT, b"x" * 40_000, fin=False)
    reader = FrameReader(MAX)
    reader.feed(fragments)
    with pytest.raises(ProtocolError) as error:  # the total, not each fragment, counts
        reader.feed(bytes([0x80, 0x80 | 126]) + struct.pack("!H", 40_000))
    assert error.value.code == frames.TOO_BIG


def test_invalid_utf8_text_is_invalid_data_even_across_fragments():
    refused(client_frame(frames.TEXT, b"\xff\xfe"), frames.INVALID_DATA)
    reader = FrameReader(MAX)
    with pytest.raises(ProtocolError) as error:  # found in the first fragment already
        reader.feed(client_frame(frames.TEXT, b"ok \xc0\x80", fin=False))
    assert error.value.code == frames.INVALID_DATA
    euro = "€".encode()  # split inside a character across fragments: still valid
    data = client_frame(frames.TEXT, euro[:1], fin=False)
    data += client_frame(frames.CONTINUATION, euro[1:])
    assert read(data) == [Message(True, euro)]
    truncated = client_frame(frames.TEXT, euro[:2], fin=False)
    refused(truncated + client_frame(frames.CONTINUATION, b""), frames.INVALID_DATA)


@pytest.mark.parametrize("payload", [
    b"\x03",  # one byte
    struct.pack("!H", 999), struct.pack("!H", 1004), struct.pack("!H", 1005),
    struct.pack("!H", 1006), struct.pack("!H", 1015), struct.pack("!H", 2000),
    struct.pack("!H", 5000),
])
def test_close_frames_with_a_bad_code_are_protocol_errors(payload):
    refused(client_frame(frames.CLOSE, payload), frames.PROTOCOL_ERROR)


def test_a_close_reason_that_is_not_utf8_is_invalid_data():
    refused(client_frame(frames.CLOSE, struct.pack("!H", 1000) + b"\xff"), frames.INVALID_DATA)


@given(st.binary(min_size=1, max_size=300))
def test_any_bytes_are_read_or_refused_with_a_close_code_never_anything_else(data):
    try:
        read(data)
    except ProtocolError as error:
        assert error.code in (frames.PROTOCOL_ERROR, frames.INVALID_DATA, frames.TOO_BIG)


def test_server_frames_are_read_by_an_independent_client():
    data = frames.server_frame(frames.TEXT, b"hi") + frames.server_frame(frames.BINARY,
                                                                           b"b" * 70_000)
    data += frames.close_frame(1009, "too big")
    reader = FrameProtocol(client=True, extensions=[])  # a client reads unmasked server frames
    reader.receive_bytes(data)
    got = [(frame.opcode, frame.payload) for frame in reader.received_frames()]
    assert got[0] == (Opcode.TEXT, "hi")
    assert got[1] == (Opcode.BINARY, bytearray(b"b" * 70_000))
    assert got[2][0] == Opcode.CLOSE and got[2][1][0] == 1009
