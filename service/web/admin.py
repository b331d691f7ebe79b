"""The live cluster page for operators (PROTOCOL.md, Operations: `GET /admin`).

Only users logged in with a browser session whose names are in OPERATORS see it; everybody else
gets 403 (the page, or JSON for its data). The data comes from the node registry, where every
node writes its figures at each heartbeat, so any node answers for the whole cluster.
"""

from __future__ import annotations

import time
from typing import Any

from flask import Blueprint, Flask, render_template, request
from flask_login import current_user

from ..errors import ServiceError
from .context import current

bp = Blueprint("admin", __name__, url_prefix="/admin")


def operator() -> str | None:
    """The logged-in operator's name, or None."""
    if not current_user.is_authenticated:
        return None
    name = current_user.get_id()
    return name if name in current().settings.operators else None


@bp.get("")
def page() -> tuple[str, int]:
    name = operator()
    here = current()
    if name is None:
        return render_template("admin_forbidden.html",
                               logged_in=current_user.is_authenticated), 403
    return render_template("admin.html", user=name, node=here.name,
                           interval_ms=int(here.settings.heartbeat_interval_s * 1000)), 200


@bp.get("/cluster.json")
def cluster() -> dict[str, Any]:
    if operator() is None:
        raise ServiceError("forbidden", "the cluster page is for operators (OPERATORS)")
    here = current()
    return {"at": int(time.time() * 1000), "served_by": here.name,
            "nodes": here.store.nodes.live(here.settings.node_ttl_s, stats=True),
            "redis": here.store.servers()}


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)

    @app.after_request
    def private(response: Any) -> Any:
        if request.path.startswith("/admin"):
            response.headers["Cache-Control"] = "no-store"
        return response
