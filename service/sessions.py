"""Server-side browser sessions (Flask-Session's Redis format), kept by the store.

Flask-Session writes a session back after every request, so a request that loaded a session
before a log-out (another tab reloading, say) used to store it again after the log-out had
deleted it, and the user was logged in again. Here a session read from Redis is only ever
overwritten, never re-created, so a log-out (`Store.end_session`) is final.
"""

from __future__ import annotations

from datetime import timedelta

from flask import Flask, Request
from flask_session.base import ServerSideSession
from flask_session.redis import RedisSessionInterface

from .store import Store


class StoreSessionInterface(RedisSessionInterface):
    def __init__(self, app: Flask, store: Store) -> None:
        super().__init__(app, client=store.raw, key_prefix="", permanent=False)
        self.store = store

    def open_session(self, app: Flask, request: Request) -> ServerSideSession:
        session = super().open_session(app, request)
        # Flask-Session keeps the cookie's id only when it found that session in Redis.
        session.loaded = session.sid == request.cookies.get(app.config["SESSION_COOKIE_NAME"])
        return session

    def _retrieve_session_data(self, store_id: str) -> dict | None:
        data = self.store.load_session(store_id)
        return None if data is None else self.serializer.decode(data)

    def _delete_session(self, store_id: str) -> None:
        self.store.end_session(store_id)

    def _upsert_session(
        self, session_lifetime: timedelta, session: ServerSideSession, store_id: str
    ) -> None:
        self.store.save_session(
            store_id,
            self.serializer.encode(session),
            int(session_lifetime.total_seconds()),
            existing=getattr(session, "loaded", False),
        )
