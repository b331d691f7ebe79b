"""Redis failures as the contract's error codes."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import redis

from ..errors import ServiceError
from .scripts import NotReplicated, TooFewReplicas

FULL = "storage is full (Redis reached its memory limit): nothing was stored; try again later"


@contextmanager
def redis_errors() -> Iterator[None]:
    """A malformed stream id is the client's fault (`bad_request`); a write no replica confirmed
    in time, a Redis out of memory, and anything else, mean storage is `unavailable` (try
    again), each with a message that says which."""
    try:
        yield
    except NotReplicated as exc:
        raise ServiceError("unavailable", "stored, but not yet safe on a replica: send it again "
                           "with the same client_id") from exc
    except TooFewReplicas as exc:
        raise ServiceError("unavailable", f"too few Redis replicas are in sync to accept writes "
                           f"({exc}); nothing was stored, try again") from exc
    except redis.ResponseError as exc:
        if "Invalid stream ID" in str(exc):
            raise ServiceError("bad_request", "unknown message id") from None
        if isinstance(exc, redis.exceptions.OutOfMemoryError) or str(exc).startswith("OOM"):
            raise ServiceError("unavailable", FULL) from exc
        raise ServiceError("unavailable", "storage refused the request, try again") from exc
    except redis.RedisError as exc:
        raise ServiceError("unavailable", "storage is unavailable, try again") from exc
