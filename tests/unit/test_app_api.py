"""The app's HTTP calls (service/web/app_api.py) in-process (Flask's test client) against a real
redis-server: who may call them, what bad input gets, what each stores, and the control
messages that tell the nodes (read off the user's shard channel, as a node would get them)."""

from __future__ import annotations

import json

import pytest
import redis

from service import create_app
from service.primitives import bus_format
from service.settings import load_settings
from service.store import keys

API_KEY = "app-api-test-api-key"
APP = {"Authorization": f"Bearer {API_KEY}"}


@pytest.fixture
def app(redis_server):
    redis.Redis.from_url(redis_server.url).flushall()
    settings = load_settings({"REDIS_URL": redis_server.url, "ASYNC_MODE": "threading",
                              "NODE_NAME": "node-a", "DOTENV_PATH": "/nonexistent",
                              "API_KEY": API_KEY})
    app = create_app(settings, background=False)
    yield app
    app.extensions["node"].bus.close()


@pytest.fixture
def http(app):
    return app.test_client()


@pytest.fixture
def store(app):
    return app.extensions["node"].store


def error(response, status: int, code: str) -> str:
    assert response.status_code == status, response.get_data(as_text=True)
    body = response.get_json()
    assert body["error"]["code"] == code, body
    return body["error"]["message"]


class Channel:
    """What Redis publishes on a user's shard channel, read as a node would."""

    def __init__(self, url: str, user: str):
        self.client = redis.Redis.from_url(url)
        self.pubsub = self.client.pubsub()
        self.pubsub.ssubscribe(keys.user_channel(user))
        assert self.pubsub.get_message(timeout=5)["type"] == "ssubscribe"

    def next(self) -> bus_format.Frame:
        message = self.pubsub.get_message(timeout=5)
        assert message is not None, "nothing was published"
        return bus_format.decode(message["data"])

    def close(self) -> None:
        self.pubsub.close()
        self.client.close()


@pytest.fixture
def channel(redis_server):
    opened: list[Channel] = []

    def open_channel(user: str) -> Channel:
        opened.append(Channel(redis_server.url, user))
        return opened[-1]

    yield open_channel
    for each in opened:
        each.close()


CALLS = [("put", "/api/rooms/team", {"private": True}),
         ("get", "/api/rooms/team", None),
         ("put", "/api/rooms/team/members/ann", None),
         ("delete", "/api/rooms/team/members/ann", None),
         ("post", "/api/users/ann/messages", {"text": "hi"}),
         ("post", "/api/users/ann/disconnect", None)]


@pytest.mark.parametrize(("method", "path", "body"), CALLS)
def test_every_call_needs_the_api_key(app, http, method, path, body):
    call = getattr(http, method)
    error(call(path, json=body), 401, "unauthorized")
    error(call(path, json=body, headers={"Authorization": "Bearer not-the-key"}), 401,
          "unauthorized")
    token = app.extensions["node"].signer.issue("ann")
    message = error(call(path, json=body, headers={"Authorization": f"Bearer {token}"}), 403,
                    "forbidden")
    assert "API key" in message


def test_rules_are_set_and_read_back_with_who_is_present(http, store):
    response = http.put("/api/rooms/team", json={"private": True}, headers=APP)
    assert response.status_code == 200
    assert response.get_json() == {"room": "team", "private": True, "read_only": False}
    assert http.put("/api/rooms/team", json={"read_only": True}, headers=APP).get_json() == {
        "room": "team", "private": True, "read_only": True}
    assert http.put("/api/rooms/team", json={}, headers=APP).get_json()["private"] is True
    store.presence.join("team", "ann", "s1", member=True, admission="granted")
    assert http.get("/api/rooms/team", headers=APP).get_json() == {
        "room": "team", "private": True, "read_only": True, "members": ["ann"]}
    assert http.get("/api/rooms/elsewhere", headers=APP).get_json() == {
        "room": "elsewhere", "private": False, "read_only": False, "members": []}


@pytest.mark.parametrize(("method", "path", "body", "raw"), [
    ("put", "/api/rooms/team", {"private": "yes"}, None),
    ("put", "/api/rooms/team", {"private": 1}, None),
    ("put", "/api/rooms/team", {"readonly": True}, None),
    ("put", "/api/rooms/team", None, "not json"),
    ("put", "/api/rooms/team", [True], None),
    ("put", "/api/rooms/bad%20room", {"private": True}, None),
    ("get", "/api/rooms/" + "x" * 65, None, None),
    ("put", "/api/rooms/team/members/bad%20user", None, None),
    ("put", "/api/rooms/team/members/" + "u" * 65, None, None),
    ("delete", "/api/rooms/team/members/ann", {"reason": ""}, None),
    ("delete", "/api/rooms/team/members/ann", {"reason": 5}, None),
    ("delete", "/api/rooms/team/members/ann", None, "[oops"),
    ("post", "/api/users/ann/messages", {"text": ""}, None),
    ("post", "/api/users/ann/messages", {"text": 5}, None),
    ("post", "/api/users/ann/messages", {"text": "x", "to": "bob"}, None),
    ("post", "/api/users/bad%7Buser%7D/messages", {"text": "x"}, None),
    ("post", "/api/users/ann/disconnect", {"reason": "x" * 501}, None),
    ("post", "/api/users/ann/disconnect", None, "{"),
])
def test_bad_input_gets_400_json(http, method, path, body, raw):
    call = getattr(http, method)
    if raw is not None:
        response = call(path, data=raw, headers={**APP, "Content-Type": "application/json"})
    else:
        response = call(path, json=body, headers=APP)
    error(response, 400, "bad_request")


def test_a_text_too_long_is_too_large_and_an_unknown_user_not_found(http):
    error(http.post("/api/users/ann/messages", json={"text": "x" * 4001}, headers=APP), 413,
          "too_large")
    error(http.post("/api/users/nobody/messages", json={"text": "x"}, headers=APP), 404,
          "not_found")


def test_members_added_and_removed_with_the_removal_told_on_the_users_channel(
        redis_server, http, store, channel):
    http.put("/api/rooms/team", json={"private": True}, headers=APP)
    response = http.put("/api/rooms/team/members/ann@example.com", headers=APP)
    assert response.status_code == 204 and response.get_data() == b""
    access = store.rules.access("team", "ann@example.com")
    assert access.added and access.admitted
    store.presence.join("team", "ann@example.com", "s1", member=True, admission="member")
    store.members.add("ann@example.com", "team")
    told = channel("ann@example.com")
    response = http.delete("/api/rooms/team/members/ann@example.com", headers=APP)
    assert response.status_code == 204
    frame = told.next()
    assert frame.kind == bus_format.CONTROL and frame.control() == {"removed": {
        "user": "ann@example.com", "room": "team",
        "reason": "the app removed you from this room"}}
    access = store.rules.access("team", "ann@example.com")
    assert not access.added and not access.admitted
    assert store.members.rooms("ann@example.com") == []
    http.delete("/api/rooms/team/members/ann@example.com", json={"reason": "bye"}, headers=APP)
    assert told.next().control()["removed"]["reason"] == "bye"


def test_a_direct_message_from_the_app_is_stored_and_published_for_the_user(
        http, store, channel):
    store.accounts.create("ann", "hash")
    told = channel("ann")
    response = http.post("/api/users/ann/messages", json={"text": "your export is ready"},
                         headers=APP)
    assert response.status_code == 202
    answer = response.get_json()
    frame = told.next()
    assert frame.kind == bus_format.EVENT and frame.stored_id == answer["id"]
    name, data = json.loads(frame.body)
    assert name == "direct" and (data["from"], data["to"], data["text"], data["ts"]) == (
        "api", "ann", "your export is ready", answer["ts"])
    assert [m["id"] for m in store.conversations.inbox("ann", None).messages] == [answer["id"]]


def test_disconnecting_a_user_is_told_on_its_channel(http, channel):
    told = channel("ann")
    assert http.post("/api/users/ann/disconnect", headers=APP).status_code == 204
    assert told.next().control() == {"disconnect_user": {
        "user": "ann", "reason": "the app ended this connection"}}
    assert http.post("/api/users/ann/disconnect", json={"reason": "account closed"},
                     headers=APP).status_code == 204
    assert told.next().control()["disconnect_user"]["reason"] == "account closed"


def test_a_users_token_reads_a_private_rooms_messages_only_once_admitted(app, http, store):
    store.messages.publish("team", "api", "secret plans", None)
    http.put("/api/rooms/team", json={"private": True}, headers=APP)
    token = app.extensions["node"].signer.issue("ann")
    as_ann = {"Authorization": f"Bearer {token}"}
    error(http.get("/api/rooms/team/messages", headers=as_ann), 403, "forbidden")
    http.put("/api/rooms/team/members/ann", headers=APP)
    response = http.get("/api/rooms/team/messages", headers=as_ann)
    assert [m["text"] for m in response.get_json()["messages"]] == ["secret plans"]
