"""HTTP API for programs: publish to a room, read a room, see the cluster."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Flask, request

from ..errors import ServiceError
from ..node.node import current_node
from ..realtime import validation
from .auth import bearer_identity
from .http_errors import json_body

bp = Blueprint("api", __name__, url_prefix="/api")


@bp.post("/rooms/<room>/messages")
def publish(room: str) -> tuple[dict[str, Any], int]:
    if bearer_identity() != "api":
        raise ServiceError("forbidden", "publishing over HTTP needs the API key")
    node = current_node()
    room = validation.room_name(room)
    body = json_body()
    text = validation.text(body.get("text"), node.settings.max_text_chars)
    with node.metrics.publish_seconds.time():
        stored = node.store.messages.publish(room, "api", text,
                                             validation.client_id(body.get("client_id")))
    node.metrics.accepted.labels("api").inc()
    return {"id": stored.id, "ts": stored.ts}, 202


@bp.get("/rooms/<room>/messages")
def read(room: str) -> dict[str, Any]:
    bearer_identity()
    room = validation.room_name(room)
    after = validation.message_id(request.args.get("after"), "after")
    limit = validation.limit(request.args.get("limit"))
    return {"room": room, "messages": current_node().store.messages.after(room, after, limit)}


@bp.get("/cluster")
def cluster() -> dict[str, Any]:
    bearer_identity()
    node = current_node()
    return {"nodes": node.store.nodes.live(node.settings.node_ttl_s)}


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
