"""The contract's name rules (PROTOCOL.md): rooms, users and message ids.

Room and user names never contain braces, so a name inside a Redis hash tag (`{name}`) is the
whole tag; they are JSON-safe as they are (no escaping).
"""

from __future__ import annotations

import re

ROOM = re.compile(r"[A-Za-z0-9_.-]{1,64}")
USERNAME = re.compile(r"[A-Za-z0-9_.-]{3,32}")  # an account of the service's own
USER = re.compile(r"[A-Za-z0-9_.@:-]{1,64}")  # any user: an account's name or an app JWT's sub
MESSAGE_ID = re.compile(r"[0-9]{1,20}-[0-9]{1,20}")
ROOM_RULE = "1-64 characters of A-Za-z0-9_.-"
USERNAME_RULE = "3-32 characters of A-Za-z0-9_.-"
USER_RULE = "1-64 characters of A-Za-z0-9_.@:-"


def is_room(value: object) -> bool:
    return isinstance(value, str) and ROOM.fullmatch(value) is not None


def is_username(value: object) -> bool:
    return isinstance(value, str) and USERNAME.fullmatch(value) is not None


def is_user(value: object) -> bool:
    return isinstance(value, str) and USER.fullmatch(value) is not None


def grants(patterns: tuple[str, ...], room: str) -> bool:
    """Whether a token's `rooms` claim admits `room`: a name, or a prefix ending in `*`."""
    return any(room.startswith(pattern[:-1]) if pattern.endswith("*") else room == pattern
               for pattern in patterns)
