"""The Socket.IO handlers in-process (Flask-SocketIO's test client, threading mode) against a real
redis-server: what every event answers. Deliveries between nodes are the bus's (test_bus.py)
and the cluster suites'."""

from __future__ import annotations

import pytest
import redis

from service import create_app, socketio
from service.settings import load_settings


@pytest.fixture
def app(redis_server):
    redis.Redis.from_url(redis_server.url).flushall()
    settings = load_settings({"REDIS_URL": redis_server.url, "ASYNC_MODE": "threading",
                              "NODE_NAME": "node-t", "DOTENV_PATH": "/nonexistent",
                              "RATE_LIMIT_PER_S": "1000", "RATE_LIMIT_BURST": "1000"})
    app = create_app(settings)
    node = app.extensions["node"]
    for user in ("alice", "bob"):
        node.store.accounts.create(user, "not-a-real-hash")
    yield app
    node.bus.close()


def connect(app, user: str = "alice"):
    token = app.extensions["node"].signer.issue(user)
    client = socketio.test_client(app, auth={"token": token})
    assert client.is_connected()
    return client


def call(client, event: str, payload=None):
    return client.emit(event, payload, callback=True)


def test_a_connection_without_credentials_is_refused(app):
    assert not socketio.test_client(app).is_connected()
    assert not socketio.test_client(app, auth={"token": "forged"}).is_connected()


def test_join_send_history_presence_and_leave(app):
    alice = connect(app)
    assert call(alice, "send", {"room": "lobby", "text": "hi"})["error"]["code"] == "forbidden"
    joined = call(alice, "join", {"room": "lobby"})
    assert joined == {"ok": True, "room": "lobby", "node": "node-t", "members": ["alice"],
                      "missed": [], "truncated": False, "read": None}
    sent = call(alice, "send", {"room": "lobby", "text": "hello", "client_id": "c1"})
    assert sent["ok"] and sent["ts"] == int(sent["id"].split("-")[0])
    again = call(alice, "send", {"room": "lobby", "text": "hello", "client_id": "c1"})
    assert again == sent  # the same client_id stores nothing new
    history = call(alice, "history", {"room": "lobby"})
    assert [m["text"] for m in history["messages"]] == ["hello"]
    resumed = call(connect(app, "bob"), "join", {"room": "lobby", "since": sent["id"]})
    assert resumed["members"] == ["alice", "bob"] and resumed["missed"] == []
    assert call(alice, "presence", {"room": "lobby"})["members"] == ["alice", "bob"]
    assert call(alice, "leave", {"room": "lobby"}) == {"ok": True, "room": "lobby"}
    assert call(alice, "presence", {"room": "lobby"})["members"] == ["bob"]


def test_direct_messages_are_answered_with_an_id_or_not_found(app):
    alice = connect(app)
    answer = call(alice, "direct", {"to": "bob", "text": "psst"})
    assert answer["ok"] and "id" in answer
    assert call(alice, "direct", {"to": "nobody", "text": "x"})["error"]["code"] == "not_found"


@pytest.mark.parametrize(("event", "payload", "code"), [
    ("join", {"room": "no spaces"}, "bad_request"),
    ("join", "lobby", "bad_request"),
    ("join", {"room": "lobby", "since": "not-an-id"}, "bad_request"),
    ("send", {"room": "lobby", "text": "x" * 4001}, "too_large"),
    ("send", {"room": "lobby", "text": ""}, "bad_request"),
    ("direct", {"to": "bob", "text": 5}, "bad_request"),
    ("history", {"room": "lobby", "limit": 0}, "bad_request"),
    ("nonsense", {}, "bad_request"),
    ("disconnect", {}, "bad_request"),  # a client may not call the server's own handlers
])
def test_bad_payloads_get_the_contracts_codes_and_keep_the_connection(app, event, payload, code):
    alice = connect(app)
    answer = call(alice, event, payload)
    assert answer["ok"] is False and answer["error"]["code"] == code, answer
    assert alice.is_connected()
    assert call(alice, "join", {"room": "lobby"})["ok"]


def test_an_expired_connection_is_told_then_ended_unless_refreshed(app, monkeypatch):
    import time

    from itsdangerous import TimestampSigner

    node = app.extensions["node"]
    told = []
    emit = node.server.emit
    monkeypatch.setattr(node.server, "emit", lambda event, data, to, **kwargs: (
        told.append((event, node.connections.get(to).user)), emit(event, data, to=to, **kwargs)))
    signed_at = int(time.time()) - node.signer.ttl_s + 2  # tokens that expire in 2 s
    with monkeypatch.context() as patch:
        patch.setattr(TimestampSigner, "get_timestamp", lambda _s: signed_at)
        expiring = {user: node.signer.issue(user) for user in ("alice", "bob")}
    alice = socketio.test_client(app, auth={"token": expiring["alice"]})
    bob = socketio.test_client(app, auth={"token": expiring["bob"]})
    assert call(alice, "refresh", {"token": node.signer.issue("alice")})["ok"]
    assert call(alice, "refresh", {"token": expiring["alice"]})["ok"]  # never shortens it
    assert node.connections.expire_due(time.time(), node._end_expired) == 0
    assert node.connections.expire_due(signed_at + node.signer.ttl_s + 1, node._end_expired) == 1
    assert alice.is_connected() and not bob.is_connected()
    assert [user for event, user in told if event == "expired"] == ["bob"]
    assert node.connections.expiring() == 1  # alice's, at her refreshed deadline


def test_events_after_the_token_expired_are_unauthorized(app):
    import time

    node = app.extensions["node"]
    alice = connect(app)
    node.connections.get(node.connections.sids()[0]).expires_at = time.time() - 1
    assert call(alice, "join", {"room": "lobby"})["error"]["code"] == "unauthorized"


def test_refresh_refuses_another_users_token_and_keeps_the_connection(app):
    node = app.extensions["node"]
    alice = connect(app)
    before = {sid: node.connections.get(sid).expires_at for sid in node.connections.sids()}
    for token in (node.signer.issue("bob"), node.signer.issue("alice", "some-browser-session")):
        assert call(alice, "refresh", {"token": token})["error"]["code"] == "unauthorized"
    assert {sid: node.connections.get(sid).expires_at for sid in node.connections.sids()} == before
    assert call(alice, "join", {"room": "lobby"})["ok"]
