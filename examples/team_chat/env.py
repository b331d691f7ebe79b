"""`python -m examples.team_chat.env FILE`: the settings the cluster and the team chat share,
written to FILE once (fresh secrets; an existing FILE is kept, so restarts keep them).

The cluster reads them as its environment (`make run-example`), the app as its own
(`make example`): the cluster checks the app's JWTs with APP_JWT_SECRET and signs its hooks
and webhooks with HOOK_SECRET; the app calls the service's API with its API_KEY."""

from __future__ import annotations

import os
import secrets
import sys
from pathlib import Path

from service.settings.dotenv import read_dotenv
from service.settings.table import DEV_API_KEY

APP = "http://127.0.0.1:8090"


def api_key() -> str:
    """The API_KEY `make run`'s nodes use: the environment's, `.env`'s, else the development
    value."""
    dotenv = Path(".env")
    from_file = read_dotenv(dotenv).get("API_KEY") if dotenv.exists() else None
    return os.environ.get("API_KEY") or from_file or DEV_API_KEY


def settings() -> dict[str, str]:
    return {
        "APP_JWT_SECRET": secrets.token_urlsafe(32),
        "HOOK_SECRET": secrets.token_urlsafe(32),
        "JOIN_HOOK_URL": f"{APP}/hooks/join",
        "SEND_HOOK_URL": f"{APP}/hooks/send",
        "WEBHOOK_URL": f"{APP}/webhooks",
        "ROOMS_URL": os.environ.get("HOST", "http://127.0.0.1:8080"),
        "ROOMS_API_KEY": api_key(),
        "TEAM_CHAT_DB": "run/team_chat.sqlite3",
    }


def main(path: str) -> None:
    target = Path(path)
    if target.exists():
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text("".join(f"{key}={value}\n" for key, value in settings().items()))
    target.chmod(0o600)
    print(f"wrote {target}: the secrets the cluster and the team chat share")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "run/team_chat.env")
