"""Accounts: JSON registration and tokens for programs; HTML log-in and log-out for browsers.

With OWN_ACCOUNTS=false (an app brings every user with its JWTs) none of it is there: each of
these routes answers 404 (JSON under /api/), no browser session signs anyone in, and the HTTP
API takes no token of the service's own (the API key still works).
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Callable
from typing import Any

from flask import Blueprint, Flask, abort, redirect, request, session, url_for
from flask_login import LoginManager, UserMixin, current_user, login_user, logout_user
from werkzeug.wrappers import Response

from ..errors import ServiceError
from ..passwords import check_password, hash_password
from ..primitives.names import is_reserved
from ..realtime import validation
from . import csrf
from .context import current
from .http_errors import json_body

bp = Blueprint("auth", __name__)
login_manager = LoginManager()
log = logging.getLogger("service")
OWN_ACCOUNTS_OFF = ("this service has no accounts of its own (OWN_ACCOUNTS=false): your app "
                    "issues the tokens")


class User(UserMixin):
    def __init__(self, username: str):
        self.id = username


def own_accounts_only() -> None:
    """Before a request for the service's own accounts: 404 when they are off."""
    if not current().settings.own_accounts:
        abort(404, description=OWN_ACCOUNTS_OFF)


bp.before_request(own_accounts_only)


@login_manager.user_loader
def load_user(username: str) -> User | None:
    if not current().settings.own_accounts:
        return None  # a session cookie from before signs nobody in
    try:
        return User(username) if current().store.accounts.exists(username) else None
    except ServiceError:
        return None


def register_user(raw_username: Any, raw_password: Any) -> str:
    username = validation.username(raw_username)
    password = validation.password(raw_password)
    if is_reserved(username):
        raise ServiceError("conflict", f"username {username} is reserved")
    if not current().store.accounts.create(username, hash_password(password)):
        raise ServiceError("conflict", f"username {username} is taken")
    log.info("node=%s registered user %s", current().name, username)
    return username


def check_credentials(raw_username: Any, raw_password: Any) -> str:
    if not isinstance(raw_username, str) or not isinstance(raw_password, str):
        raise ServiceError("bad_request", "username and password must be strings")
    if not validation.USERNAME.fullmatch(raw_username) or len(raw_password) > 1024:
        raise ServiceError("unauthorized", "wrong username or password")
    stored = current().store.accounts.password_hash(raw_username)
    if not check_password(stored, raw_password):
        raise ServiceError("unauthorized", "wrong username or password")
    return raw_username


def bearer_identity() -> str:
    """The user named by the request's bearer token, or `api` for the API key."""
    header = request.headers.get("Authorization", "")
    scheme, _, credential = header.partition(" ")
    if scheme.lower() != "bearer" or not credential:
        raise ServiceError("unauthorized", "send Authorization: Bearer <token or API key>")
    here = current()
    if hmac.compare_digest(credential.encode(), here.settings.api_key.encode()):
        return "api"
    if not here.settings.own_accounts:
        raise ServiceError("unauthorized", "this service takes no tokens of its own "
                           "(OWN_ACCOUNTS=false): use the API key")
    claims = here.signer.verify(credential)
    if claims.session_binding is not None:
        raise ServiceError("unauthorized", "a page's session token is for its Socket.IO "
                           "connection; use POST /api/token")
    return claims.user


@bp.post("/api/register")
def api_register() -> tuple[dict[str, str], int]:
    body = json_body()
    return {"username": register_user(body.get("username"), body.get("password"))}, 201


@bp.post("/api/token")
def api_token() -> dict[str, Any]:
    body = json_body()
    username = check_credentials(body.get("username"), body.get("password"))
    here = current()
    return {"token": here.signer.issue(username), "expires_in": here.settings.token_ttl_s}


@bp.post("/api/session/token")
def session_token() -> dict[str, Any]:
    """A token bound to this browser session, for the page's Socket.IO connection: it expires
    like any token (the page refreshes it), and logging out ends the connections it opened."""
    if not current_user.is_authenticated:
        raise ServiceError("unauthorized", "log in first")
    csrf.check()
    here = current()
    session_id: str = session.sid  # type: ignore[attr-defined]  # Flask-Session's ServerSideSession
    return {"token": here.signer.issue(current_user.get_id(), session_id),
            "expires_in": here.settings.token_ttl_s}


def _form_error_redirect(message: str) -> Response:
    session["form_error"] = message
    return redirect(url_for("web.index"))


def _form_login(authenticate: Callable[[Any, Any], str]) -> Response:
    """Check the form's CSRF token, authenticate from its fields, and start a browser session."""
    csrf.check()
    try:
        username = authenticate(request.form.get("username"), request.form.get("password"))
    except ServiceError as error:
        return _form_error_redirect(error.message)
    login_user(User(username))
    return redirect(url_for("web.index"))


@bp.post("/login")
def login() -> Response:
    return _form_login(check_credentials)


@bp.post("/register")
def register_form() -> Response:
    return _form_login(register_user)


@bp.post("/logout")
def logout() -> Response:
    csrf.check()
    here = current()
    session_id: str = session.sid  # type: ignore[attr-defined]  # Flask-Session's ServerSideSession
    sockets = here.store.sessions.end(session_id)  # the session first: see web/sessions.py
    if current_user.is_authenticated:
        here.disconnect_everywhere(current_user.get_id(), sockets)
    logout_user()
    session.clear()
    return redirect(url_for("web.index"))


def init_app(app: Flask) -> None:
    login_manager.init_app(app)
    app.register_blueprint(bp)
