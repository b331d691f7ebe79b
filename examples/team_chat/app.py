"""`create_app()`: the team chat's backend, configured from its environment.

| variable | meaning |
|---|---|
| `ROOMS_URL` | the rooms service's front door (default `http://127.0.0.1:8080`) |
| `ROOMS_API_KEY` | the service's `API_KEY` |
| `APP_JWT_SECRET` | the HS256 secret the service checks this app's JWTs with |
| `HOOK_SECRET` | the secret the service signs hooks and webhooks with |
| `TEAM_CHAT_DB` | the SQLite file (default `team_chat.sqlite3` in the working directory) |
| `BLOCKED_WORDS` | words the send hook stars out, comma-separated |
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from flask import Flask

from . import accounts, db, hooks

REQUIRED = ("ROOMS_API_KEY", "APP_JWT_SECRET", "HOOK_SECRET")


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    source = dict(os.environ) if config is None else dict(config)
    missing = [name for name in REQUIRED if not source.get(name)]
    if missing:
        raise SystemExit(f"team chat: set {', '.join(missing)} (see examples/team_chat/app.py)")
    app = Flask(__name__)
    app.config.update(
        ROOMS_URL=source.get("ROOMS_URL", "http://127.0.0.1:8080"),
        ROOMS_API_KEY=source["ROOMS_API_KEY"],
        APP_JWT_SECRET=source["APP_JWT_SECRET"],
        HOOK_SECRET=source["HOOK_SECRET"],
        DATABASE=source.get("TEAM_CHAT_DB", "team_chat.sqlite3"),
        BLOCKED_WORDS=[w.strip() for w in source.get("BLOCKED_WORDS", "darn,heck").split(",")
                       if w.strip()],
    )
    db.init_app(app)
    app.register_blueprint(accounts.bp)
    app.register_blueprint(hooks.bp)
    return app
