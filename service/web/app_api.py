"""HTTP calls of the app's backend (PROTOCOL.md, "Rooms your app controls"): a room's rules and
members, direct messages from the app, disconnecting a user. Each needs the API key
(`Authorization: Bearer API_KEY`); a user's token is `forbidden`. Errors are the JSON of every
other /api call; a body that is not what the call takes is `bad_request` (400)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Flask, request

from ..errors import ServiceError
from ..realtime import app_control, validation
from .auth import bearer_identity
from .context import current
from .http_errors import json_body

bp = Blueprint("app_api", __name__, url_prefix="/api")
MAX_REASON_CHARS = 500
RULES = ("private", "read_only")


def the_app() -> None:
    if bearer_identity() != "api":
        raise ServiceError("forbidden", "this call is for the app's backend: it needs the API "
                           "key")


def optional_body() -> dict[str, Any]:
    """The request's JSON object, or {} when it has no body."""
    if not request.get_data(cache=True):
        return {}
    return json_body()


def reason_of(body: dict[str, Any], default: str) -> str:
    reason = body.get("reason")
    if reason is None:
        return default
    if not isinstance(reason, str) or not 1 <= len(reason) <= MAX_REASON_CHARS:
        raise ServiceError("bad_request", f"reason must be a string of 1-{MAX_REASON_CHARS} "
                           f"characters")
    return reason


def only_fields(body: dict[str, Any], allowed: tuple[str, ...]) -> None:
    unknown = sorted(set(body) - set(allowed))
    if unknown:
        raise ServiceError("bad_request", f"unknown fields {', '.join(unknown)}; this call "
                           f"takes {', '.join(allowed)}")


@bp.put("/rooms/<room>")
def set_rules(room: str) -> dict[str, Any]:
    the_app()
    room = validation.room_name(room)
    body = json_body()
    only_fields(body, RULES)
    given: dict[str, bool | None] = {}
    for name in RULES:
        value = body.get(name)
        if value is not None and not isinstance(value, bool):
            raise ServiceError("bad_request", f"{name} must be true or false")
        given[name] = value
    rules = current().broker.set_rules(room, given["private"], given["read_only"])
    return {"room": room, "private": rules.private, "read_only": rules.read_only}


@bp.get("/rooms/<room>")
def room_state(room: str) -> dict[str, Any]:
    the_app()
    room = validation.room_name(room)
    broker = current().broker
    rules = broker.rules(room)
    return {"room": room, "private": rules.private, "read_only": rules.read_only,
            "members": broker.present(room)}


@bp.put("/rooms/<room>/members/<user>")
def add_member(room: str, user: str) -> tuple[str, int]:
    the_app()
    room, user = validation.room_name(room), validation.user(user, "user", validation.APP_USERS)
    app_control.add_member(current().broker, room, user)
    return "", 204


@bp.delete("/rooms/<room>/members/<user>")
def remove_member(room: str, user: str) -> tuple[str, int]:
    the_app()
    room, user = validation.room_name(room), validation.user(user, "user", validation.APP_USERS)
    body = optional_body()
    only_fields(body, ("reason",))
    app_control.remove_member(current().broker, room, user,
                              reason_of(body, app_control.REMOVED_REASON))
    return "", 204


@bp.post("/users/<user>/messages")
def direct(user: str) -> tuple[dict[str, Any], int]:
    the_app()
    user = validation.user(user, "user", validation.APP_USERS)
    here = current()
    body = json_body()
    only_fields(body, ("text", "client_id"))
    text = validation.text(body.get("text"), here.settings.max_text_chars)
    with here.metrics.publish_seconds.time():
        stored = here.broker.direct_from_app(user, text,
                                             validation.client_id(body.get("client_id")))
    here.metrics.accepted.labels("api").inc()
    return {"id": stored.id, "ts": stored.ts}, 202


@bp.post("/users/<user>/disconnect")
def disconnect(user: str) -> tuple[str, int]:
    the_app()
    user = validation.user(user, "user", validation.APP_USERS)
    body = optional_body()
    only_fields(body, ("reason",))
    app_control.disconnect_user(current().broker, user,
                                reason_of(body, app_control.DISCONNECTED_REASON))
    return "", 204


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
