"""The app's own users and teams, and the JWTs it issues them for the rooms service.

A team is a private room of the service (`team-<name>`); signing up for a team makes the user a
member of it. The JWT carries only who the user is and for how long: the room's membership is
the service's to check."""

from __future__ import annotations

import re
import sqlite3
import time
from typing import Any

import jwt
from flask import Blueprint, current_app, request
from werkzeug.security import check_password_hash, generate_password_hash

from . import rooms
from .db import get_db

bp = Blueprint("accounts", __name__)
NAME = re.compile(r"[a-z0-9_.-]{2,32}")
TOKEN_TTL_S = 3600


def team_room(team: str) -> str:
    return f"team-{team}"


def error(status: int, message: str) -> tuple[dict[str, Any], int]:
    return {"error": message}, status


def fields(*names: str) -> dict[str, str] | None:
    body = request.get_json(silent=True)
    if not isinstance(body, dict) or not all(isinstance(body.get(n), str) for n in names):
        return None
    return {name: body[name] for name in names}


def authenticated(body: dict[str, str], name_field: str = "user") -> sqlite3.Row | None:
    row = get_db().execute("SELECT * FROM users WHERE name = ?", (body[name_field],)).fetchone()
    if row is None or not check_password_hash(row["password_hash"], body["password"]):
        return None
    return row


@bp.post("/signup")
def signup():
    """`{user, password, team}`: the first user of a team owns it; the team's room is made
    private and the user a member of it."""
    body = fields("user", "password", "team")
    if body is None or not NAME.fullmatch(body["user"]) or not NAME.fullmatch(body["team"]):
        return error(400, "user and team: 2-32 characters of a-z0-9_.-; password: a string")
    if len(body["password"]) < 8:
        return error(400, "password: at least 8 characters")
    db, room = get_db(), team_room(body["team"])
    try:
        db.execute("INSERT INTO users (name, password_hash, team) VALUES (?, ?, ?)",
                   (body["user"], generate_password_hash(body["password"]), body["team"]))
    except sqlite3.IntegrityError:
        return error(409, "that user exists")
    new_team = db.execute("INSERT OR IGNORE INTO teams (name, owner) VALUES (?, ?)",
                          (body["team"], body["user"])).rowcount == 1
    try:
        if new_team:
            rooms.make_private(room)
        rooms.add_member(room, body["user"])
    except rooms.RoomsError as exc:
        db.rollback()
        current_app.logger.warning("signup of %s failed: %s", body["user"], exc)
        return error(502, "the rooms service did not take the team's room; try again")
    db.commit()
    return {"user": body["user"], "team": body["team"], "room": room}, 201


@bp.post("/token")
def token():
    """`{user, password}`: a JWT for the rooms service (HS256, one hour)."""
    body = fields("user", "password")
    user = authenticated(body) if body else None
    if user is None:
        return error(401, "wrong user or password")
    now = int(time.time())
    claims = {"sub": user["name"], "iat": now, "exp": now + TOKEN_TTL_S}
    signed = jwt.encode(claims, current_app.config["APP_JWT_SECRET"], algorithm="HS256")
    return {"token": signed, "room": team_room(user["team"]), "expires_in": TOKEN_TTL_S}


@bp.post("/teams/<team>/remove")
def remove(team: str):
    """`{owner, password, user}`: the team's owner takes `user` out of the team and its room;
    the service tells each of the user's connections (`removed`)."""
    body = fields("owner", "password", "user")
    owner = authenticated(body, "owner") if body else None
    db = get_db()
    row = db.execute("SELECT owner FROM teams WHERE name = ?", (team,)).fetchone()
    if owner is None or row is None or row["owner"] != owner["name"]:
        return error(403, "only the team's owner may remove members")
    assert body is not None
    db.execute("DELETE FROM users WHERE name = ? AND team = ?", (body["user"], team))
    try:
        rooms.remove_member(team_room(team), body["user"])
    except rooms.RoomsError as exc:
        db.rollback()
        current_app.logger.warning("removing %s failed: %s", body["user"], exc)
        return error(502, "the rooms service did not take the removal; try again")
    db.commit()
    return "", 204
