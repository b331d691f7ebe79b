"""The signature on every hook and webhook request (PROTOCOL.md, third edition).

`X-Rooms-Timestamp: <unix seconds>` and `X-Rooms-Signature: v1=<hex HMAC-SHA256 of
"<timestamp>.<body>" with HOOK_SECRET>`. A receiver recomputes it over the raw body it got and
refuses a request older than five minutes (`verify`, which the example app and the tests use).
"""

from __future__ import annotations

import hashlib
import hmac
import time

TIMESTAMP_HEADER = "X-Rooms-Timestamp"
SIGNATURE_HEADER = "X-Rooms-Signature"
MAX_AGE_S = 300


def signature(secret: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return "v1=" + mac.hexdigest()


def headers(secret: str, body: bytes, now: float | None = None) -> dict[str, str]:
    """The headers that sign `body`, sent with it as `application/json`."""
    timestamp = int(time.time() if now is None else now)
    return {"Content-Type": "application/json", TIMESTAMP_HEADER: str(timestamp),
            SIGNATURE_HEADER: signature(secret, timestamp, body)}


def verify(secret: str, timestamp: str | None, given: str | None, body: bytes,
           now: float | None = None) -> bool:
    """Whether a request's headers sign `body` with `secret`, made within MAX_AGE_S."""
    if not timestamp or not given or not timestamp.isdigit():
        return False
    if abs((time.time() if now is None else now) - int(timestamp)) > MAX_AGE_S:
        return False
    return hmac.compare_digest(signature(secret, int(timestamp), body), given)
