"""JSON error bodies for HTTP: {"error": {"code", "message"}}, never an HTML page or a traceback."""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, Response, jsonify, request
from werkzeug.exceptions import HTTPException

from ..errors import HTTP_STATUS, ServiceError
from .context import current

log = logging.getLogger("service")
CODE_FOR_STATUS = {status: code for code, status in HTTP_STATUS.items()}


def error_response(code: str, message: str, status: int | None = None) -> tuple[Response, int]:
    return jsonify(error={"code": code, "message": message}), status or HTTP_STATUS.get(code, 400)


def json_body() -> dict[str, Any]:
    """The request's JSON object, or ServiceError('bad_request') saying what is wrong with it."""
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise ServiceError("bad_request", "body must be a JSON object")
    return body


def init_app(app: Flask) -> None:
    @app.errorhandler(ServiceError)
    def service_error(error: ServiceError) -> tuple[Response, int]:
        current().metrics.error(error.code)
        return error_response(error.code, error.message)

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException) -> Any:
        status = error.code or 500
        if request.path.startswith(("/api/", "/admin/")) or request.path in (
                "/healthz", "/readyz", "/metrics"):
            code = CODE_FOR_STATUS.get(status, "bad_request" if status < 500 else "unavailable")
            return error_response(code, error.description or error.name, status)
        return error

    @app.errorhandler(Exception)
    def unexpected(error: Exception) -> tuple[Response, int]:
        log.exception("node=%s %s %s failed", app.config["NODE_NAME"], request.method,
                      request.path)
        return error_response("unavailable", "internal error, try again", 503)
