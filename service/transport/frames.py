"""WebSocket frames (RFC 6455): what a client sends, read incrementally, and what a server sends.

`FrameReader` takes the bytes of a connection as they arrive and gives back complete messages and
control frames, holding nothing but the message being assembled. It enforces, for the server side
of a connection that negotiated no extension:

- client frames are masked (5.1); the reserved bits are 0 and the opcode is known (5.2);
- control frames are final and carry at most 125 bytes (5.5), and may come between the
  fragments of a message (5.4); a continuation needs a message in progress, and a new message
  may not start inside one (5.4);
- lengths use the fewest bytes and the 64-bit form has its top bit clear (5.2);
- a message larger than `max_message` is refused as its header arrives, before its payload is
  buffered (close code 1009);
- a text message is valid UTF-8, checked fragment by fragment (8.1; 1007);
- a close frame has no payload or a 2-byte code from the ranges RFC 6455 allows on the wire and a
  UTF-8 reason (5.5.1, 7.4).

A violation raises `ProtocolError` with the close code to answer with (1002 protocol error, 1007
invalid data, 1009 too big); the connection then ends. Nothing here reads a socket.
"""

from __future__ import annotations

import codecs
import struct
from dataclasses import dataclass

CONTINUATION, TEXT, BINARY = 0x0, 0x1, 0x2
CLOSE, PING, PONG = 0x8, 0x9, 0xA
DATA_OPCODES = frozenset({CONTINUATION, TEXT, BINARY})
CONTROL_OPCODES = frozenset({CLOSE, PING, PONG})
FIN, RSV = 0x80, 0x70
MASKED = 0x80

NORMAL, GOING_AWAY, PROTOCOL_ERROR = 1000, 1001, 1002
INVALID_DATA, POLICY_VIOLATION, TOO_BIG, INTERNAL_ERROR = 1007, 1008, 1009, 1011
NO_STATUS = 1005  # reported, never sent: the peer's close frame had no code


def valid_close_code(code: int) -> bool:
    """Codes a peer may send in a close frame (RFC 6455 7.4.1, 7.4.2, IANA registry)."""
    return code in (1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014) or (
        3000 <= code <= 4999)


class ProtocolError(Exception):
    def __init__(self, code: int, reason: str):
        super().__init__(reason)
        self.code = code
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Message:
    text: bool
    data: bytes  # the payload; for text, UTF-8 (already checked)


@dataclass(frozen=True, slots=True)
class Control:
    opcode: int  # CLOSE, PING or PONG
    data: bytes
    code: int | None = None  # for CLOSE: the peer's code (NO_STATUS when it sent none)
    reason: str = ""


def unmask(data: bytes, mask: bytes) -> bytes:
    """XOR the payload with the 4-byte key, in C: one big-integer operation."""
    if not data:
        return data
    length = len(data)
    key = int.from_bytes((mask * (length // 4 + 1))[:length], "big")
    return (int.from_bytes(data, "big") ^ key).to_bytes(length, "big")


class FrameReader:
    """The server's reader of one client's frames."""

    __slots__ = ("_buffer", "_fragmented_text", "_fragments", "_offset", "_size", "_utf8",
                 "has_more", "max_message")

    def __init__(self, max_message: int):
        self.max_message = max_message
        self._buffer = b""
        self._offset = 0  # where the unparsed part of _buffer starts
        self.has_more = False  # the last feed stopped at its limit: complete frames may wait
        self._fragments: list[bytes] | None = None  # a fragmented message in progress
        self._fragmented_text = False
        self._size = 0
        self._utf8: codecs.IncrementalDecoder | None = None

    def feed(self, data: bytes, limit: int = 0) -> list[Message | Control]:
        """Everything `data` completes, in order; raises ProtocolError on a violation. With a
        `limit`, at most that many events: the rest stays buffered (`has_more` says so) for the
        next call, which may pass no data."""
        if self._buffer:
            buffer = (self._buffer[self._offset:] + data if data or self._offset
                      else self._buffer)
        else:
            buffer = data
        self._offset = 0
        events: list[Message | Control] = []
        offset = 0
        end = len(buffer)
        self.has_more = False
        while end - offset >= 2:
            if limit and len(events) >= limit:
                self.has_more = True
                self._buffer, self._offset = buffer, offset
                return events
            first, second = buffer[offset], buffer[offset + 1]
            opcode = first & 0x0F
            final = bool(first & FIN)
            if first & RSV:
                raise ProtocolError(PROTOCOL_ERROR, "reserved bits set without an extension")
            if opcode not in DATA_OPCODES and opcode not in CONTROL_OPCODES:
                raise ProtocolError(PROTOCOL_ERROR, f"reserved opcode {opcode:#x}")
            if not second & MASKED:
                raise ProtocolError(PROTOCOL_ERROR, "client frames must be masked")
            length = second & 0x7F
            header = 2
            if opcode in CONTROL_OPCODES:
                if not final:
                    raise ProtocolError(PROTOCOL_ERROR, "control frames must not be fragmented")
                if length > 125:
                    raise ProtocolError(PROTOCOL_ERROR, "control frame over 125 bytes")
            elif length == 126:
                if end - offset < 4:
                    break
                (length,) = struct.unpack_from("!H", buffer, offset + 2)
                header = 4
                if length < 126:
                    raise ProtocolError(PROTOCOL_ERROR, "length not in its shortest form")
            elif length == 127:
                if end - offset < 10:
                    break
                (length,) = struct.unpack_from("!Q", buffer, offset + 2)
                header = 10
                if length >> 63:
                    raise ProtocolError(PROTOCOL_ERROR, "64-bit length with its top bit set")
                if length < 1 << 16:
                    raise ProtocolError(PROTOCOL_ERROR, "length not in its shortest form")
            if opcode in DATA_OPCODES:
                self._check_sequence(opcode)
                if self._size + length > self.max_message:
                    raise ProtocolError(TOO_BIG, f"message over {self.max_message} bytes")
            frame_end = offset + header + 4 + length
            if end < frame_end:
                break
            mask = buffer[offset + header : offset + header + 4]
            payload = unmask(buffer[offset + header + 4 : frame_end], mask)
            offset = frame_end
            if opcode in CONTROL_OPCODES:
                events.append(self._control(opcode, payload))
            else:
                message = self._data(opcode, final, payload)
                if message is not None:
                    events.append(message)
        self._buffer = buffer[offset:] if offset < end else b""
        return events

    @property
    def buffered(self) -> int:
        """Bytes held: the unparsed frames and the message being assembled."""
        return len(self._buffer) - self._offset + self._size

    def _check_sequence(self, opcode: int) -> None:
        if opcode == CONTINUATION and self._fragments is None:
            raise ProtocolError(PROTOCOL_ERROR, "continuation frame without a message")
        if opcode != CONTINUATION and self._fragments is not None:
            raise ProtocolError(PROTOCOL_ERROR, "a new message inside a fragmented one")

    def _data(self, opcode: int, final: bool, payload: bytes) -> Message | None:
        if opcode != CONTINUATION:
            text = opcode == TEXT
            if final:  # the common case: a whole message in one frame
                if text:
                    _check_utf8(payload)
                return Message(text, payload)
            self._fragments, self._fragmented_text = [payload], text
            self._size = len(payload)
            if text:
                self._utf8 = codecs.getincrementaldecoder("utf-8")()
                self._decode(payload, False)
            return None
        assert self._fragments is not None
        self._fragments.append(payload)
        self._size += len(payload)
        if self._fragmented_text:
            self._decode(payload, final)
        if not final:
            return None
        message = Message(self._fragmented_text, b"".join(self._fragments))
        self._fragments, self._utf8, self._size = None, None, 0
        return message

    def _decode(self, payload: bytes, final: bool) -> None:
        assert self._utf8 is not None
        try:
            self._utf8.decode(payload, final)
        except UnicodeDecodeError:
            raise ProtocolError(INVALID_DATA, "text message is not valid UTF-8") from None

    @staticmethod
    def _control(opcode: int, payload: bytes) -> Control:
        if opcode != CLOSE:
            return Control(opcode, payload)
        if not payload:
            return Control(CLOSE, payload, NO_STATUS)
        if len(payload) == 1:
            raise ProtocolError(PROTOCOL_ERROR, "close frame with a 1-byte payload")
        (code,) = struct.unpack_from("!H", payload)
        if not valid_close_code(code):
            raise ProtocolError(PROTOCOL_ERROR, f"close code {code} may not be sent")
        try:
            reason = payload[2:].decode()
        except UnicodeDecodeError:
            raise ProtocolError(INVALID_DATA, "close reason is not valid UTF-8") from None
        return Control(CLOSE, payload, code, reason)


def _check_utf8(payload: bytes) -> None:
    try:
        payload.decode()
    except UnicodeDecodeError:
        raise ProtocolError(INVALID_DATA, "text message is not valid UTF-8") from None


def server_frame(opcode: int, payload: bytes) -> bytes:
    """A final, unmasked frame, as a server sends them (5.1, 5.2)."""
    length = len(payload)
    if length < 126:
        return bytes((FIN | opcode, length)) + payload
    if length < 1 << 16:
        return struct.pack("!BBH", FIN | opcode, 126, length) + payload
    return struct.pack("!BBQ", FIN | opcode, 127, length) + payload


def close_frame(code: int, reason: str = "") -> bytes:
    return server_frame(CLOSE, struct.pack("!H", code) + reason.encode()[:123])
