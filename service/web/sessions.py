"""Server-side browser sessions (Flask-Session's Redis format), kept by the store.

Flask-Session writes a session back after every request, so a request that loaded a session
before a log-out (another tab reloading, say) used to store it again after the log-out had
deleted it, and the user was logged in again. Here a session read from Redis is only ever
overwritten, never re-created, so a log-out (`Store.end_session`) is final.

A session that cannot be written (Redis unreachable, or full) turns the response into the
contract's JSON error, 503 `unavailable` with the store's reason, logged in one line: the page
never believes a log-in that was not kept, and no traceback reaches the log.
"""

from __future__ import annotations

import json
import logging

from flask import Flask, Request, Response
from flask_session.base import ServerSideSession
from flask_session.redis import RedisSession

from ..errors import ServiceError
from ..store.store import Store
from ..transport.compat import SessionInterfaceHooks

log = logging.getLogger("service")


class StoreSessionInterface(SessionInterfaceHooks):
    """Flask-Session's server-side sessions, in the store (one Redis or a Redis Cluster): its
    storage hooks, reached through transport/compat.py, load, keep and end them here."""

    session_class = RedisSession
    ttl = True

    def __init__(self, app: Flask, store: Store) -> None:
        super().__init__(app, key_prefix="", permanent=False)
        self.store = store

    def open_session(self, app: Flask, request: Request) -> ServerSideSession:
        session = super().open_session(app, request)
        # Flask-Session keeps the cookie's id only when it found that session in Redis.
        session.loaded = session.sid == request.cookies.get(app.config["SESSION_COOKIE_NAME"])
        return session

    def save_session(self, app: Flask, session: ServerSideSession, response: Response) -> None:
        try:
            super().save_session(app, session, response)
        except ServiceError as error:
            log.warning("node=%s could not keep a browser session: %s", app.config["NODE_NAME"],
                        error.message)
            response.status_code = 503
            response.set_data(json.dumps({"error": error.body()}))
            response.headers["Content-Type"] = "application/json"
            response.headers.pop("Location", None)

    def load(self, store_id: str) -> dict | None:
        data = self.store.sessions.load(store_id)
        return None if data is None else self.serializer.decode(data)

    def end(self, store_id: str) -> None:
        self.store.sessions.end(store_id)

    def keep(self, store_id: str, session: ServerSideSession, ttl_s: int) -> None:
        self.store.sessions.save(store_id, self.serializer.encode(session), ttl_s,
                                 existing=getattr(session, "loaded", False))
