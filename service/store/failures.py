"""Redis failures as the contract's error codes."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import redis

from ..errors import ServiceError
from .scripts import NotReplicated


@contextmanager
def redis_errors() -> Iterator[None]:
    """A malformed stream id is the client's fault (`bad_request`); a write no replica confirmed
    in time, and anything else, means storage is `unavailable` (try again)."""
    try:
        yield
    except NotReplicated as exc:
        raise ServiceError("unavailable", "stored, but not yet safe on a replica: send it again "
                           "with the same client_id") from exc
    except redis.ResponseError as exc:
        if "Invalid stream ID" in str(exc):
            raise ServiceError("bad_request", "unknown message id") from None
        raise ServiceError("unavailable", "storage refused the request, try again") from exc
    except redis.RedisError as exc:
        raise ServiceError("unavailable", "storage is unavailable, try again") from exc
