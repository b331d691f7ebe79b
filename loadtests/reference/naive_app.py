"""The bench's naive baseline: one Flask-SocketIO process, no message queue, everything in memory.

This is the setup a tutorial ends with. It speaks the events of PROTOCOL.md that the load tests
use, but cannot run as more than one node (rooms live in this process only) and keeps no history
across restarts. `gunicorn -k gevent -w 1 -b $BIND loadtests.reference.naive_app:app`.
"""

from __future__ import annotations

import os
import time
from collections import defaultdict
from typing import Any

from flask import Flask, jsonify, request
from flask_socketio import SocketIO, emit, join_room, leave_room
from itsdangerous import BadSignature, URLSafeTimedSerializer
from werkzeug.security import check_password_hash, generate_password_hash

NODE = os.environ.get("NODE_NAME", "node-1")
TOKEN_TTL_S = 43200
app = Flask(__name__)
socketio = SocketIO(app, async_mode="gevent", cors_allowed_origins="*",
                    max_http_buffer_size=65536)
signer = URLSafeTimedSerializer(os.environ.get("SECRET_KEY", "naive-secret-key"), salt="naive")
accounts: dict[str, str] = {}
history: dict[str, list[dict[str, Any]]] = defaultdict(list)
members: dict[str, set[str]] = defaultdict(set)
users_by_sid: dict[str, str] = {}
last_id = [0, 0]


def next_id() -> str:
    now = int(time.time() * 1000)
    last_id[:] = [now, 0] if now > last_id[0] else [last_id[0], last_id[1] + 1]
    return f"{last_id[0]}-{last_id[1]}"


def fail(code: str, message: str) -> dict[str, Any]:
    return {"ok": False, "error": {"code": code, "message": message}}


@app.get("/healthz")
@app.get("/readyz")
def health():
    return {"node": NODE, "ok": True, "ready": True}


@app.post("/api/register")
def register():
    body = request.get_json(silent=True) or {}
    if not isinstance(body.get("username"), str) or not isinstance(body.get("password"), str):
        return {"error": {"code": "bad_request", "message": "username and password"}}, 400
    if body["username"] in accounts:
        return {"error": {"code": "conflict", "message": "taken"}}, 409
    accounts[body["username"]] = generate_password_hash(body["password"], "pbkdf2:sha256:1000")
    return {"username": body["username"]}, 201


@app.post("/api/token")
def token():
    body = request.get_json(silent=True) or {}
    stored = accounts.get(body.get("username", ""))
    if not stored or not check_password_hash(stored, str(body.get("password"))):
        return {"error": {"code": "unauthorized", "message": "wrong credentials"}}, 401
    return {"token": signer.dumps(body["username"]), "expires_in": TOKEN_TTL_S}


def user_of(token: Any) -> str | None:
    try:
        return signer.loads(token, max_age=TOKEN_TTL_S)
    except (BadSignature, TypeError):
        return None


@app.get("/api/cluster")
def cluster():
    if not user_of(request.headers.get("Authorization", "").removeprefix("Bearer ")):
        return {"error": {"code": "unauthorized", "message": "token"}}, 401
    return jsonify(nodes=[{"node": NODE}])


@socketio.on("connect")
def connect(auth):
    user = user_of((auth or {}).get("token"))
    if not user:
        return False
    users_by_sid[request.sid] = user
    join_room("u:" + user)
    emit("welcome", {"user": user, "node": NODE, "sid": request.sid})
    return True


@socketio.on("disconnect")
def disconnect(*_args):
    user = users_by_sid.pop(request.sid, None)
    for room_members in members.values():
        room_members.discard(user)


@socketio.on("join")
def join(payload):
    room = payload.get("room") if isinstance(payload, dict) else None
    if not isinstance(room, str):
        return fail("bad_request", "room")
    join_room("r:" + room)
    members[room].add(users_by_sid[request.sid])
    since = payload.get("since")
    missed = [m for m in history[room] if since and tuple(map(int, m["id"].split("-")))
              > tuple(map(int, since.split("-")))][-500:]
    return {"ok": True, "room": room, "node": NODE, "members": sorted(members[room]),
            "missed": missed, "truncated": False}


@socketio.on("leave")
def leave(payload):
    room = payload.get("room") if isinstance(payload, dict) else None
    leave_room("r:" + str(room))
    members[room].discard(users_by_sid.get(request.sid))
    return {"ok": True, "room": room}


@socketio.on("send")
def send(payload):
    if not isinstance(payload, dict) or not isinstance(payload.get("text"), str):
        return fail("bad_request", "text")
    room = payload.get("room")
    message_id = next_id()
    message = {"id": message_id, "room": room, "user": users_by_sid[request.sid],
               "text": payload["text"], "ts": int(message_id.split("-")[0]), "node": NODE}
    if "client_id" in payload:
        message["client_id"] = payload["client_id"]
    history[room].append(message)
    del history[room][:-10000]
    socketio.emit("message", message, to="r:" + room)
    return {"ok": True, "id": message_id, "ts": message["ts"]}


@socketio.on("history")
def read_history(payload):
    room = payload.get("room") if isinstance(payload, dict) else None
    limit = min(int(payload.get("limit") or 50), 500)
    return {"ok": True, "room": room, "messages": history[room][-limit:]}


@socketio.on("presence")
def presence(payload):
    room = payload.get("room")
    return {"ok": True, "room": room, "members": sorted(members[room])}
