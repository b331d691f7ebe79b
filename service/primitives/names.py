"""The contract's name rules (PROTOCOL.md): rooms, users and message ids.

Room and user names never contain braces, so a name inside a Redis hash tag (`{name}`) is the
whole tag; they are JSON-safe as they are (no escaping).
"""

from __future__ import annotations

import re

ROOM = re.compile(r"[A-Za-z0-9_.-]{1,64}")
USERNAME = re.compile(r"[A-Za-z0-9_.-]{3,32}")
MESSAGE_ID = re.compile(r"[0-9]{1,20}-[0-9]{1,20}")
ROOM_RULE = "1-64 characters of A-Za-z0-9_.-"
USERNAME_RULE = "3-32 characters of A-Za-z0-9_.-"


def is_room(value: object) -> bool:
    return isinstance(value, str) and ROOM.fullmatch(value) is not None


def is_username(value: object) -> bool:
    return isinstance(value, str) and USERNAME.fullmatch(value) is not None
