"""The app's SQLite database: one connection per request, closed when the request ends (the
way Flask's tutorial does it)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from flask import Flask, current_app, g

SCHEMA = Path(__file__).with_name("schema.sql")


def get_db() -> sqlite3.Connection:
    if "db" not in g:
        g.db = sqlite3.connect(current_app.config["DATABASE"], timeout=10)
        g.db.row_factory = sqlite3.Row
    return g.db


def close_db(_error: BaseException | None = None) -> None:
    db = g.pop("db", None)
    if db is not None:
        db.close()


def init_app(app: Flask) -> None:
    with sqlite3.connect(app.config["DATABASE"]) as db:
        db.execute("PRAGMA journal_mode=WAL")  # the webhook receiver writes while others read
        db.executescript(SCHEMA.read_text())
    app.teardown_appcontext(close_db)
