"""The browser page and its assets, served by the node itself (no CDN at run time)."""

from __future__ import annotations

from flask import Blueprint, Flask, Response, render_template, session
from flask_login import current_user

from . import csrf
from .auth import own_accounts_only
from .context import current

bp = Blueprint("web", __name__)
bp.before_request(own_accounts_only)  # the page is the service's own accounts' (log-in first)
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self' ws: wss:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; "
    "form-action 'self'"
)


@bp.get("/")
def index() -> str:
    return render_template(
        "index.html",
        user=current_user.get_id() if current_user.is_authenticated else None,
        node=current().name,
        csrf_token=csrf.token(),
        form_error=session.pop("form_error", None),
    )


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)

    @app.after_request
    def security_headers(response: Response) -> Response:
        response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        response.headers.setdefault("X-Frame-Options", "DENY")
        return response
