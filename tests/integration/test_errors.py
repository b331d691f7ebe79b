"""Refused connections and every error code of the contract; the connection keeps working."""

import time

import pytest
import socketio
from itsdangerous import TimestampSigner, URLSafeTimedSerializer

from service.tokens import SALT

from .conftest import SECRET_KEY, Client


def refusal(cluster, **kwargs) -> str:
    """The reason the client's connect_error carries."""
    client = socketio.Client(reconnection=False)
    reasons = []
    client.on("connect_error", reasons.append)
    with pytest.raises(socketio.exceptions.ConnectionError):
        client.connect(cluster.url, transports=["websocket"], wait_timeout=5, **kwargs)
    assert len(reasons) == 1
    return reasons[0]["message"]


def test_connections_without_valid_credentials_are_refused_with_a_reason(cluster, monkeypatch):
    assert "no credentials" in refusal(cluster)
    assert "bad token" in refusal(cluster, auth={"token": "not-a-token"})
    assert "bad token" in refusal(cluster, auth={"token": 42})
    assert "auth must be an object" in refusal(cluster, auth="just-a-string")
    forged = URLSafeTimedSerializer("some-other-secret-key", salt=SALT).dumps({"u": "alice"})
    assert "bad token" in refusal(cluster, auth={"token": forged})
    monkeypatch.setattr(TimestampSigner, "get_timestamp", lambda _s: int(time.time()) - 10**6)
    expired = URLSafeTimedSerializer(SECRET_KEY, salt=SALT).dumps({"u": "alice"})
    monkeypatch.undo()
    assert "token expired" in refusal(cluster, auth={"token": expired})


def error_code(client: Client, event: str, payload=None) -> str:
    answer = client.call(event, payload)
    assert answer["ok"] is False, answer
    assert set(answer["error"]) == {"code", "message"} and answer["error"]["message"]
    return answer["error"]["code"]


BAD_REQUESTS = [
    ("join", None), ("join", "lobby"), ("join", [1, 2]), ("join", {}), ("join", {"room": ""}),
    ("join", {"room": "no spaces"}), ("join", {"room": "x" * 65}), ("join", {"room": 7}),
    ("join", {"room": "ok", "since": "yesterday"}), ("leave", {"room": None}),
    ("send", {"room": "ok"}), ("send", {"room": "ok", "text": ""}),
    ("send", {"room": "ok", "text": {"nested": 1}}), ("send", {"room": "ok", "text": "x",
                                                               "client_id": "c" * 65}),
    ("direct", {"to": "x", "text": "hi"}), ("direct", {"text": "hi"}),
    ("presence", {"room": "bad room"}), ("history", {"room": "ok", "limit": 0}),
    ("history", {"room": "ok", "before": "not-an-id"}), ("history", {"room": "ok", "limit": "x"}),
    ("no-such-event", {"room": "ok"}),
]


def test_each_bad_input_gets_its_code_and_the_connection_keeps_working(users, room, nodes):
    _name, client = users.user_on(nodes[0])
    _, other = users.user_on(nodes[1])
    for client_ in (client, other):
        client_.ok("join", {"room": room})
    for event, payload in BAD_REQUESTS:
        assert error_code(client, event, payload) == "bad_request", (event, payload)
    assert error_code(client, "send", {"room": room, "text": "x" * 4001}) == "too_large"
    assert error_code(client, "send", {"room": "never-joined", "text": "hi"}) == "forbidden"
    assert error_code(client, "direct", {"to": "nobody-at-all", "text": "hi"}) == "not_found"
    assert error_code(client, "send", {"room": room, "text": "\ud800"}) == "bad_request"

    ack = client.ok("send", {"room": room, "text": "still here"})
    assert other.take("message", 1)[0]["id"] == ack["id"]
    assert client.ok("history", {"room": room})["messages"][-1]["text"] == "still here"
    assert client.sio.connected and other.sio.connected
