"""WebSocket frames written directly, and the shape check of incoming Engine.IO packets."""

import struct

import pytest

from service.transport.frames import BINARY, TEXT, server_frame
from service.transport.packet_guard import acceptable


@pytest.mark.parametrize(("length", "header"), [
    (0, bytes((0x81, 0))), (125, bytes((0x81, 125))),
    (126, struct.pack("!BBH", 0x81, 126, 126)), (65535, struct.pack("!BBH", 0x81, 126, 65535)),
    (65536, struct.pack("!BBQ", 0x81, 127, 65536)),
])
def test_text_frames_carry_the_rfc_6455_length_forms(length, header):
    payload = b"x" * length
    assert server_frame(TEXT, payload) == header + payload


def test_binary_frames_use_their_opcode_and_no_mask():
    assert server_frame(BINARY, b"\x00\x01") == bytes((0x82, 2)) + b"\x00\x01"


@pytest.mark.parametrize("packet", ["2", "3", "3probe", "5", "6", "40", '40{"token":"t"}',
                                    '42["send",{"room":"r"}]', '430[{"ok":true}]', "4bAAEC"])
def test_engineio_packets_are_accepted(packet):
    assert acceptable(packet)


@pytest.mark.parametrize("packet", ["", "x", "9", "\x00", "4", "4[", "4" + "[" * 50, "4{}",
                                    " 40", "💥"])
def test_anything_else_is_refused(packet):
    assert not acceptable(packet)
