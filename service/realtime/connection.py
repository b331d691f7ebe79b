"""A Socket.IO connection held by this node: who it is, what its credentials allow, its limits.
Which rooms it is in is the local membership's to say (manager.py)."""

from __future__ import annotations

from dataclasses import dataclass

from .ratelimit import TokenBucket


@dataclass(slots=True)
class Connection:
    user: str
    expires_at: float | None  # token expiry; None for browser sessions (ended by log-out)
    session_id: str | None  # the browser session it belongs to (cookie or session token)
    bucket: TokenBucket
    typing_at: dict[str, float] | None = None  # room -> when it last said typing (monotonic)
    room_grants: tuple[str, ...] = ()  # an app JWT's `rooms` claim: private rooms it may join
