"""Stream entries as the contract's payloads: a room's `message`, an inbox's `direct`."""

from __future__ import annotations

from typing import Any

from ..primitives.ids import parse_id


def entry_fields(entry: Any) -> tuple[str, dict[str, str]]:
    message_id, fields = entry
    if isinstance(fields, list):  # from Lua: a flat list of field, value
        fields = dict(zip(fields[::2], fields[1::2], strict=True))
    return message_id, fields


def room_message(room: str, entry: Any) -> dict[str, Any]:
    """A room's stream entry as the contract's `message` payload."""
    message_id, fields = entry_fields(entry)
    data = {"id": message_id, "room": room, "user": fields.get("u", ""),
            "text": fields.get("t", ""), "ts": parse_id(message_id)[0],
            "node": fields.get("n", "")}
    if "c" in fields:
        data["client_id"] = fields["c"]
    return data


def direct_message(entry: Any) -> dict[str, Any]:
    """An inbox entry as the contract's `direct` payload."""
    message_id, fields = entry_fields(entry)
    data = {"id": message_id, "from": fields.get("f", ""), "to": fields.get("to", ""),
            "text": fields.get("t", ""), "ts": parse_id(message_id)[0],
            "node": fields.get("n", "")}
    if "c" in fields:
        data["client_id"] = fields["c"]
    return data
