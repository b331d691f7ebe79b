"""HTTP API for programs: publish to a room, read a room, see the cluster. The app's own calls
(rooms' rules and members, users) are app_api.py's."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Flask, request

from ..errors import ServiceError
from ..realtime import admission, validation
from .auth import bearer_identity
from .context import current
from .http_errors import json_body

bp = Blueprint("api", __name__, url_prefix="/api")


@bp.post("/rooms/<room>/messages")
def publish(room: str) -> tuple[dict[str, Any], int]:
    if bearer_identity() != "api":
        raise ServiceError("forbidden", "publishing over HTTP needs the API key")
    here = current()
    room = validation.room_name(room)
    body = json_body()
    text = validation.text(body.get("text"), here.settings.max_text_chars)
    with here.metrics.publish_seconds.time():
        stored = here.broker.publish(room, "api", text,
                                             validation.client_id(body.get("client_id")))
    here.metrics.accepted.labels("api").inc()
    return {"id": stored.id, "ts": stored.ts}, 202


@bp.get("/rooms/<room>/messages")
def read(room: str) -> dict[str, Any]:
    identity = bearer_identity()
    room = validation.room_name(room)
    after = validation.message_id(request.args.get("after"), "after")
    limit = validation.limit(request.args.get("limit"))
    broker = current().broker
    if identity != "api":  # a user reads a private room only if it was admitted there
        admission.check_read(broker.access(room, identity), (), room)
    return {"room": room, "messages": broker.after(room, after, limit)}


@bp.get("/cluster")
def cluster() -> dict[str, Any]:
    bearer_identity()
    here = current()
    return {"nodes": here.store.nodes.live(here.settings.node_ttl_s)}


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
