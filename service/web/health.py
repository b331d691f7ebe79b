"""Liveness and readiness for load balancers and orchestrators."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Flask

from ..node.node import current_node

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz() -> dict[str, Any]:
    return {"status": "ok", "node": current_node().name}


@bp.get("/readyz")
def readyz() -> tuple[dict[str, Any], int]:
    node = current_node()
    ready, reason = node.ready()
    return {"ready": ready, "node": node.name, "reason": reason}, 200 if ready else 503


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
