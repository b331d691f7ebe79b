"""The contract's error codes and the one exception that carries them."""

from __future__ import annotations

from typing import Any

CODES = ("bad_request", "unauthorized", "forbidden", "not_found", "too_large", "rate_limited",
         "unavailable")

HTTP_STATUS = {
    "bad_request": 400,
    "unauthorized": 401,
    "forbidden": 403,
    "not_found": 404,
    "conflict": 409,
    "too_large": 413,
    "rate_limited": 429,
    "unavailable": 503,
}


class ServiceError(Exception):
    """A failure a client may see: a contract code and a human sentence, never a traceback."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message

    def body(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message}

    def ack(self) -> dict[str, Any]:
        return {"ok": False, "error": self.body()}
