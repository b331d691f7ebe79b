"""CSRF tokens for the browser's HTML forms (log-in, register, log-out)."""

from __future__ import annotations

import hmac
import secrets

from flask import request, session

from ..errors import ServiceError

FIELD = "csrf_token"


def token() -> str:
    if FIELD not in session:
        session[FIELD] = secrets.token_urlsafe(32)
    return session[FIELD]


def check() -> None:
    expected = session.get(FIELD)
    given = request.form.get(FIELD, "")
    if not expected or not hmac.compare_digest(expected, given):
        raise ServiceError("forbidden", "the form is stale or was not sent by this site; reload")
