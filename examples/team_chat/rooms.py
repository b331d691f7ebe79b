"""The rooms service's HTTP API, as this app calls it (Authorization: Bearer API_KEY)."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

import urllib3
from flask import current_app


class RoomsError(Exception):
    """The service answered something other than success."""


_pool = urllib3.PoolManager(maxsize=8, retries=False, timeout=urllib3.Timeout(total=5))


def call(method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    config = current_app.config
    answer = _pool.request(
        method, config["ROOMS_URL"].rstrip("/") + path,
        body=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {config['ROOMS_API_KEY']}",
                 "Content-Type": "application/json"})
    if answer.status >= 300:
        raise RoomsError(f"{method} {path}: {answer.status} {answer.data[:200]!r}")
    return json.loads(answer.data) if answer.data else None


def make_private(room: str) -> None:
    call("PUT", f"/api/rooms/{quote(room)}", {"private": True})


def add_member(room: str, user: str) -> None:
    call("PUT", f"/api/rooms/{quote(room)}/members/{quote(user)}")


def remove_member(room: str, user: str) -> None:
    call("DELETE", f"/api/rooms/{quote(room)}/members/{quote(user)}")


def tell(user: str, text: str) -> dict[str, Any]:
    """A direct message from the app to `user`."""
    return call("POST", f"/api/users/{quote(user)}/messages", {"text": text})
