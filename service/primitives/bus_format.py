"""The bus's message format, version 1: the one definition every publisher and node uses.

A frame is UTF-8 text, a header line and a body:

    1 <kind> <id> <skip>\\n<body>

- `1`: the format version. A node drops (and logs) a frame of a version it does not know, so a
  later format can be rolled out node by node.
- kind: `e`, an event for clients, whose body is the Socket.IO event's arguments as a JSON
  array, `["message", {...}]`, exactly as they go into the EVENT packet (a node delivers it
  without decoding it); or `c`, a control message for the nodes themselves, whose body is a JSON
  object.
- id: for a stored message (a room message, or an entry of a user's inbox), its stream id, which
  is also the `id` inside the body; otherwise `-`. Nodes order, de-duplicate and replay by it.
- skip: `node|sid` of one connection that must not get the event (the sender of a direct message
  already has its answer), or `-`.

The store's scripts add the id and the time that Redis assigns, so for stored messages Python
builds the frame around them (`stored_template`) and the script only joins the pieces; scripts
never compose JSON of their own. Events carry JSON data only (no binary attachments).
"""

from __future__ import annotations

from typing import Any, NamedTuple

from . import codec

VERSION = "1"
EVENT, CONTROL = "e", "c"
NONE = "-"


class UnknownFrame(ValueError):
    """Not a frame of a format version this node knows."""


class Frame(NamedTuple):
    """A decoded frame; `body` stays bytes, as a node hands it on without decoding it."""

    kind: str
    stored_id: str | None
    skip: str | None
    body: bytes

    def control(self) -> dict[str, Any]:
        value = codec.loads(self.body)
        if not isinstance(value, dict):
            raise UnknownFrame("a control frame's body must be a JSON object")
        return value


def _dumps(value: Any) -> str:
    return codec.dumps(value)


def _header(kind: str, stored_id: str | None, skip: str | None) -> str:
    return f"{VERSION} {kind} {stored_id or NONE} {skip or NONE}\n"


def event(name: str, data: Any, *, skip: str | None = None) -> bytes:
    """A frame that delivers Socket.IO event `name` with `data` to the channel's connections."""
    return (_header(EVENT, None, skip) + _dumps([name, data])).encode()


def stored_event(name: str, data: dict[str, Any], *, skip: str | None = None) -> bytes:
    """The frame of a stored message read back from its stream (`data` holds its `id`)."""
    return (_header(EVENT, data["id"], skip) + _dumps([name, data])).encode()


def control(body: dict[str, Any]) -> bytes:
    return (_header(CONTROL, None, None) + _dumps(body)).encode()


def stored_template(name: str, data: dict[str, Any], *,
                    skip: str | None = None) -> tuple[str, str, str, str]:
    """Four pieces a script joins with the id Redis gave the message and its time in ms:

        pieces[0] .. id .. pieces[1] .. id .. pieces[2] .. ts .. pieces[3]

    gives the frame of `stored_event(name, {"id": id, "ts": ts, **data})`.
    """
    rest = _dumps(data)
    return (
        f"{VERSION} {EVENT} ",
        f" {skip or NONE}\n[{_dumps(name)},{{\"id\":\"",
        '","ts":',
        ("," + rest[1:] if rest != "{}" else "}") + "]",
    )


def presence_template(room: str, action: str) -> tuple[str, str]:
    """Two pieces a script joins around a user name (names are JSON-safe: A-Za-z0-9_.-)."""
    head = _dumps(["presence", {"room": room, "action": action, "user": ""}])
    cut = head.rindex('""') + 1
    return _header(EVENT, None, None) + head[:cut], head[cut:]


def decode(payload: bytes) -> Frame:
    """Parse a frame; raises UnknownFrame for anything else (another version, a stray message).
    Every node runs this once per frame it receives: it splits the header and keeps the body."""
    header, newline, body = payload.partition(b"\n")
    try:
        version, kind, stored_id, skip = header.decode().split(" ")
    except (UnicodeDecodeError, ValueError):
        raise UnknownFrame("not a bus frame") from None
    if version != VERSION or kind not in (EVENT, CONTROL) or not newline:
        raise UnknownFrame(f"frame version {version!r} kind {kind!r} is not known here")
    return Frame(kind, None if stored_id == NONE else stored_id, None if skip == NONE else skip,
                 body)
