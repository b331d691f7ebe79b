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
ROOM_GRANT = re.compile(r"[A-Za-z0-9_.-]{1,64}|[A-Za-z0-9_.-]{0,63}\*")  # a room, or a prefix*
ROOM_RULE = "1-64 characters of A-Za-z0-9_.-"
USERNAME_RULE = "3-32 characters of A-Za-z0-9_.-"
USER_RULE = "1-64 characters of A-Za-z0-9_.@:-"
ROOM_GRANT_RULE = "a room name, or the start of one followed by *"
# names no user may have: `api` is the sender of what the HTTP API posts
RESERVED_USERS = frozenset({"api", "admin", "system"})


def is_room(value: object) -> bool:
    return isinstance(value, str) and ROOM.fullmatch(value) is not None


def is_username(value: object) -> bool:
    return isinstance(value, str) and USERNAME.fullmatch(value) is not None


def is_user(value: object) -> bool:
    return isinstance(value, str) and USER.fullmatch(value) is not None


def is_room_grant(value: object) -> bool:
    """Whether `value` may stand in a token's `rooms` claim (`grants` reads it)."""
    return isinstance(value, str) and ROOM_GRANT.fullmatch(value) is not None


def is_reserved(user: str) -> bool:
    """Whether `user` is a name kept from every user (in any case)."""
    return user.lower() in RESERVED_USERS


def grants(patterns: tuple[str, ...], room: str) -> bool:
    """Whether a token's `rooms` claim admits `room`: a name, or a prefix ending in `*`."""
    return any(room.startswith(pattern[:-1]) if pattern.endswith("*") else room == pattern
               for pattern in patterns)
