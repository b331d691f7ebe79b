"""JSON for Socket.IO packets and the message queue: orjson, several times faster than the
standard library on every packet a node encodes or decodes.

Where orjson refuses what the standard library accepts (integers beyond 64 bits, keys that are not
strings, lone surrogates such as "\\ud800") both directions fall back to the standard library, so
such input decodes as before and gets the contract's error from validation, not silence.
"""

from __future__ import annotations

import json
from typing import Any

import orjson


def dumps(obj: Any, **_options: Any) -> str:
    """Compact JSON text (python-socketio passes `separators`; orjson is always compact)."""
    try:
        return orjson.dumps(obj).decode()
    except TypeError:
        return json.dumps(obj, separators=(",", ":"))


def loads(text: str | bytes) -> Any:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)
