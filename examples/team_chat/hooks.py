"""What the rooms service asks this app (hooks) and tells it (webhooks).

Every request is signed: `X-Rooms-Signature: v1=<HMAC-SHA256 of "<timestamp>.<body>">` with
the shared HOOK_SECRET; one without a good signature, or older than five minutes, is refused.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import time
from typing import Any

from flask import Blueprint, abort, current_app, request

from .db import get_db

bp = Blueprint("hooks", __name__)
MAX_AGE_S = 300
LINK = re.compile(r"https?://", re.IGNORECASE)


def signed_body() -> Any:
    """The request's JSON, once its signature is checked (403 otherwise)."""
    body = request.get_data()
    stamp = request.headers.get("X-Rooms-Timestamp", "")
    given = request.headers.get("X-Rooms-Signature", "")
    if not stamp.isdigit() or abs(time.time() - int(stamp)) > MAX_AGE_S:
        abort(403)
    mac = hmac.new(current_app.config["HOOK_SECRET"].encode(), stamp.encode() + b"." + body,
                   hashlib.sha256)
    if not hmac.compare_digest("v1=" + mac.hexdigest(), given):
        abort(403)
    return json.loads(body)


def moderated(text: str) -> str:
    for word in current_app.config["BLOCKED_WORDS"]:
        text = re.sub(re.escape(word), "*" * len(word), text, flags=re.IGNORECASE)
    return text


@bp.post("/hooks/send")
def send_hook():
    """Before a message is stored: links are refused, blocked words starred out."""
    event = signed_body()
    if LINK.search(event["text"]):
        return {"allow": False, "reason": "links are not allowed in this app"}
    text = moderated(event["text"])
    return {"allow": True, **({"text": text} if text != event["text"] else {})}


@bp.post("/hooks/join")
def join_hook():
    """A private room nobody admitted yet: a team's room takes the team's users."""
    event = signed_body()
    user = get_db().execute("SELECT team FROM users WHERE name = ?", (event["user"],)).fetchone()
    if user is not None and event["room"] == f"team-{user['team']}":
        return {"allow": True}
    return {"allow": False, "reason": "this room is for its team"}


@bp.post("/webhooks")
def webhooks():
    """A batch of what happened, stored once per event id (a retried batch repeats ids)."""
    events = signed_body()["events"]
    db, now = get_db(), time.time()
    for event in events:
        message = event.get("message") or {}
        db.execute(
            "INSERT OR IGNORE INTO events (id, type, room, user, ts, body, received_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (event["id"], event["type"], event.get("room") or message.get("room"),
             event.get("user") or message.get("user") or message.get("from"), event["ts"],
             json.dumps(event), now))
    db.commit()
    return "", 204


@bp.get("/events")
def events():
    """What the webhooks reported, oldest first: `?room=` and `?type=` narrow it."""
    query, args = "SELECT body FROM events WHERE 1 = 1", []
    for column in ("room", "type"):
        if request.args.get(column):
            query += f" AND {column} = ?"  # the column is one of the two names above
            args.append(request.args[column])
    rows = get_db().execute(query + " ORDER BY ts, id", args).fetchall()
    return {"events": [json.loads(row["body"]) for row in rows]}
