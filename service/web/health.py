"""Liveness and readiness for load balancers and orchestrators."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Flask

from .context import current

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz() -> dict[str, Any]:
    return {"status": "ok", "node": current().name}


@bp.get("/readyz")
def readyz() -> tuple[dict[str, Any], int]:
    """Answered from what the node already knows (nothing here waits on Redis): whether it
    serves, why not, whether it takes new sessions, and Redis as it sees it: `up` (every master
    answers), `unreachable`, `degraded` (masters whose writes are acknowledged after fewer
    replicas than ACK_REPLICAS, because fewer are in sync: the node stays ready) and `full`
    (masters refusing writes for want of memory)."""
    here = current()
    ready, reason = here.ready()
    return {"ready": ready, "node": here.name, "reason": reason,
            "accepting": here.refusal() is None, "redis": here.health.summary()}, (
        200 if ready else 503)


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
