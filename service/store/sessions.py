"""Browser sessions (Flask-Session's data) and the sockets opened under them.

Log-out is final: `end` deletes the session and takes its sockets in one transaction (both keys
share the session's slot). A request that loaded the session earlier cannot write it back
(`save(existing=True)` only overwrites a session that still exists). A socket that registers
itself after the log-out finds the session gone (`add_socket` is False). Sockets are recorded as
`node|sid`, so whichever node handles the log-out can have each one's node disconnect it.
"""

from __future__ import annotations

from typing import Any, cast

from . import keys
from .failures import redis_errors

SOCKETS_TTL_S = 7 * 24 * 3600


class Sessions:
    def __init__(self, client: Any, raw: Any):
        self.client = client
        self.raw = raw  # replies not decoded: the session data is bytes

    def load(self, session_id: str) -> bytes | None:
        with redis_errors():
            return cast("bytes | None", self.raw.get(keys.session(session_id)))

    def save(self, session_id: str, data: bytes, ttl_s: int, *, existing: bool) -> bool:
        """Write a session; `existing` sessions are only overwritten, new ones only created."""
        with redis_errors():
            return bool(self.raw.set(keys.session(session_id), data, ex=ttl_s, xx=existing,
                                     nx=not existing))

    def end(self, session_id: str) -> list[str]:
        """Delete a session; the sockets (`node|sid`) registered under it, to disconnect."""
        sockets = keys.session_sockets(session_id)
        with redis_errors(), self.client.pipeline(transaction=True) as pipe:
            pipe.delete(keys.session(session_id))
            pipe.smembers(sockets)
            pipe.delete(sockets)
            _, members, _ = pipe.execute()
        return sorted(members)

    def add_socket(self, session_id: str, socket: str) -> bool:
        """Register a socket under its session; False if the session has ended (log-out)."""
        key = keys.session_sockets(session_id)
        with redis_errors(), self.client.pipeline(transaction=True) as pipe:
            pipe.sadd(key, socket)
            pipe.expire(key, SOCKETS_TTL_S)
            pipe.exists(keys.session(session_id))
            *_, alive = pipe.execute()
        if not alive:
            self.remove_socket(session_id, socket)
        return bool(alive)

    def remove_socket(self, session_id: str, socket: str) -> None:
        with redis_errors():
            self.client.srem(keys.session_sockets(session_id), socket)
