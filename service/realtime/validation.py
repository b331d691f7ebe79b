"""Checks for everything a client sends; each failure is a ServiceError with the contract's code."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from ..errors import ServiceError
from ..primitives.names import (
    MESSAGE_ID,
    ROOM,
    ROOM_RULE,
    USER,
    USER_RULE,
    USERNAME,
    USERNAME_RULE,
)

ID_PART_LIMIT = 2**63
MAX_CLIENT_ID = 64
MAX_LIMIT = 500
DEFAULT_LIMIT = 50
PASSWORD_MIN, PASSWORD_MAX = 8, 128


def bad(message: str) -> ServiceError:
    return ServiceError("bad_request", message)


def payload_object(payload: Any) -> dict[str, Any]:
    if not isinstance(payload, dict):
        raise bad("payload must be a JSON object")
    return payload


def optional_object(payload: Any) -> dict[str, Any]:
    """For events whose fields are all optional: no payload is an empty one."""
    return {} if payload is None else payload_object(payload)


def room_name(value: Any, field: str = "room") -> str:
    if not isinstance(value, str) or not ROOM.fullmatch(value):
        raise bad(f"{field} must be {ROOM_RULE}")
    return value


def username(value: Any, field: str = "username") -> str:
    if not isinstance(value, str) or not USERNAME.fullmatch(value):
        raise bad(f"{field} must be {USERNAME_RULE}")
    return value


@dataclass(frozen=True)
class UserNames:
    """Which user names the events take: accounts' alone (the first two editions), or also
    those an app's JWTs bring (the third, when app JWTs are configured)."""

    pattern: re.Pattern[str]
    rule: str


ACCOUNT_USERS = UserNames(USERNAME, USERNAME_RULE)
APP_USERS = UserNames(USER, USER_RULE)


def user(value: Any, field: str, users: UserNames) -> str:
    if not isinstance(value, str) or not users.pattern.fullmatch(value):
        raise bad(f"{field} must be {users.rule}")
    return value


def password(value: Any) -> str:
    if not isinstance(value, str) or not PASSWORD_MIN <= len(value) <= PASSWORD_MAX:
        raise bad(f"password must be {PASSWORD_MIN}-{PASSWORD_MAX} characters")
    _encodable(value, "password")
    return value


def text(value: Any, max_chars: int) -> str:
    if not isinstance(value, str):
        raise bad("text must be a string")
    if not value:
        raise bad("text must not be empty")
    if len(value) > max_chars:
        raise ServiceError("too_large", f"text is longer than {max_chars} characters")
    _encodable(value, "text")
    return value


def client_id(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > MAX_CLIENT_ID:
        raise bad(f"client_id must be a string of at most {MAX_CLIENT_ID} characters")
    _encodable(value, "client_id")
    return value


def message_id(value: Any, field: str) -> str | None:
    """A stream id `ms-seq`; each part below 2**63, so that `(id` is always a valid bound."""
    if value is None:
        return None
    if (not isinstance(value, str) or not MESSAGE_ID.fullmatch(value)
            or any(int(part) >= ID_PART_LIMIT for part in value.split("-"))):
        raise bad(f"{field} must be a message id as returned by the server")
    return value


def limit(value: Any) -> int:
    """Default 50; above 500 is capped at 500; anything but a positive integer is refused."""
    if value is None:
        return DEFAULT_LIMIT
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise bad("limit must be a positive integer")
    return min(value, MAX_LIMIT)


def _encodable(value: str, field: str) -> None:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise bad(f"{field} must be valid Unicode text") from None


@dataclass(frozen=True)
class Join:
    room: str
    since: str | None


@dataclass(frozen=True)
class Send:
    room: str
    text: str
    client_id: str | None


@dataclass(frozen=True)
class Direct:
    to: str
    text: str
    client_id: str | None


@dataclass(frozen=True)
class History:
    room: str
    before: str | None
    limit: int


@dataclass(frozen=True)
class DirectHistory:
    with_user: str
    before: str | None
    limit: int


@dataclass(frozen=True)
class Read:
    field: str  # "room" or "with"
    target: str  # the room, or the other user of the conversation
    id: str


def join(payload: Any) -> Join:
    data = payload_object(payload)
    return Join(room_name(data.get("room")), message_id(data.get("since"), "since"))


def room_only(payload: Any) -> str:
    return room_name(payload_object(payload).get("room"))


def send(payload: Any, max_chars: int) -> Send:
    data = payload_object(payload)
    return Send(
        room_name(data.get("room")),
        text(data.get("text"), max_chars),
        client_id(data.get("client_id")),
    )


def direct(payload: Any, max_chars: int, users: UserNames = ACCOUNT_USERS) -> Direct:
    data = payload_object(payload)
    return Direct(
        user(data.get("to"), "to", users),
        text(data.get("text"), max_chars),
        client_id(data.get("client_id")),
    )


def history(payload: Any) -> History:
    data = payload_object(payload)
    return History(
        room_name(data.get("room")),
        message_id(data.get("before"), "before"),
        limit(data.get("limit")),
    )


def inbox(payload: Any) -> str | None:
    return message_id(optional_object(payload).get("since"), "since")


def no_fields(payload: Any) -> None:
    optional_object(payload)


def direct_history(payload: Any, users: UserNames = ACCOUNT_USERS) -> DirectHistory:
    data = payload_object(payload)
    return DirectHistory(
        user(data.get("with"), "with", users),
        message_id(data.get("before"), "before"),
        limit(data.get("limit")),
    )


def read(payload: Any, users: UserNames = ACCOUNT_USERS) -> Read:
    data = payload_object(payload)
    if ("room" in data) == ("with" in data):
        raise bad("read needs either room or with")
    read_id = message_id(data.get("id"), "id")
    if read_id is None:
        raise bad("id must be a message id as returned by the server")
    if "room" in data:
        return Read("room", room_name(data["room"]), read_id)
    return Read("with", user(data["with"], "with", users), read_id)


def refresh(payload: Any) -> str:
    token = payload_object(payload).get("token")
    if not isinstance(token, str) or not token:
        raise bad("token must be a non-empty string")
    return token
