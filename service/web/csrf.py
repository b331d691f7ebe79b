"""CSRF tokens for the browser's HTML forms (log-in, register, log-out) and the page's own
requests (its session token: the `X-CSRF-Token` header)."""

from __future__ import annotations

import hmac
import secrets

from flask import request, session

from ..errors import ServiceError

FIELD = "csrf_token"
HEADER = "X-CSRF-Token"


def token() -> str:
    if FIELD not in session:
        session[FIELD] = secrets.token_urlsafe(32)
    return session[FIELD]


def check() -> None:
    """The form's token (or, for the page's own requests, the header's) must be the session's."""
    expected = session.get(FIELD)
    given = request.form.get(FIELD, "") or request.headers.get(HEADER, "")
    if not expected or not hmac.compare_digest(expected, given):
        raise ServiceError("forbidden", "the form is stale or was not sent by this site; reload")
