"""The example app's own behaviour (examples/team_chat), with the rooms service's API faked:
what it asks the service, the JWTs it issues, and how it checks what the service sends it."""

from __future__ import annotations

import json

import jwt
import pytest

from examples.team_chat import rooms
from examples.team_chat.app import create_app
from service.hooks import signing

JWT_SECRET, HOOK_SECRET = "j" * 32, "h" * 20


@pytest.fixture
def calls(monkeypatch):
    made: list[tuple[str, str]] = []
    monkeypatch.setattr(rooms, "call", lambda method, path, body=None: made.append(
        (method, path)))
    return made


@pytest.fixture
def client(tmp_path, calls):
    app = create_app({"ROOMS_API_KEY": "k" * 16, "APP_JWT_SECRET": JWT_SECRET,
                      "HOOK_SECRET": HOOK_SECRET, "TEAM_CHAT_DB": str(tmp_path / "t.sqlite3"),
                      "BLOCKED_WORDS": "heck"})
    return app.test_client()


def signed(client, path: str, payload: dict, secret: str = HOOK_SECRET):
    body = json.dumps(payload).encode()
    return client.post(path, data=body, headers=signing.headers(secret, body))


def test_a_team_becomes_a_private_room_and_its_users_members(client, calls):
    assert client.post("/signup", json={"user": "ann", "password": "password-1",
                                        "team": "blue"}).status_code == 201
    assert client.post("/signup", json={"user": "bob", "password": "password-1",
                                        "team": "blue"}).status_code == 201
    assert calls == [("PUT", "/api/rooms/team-blue"), ("PUT", "/api/rooms/team-blue/members/ann"),
                     ("PUT", "/api/rooms/team-blue/members/bob")]
    assert client.post("/signup", json={"user": "ann", "password": "password-1",
                                        "team": "red"}).status_code == 409


def test_the_token_is_an_hs256_jwt_for_the_user(client):
    client.post("/signup", json={"user": "ann", "password": "password-1", "team": "blue"})
    assert client.post("/token", json={"user": "ann", "password": "wrong-one"}).status_code == 401
    answer = client.post("/token", json={"user": "ann", "password": "password-1"}).get_json()
    claims = jwt.decode(answer["token"], JWT_SECRET, algorithms=["HS256"])
    assert claims["sub"] == "ann" and claims["exp"] > claims["iat"]
    assert answer["room"] == "team-blue"


def test_hooks_refuse_what_the_service_did_not_sign(client):
    event = {"event": "send", "user": "ann", "room": "team-blue", "text": "hi"}
    assert signed(client, "/hooks/send", event, secret="someone-else-s-key").status_code == 403
    assert client.post("/hooks/send", json=event).status_code == 403


def test_the_send_hook_stars_blocked_words_and_refuses_links(client):
    event = {"event": "send", "user": "ann", "room": "team-blue"}
    assert signed(client, "/hooks/send", {**event, "text": "hi"}).get_json() == {"allow": True}
    assert signed(client, "/hooks/send", {**event, "text": "oh HECK"}).get_json() == {
        "allow": True, "text": "oh ****"}
    assert signed(client, "/hooks/send", {**event, "text": "http://x"}).get_json()[
        "allow"] is False


def test_the_join_hook_admits_a_teams_users_to_its_room_only(client):
    client.post("/signup", json={"user": "ann", "password": "password-1", "team": "blue"})
    ask = {"event": "join", "user": "ann"}
    assert signed(client, "/hooks/join", {**ask, "room": "team-blue"}).get_json() == {
        "allow": True}
    assert signed(client, "/hooks/join", {**ask, "room": "team-red"}).get_json()[
        "allow"] is False


def test_webhook_events_are_stored_once_each(client):
    batch = {"events": [
        {"id": "m1", "type": "message", "ts": 2, "room": "team-blue",
         "message": {"id": "2-0", "room": "team-blue", "user": "ann", "text": "hi"}},
        {"id": "p1", "type": "presence", "ts": 1, "room": "team-blue", "user": "ann",
         "action": "join"}]}
    assert signed(client, "/webhooks", batch).status_code == 204
    assert signed(client, "/webhooks", batch).status_code == 204  # a retry
    stored = client.get("/events?room=team-blue").get_json()["events"]
    assert [event["id"] for event in stored] == ["p1", "m1"]
    assert client.get("/events?type=message").get_json()["events"][0]["message"]["text"] == "hi"
