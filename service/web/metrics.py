"""`/metrics` in Prometheus's text format (PROTOCOL.md, Operations).

On a node's own address it is open, for Prometheus scraping each node where it runs. Through a
front door (which marks what it forwards with FRONT_DOOR_HEADER and overwrites a client's own
value) it needs the API key; anything else is 401.
"""

from __future__ import annotations

from flask import Blueprint, Flask, Response, request

from ..errors import ServiceError
from ..realtime.metrics import CONTENT_TYPE
from .auth import bearer_identity
from .context import current

bp = Blueprint("metrics", __name__)
FRONT_DOOR_HEADER = "X-Rooms-Front-Door"


@bp.get("/metrics")
def metrics() -> Response:
    if request.headers.get(FRONT_DOOR_HEADER) is not None:
        try:
            identity = bearer_identity()
        except ServiceError:
            identity = None
        if identity != "api":
            raise ServiceError("unauthorized", "metrics through the front door need "
                               "Authorization: Bearer <API key>")
    return Response(current().metrics.render(), content_type=CONTENT_TYPE)


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
