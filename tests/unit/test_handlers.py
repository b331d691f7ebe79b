"""The handlers (service/realtime/namespace.py) driven directly, with python-socketio's real
Server and local membership, and the in-memory Broker (memory_broker.py): what every event
answers and what reaches which connection, exactly. The Redis Broker is the cluster suites'."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
import socketio
from flask import Flask
from flask_login import LoginManager
from socketio.exceptions import ConnectionRefusedError as Refused
from werkzeug.test import EnvironBuilder

from service.app_tokens import AppTokens
from service.bus import channels
from service.realtime.connections import Connections
from service.realtime.manager import NAMESPACE, RoomsManager
from service.realtime.metrics import Metrics
from service.realtime.namespace import Limits, RoomsNamespace
from service.tokens import TokenSigner
from tests.unit.memory_broker import MemoryBroker

NODE = "node-t"


class Socket:
    """A connection's Engine.IO socket: it records the Socket.IO events sent to it."""

    def __init__(self) -> None:
        self.events: list[tuple[str, Any]] = []
        self.closed = False

    def send(self, packet) -> None:
        data = packet.encode()
        text = data.decode() if isinstance(data, bytes) else data
        if text.startswith("42"):
            name, *args = json.loads(text[2:])
            self.events.append((name, args[0] if args else None))

    def close(self, *_args, **_kwargs) -> None:
        self.closed = True


class Client:
    def __init__(self, harness: Harness, sid: str, socket: Socket):
        self.harness, self.sid, self.socket = harness, sid, socket

    def call(self, event: str, payload: Any = None) -> dict[str, Any]:
        return self.harness.namespace.trigger_event(event, self.sid, payload)

    def ok(self, event: str, payload: Any = None) -> dict[str, Any]:
        answer = self.call(event, payload)
        assert answer.get("ok") is True, answer
        return answer

    def got(self, name: str) -> list[Any]:
        return [data for event, data in self.socket.events if event == name]

    @property
    def connected(self) -> bool:
        return self.harness.connections.get(self.sid) is not None


class Harness:
    def __init__(self, limits: Limits, *, app_tokens: AppTokens | None = None,
                 own_accounts: bool = True, hooks: Any = None, join_hook_cache_s: int = 0,
                 default_private: bool = False):
        self.app = Flask(__name__)
        self.app.config.update(SECRET_KEY="test-secret-key-long", SESSION_COOKIE_NAME="rooms")
        LoginManager(self.app).user_loader(lambda _name: None)  # no browser session here
        self.broker = MemoryBroker(NODE, users={"alice", "bob", "carol"},
                                   default_private=default_private,
                                   app_users=app_tokens is not None)
        self.manager = RoomsManager(self.broker.subscribe, self.broker.unsubscribe)
        self.server = socketio.Server(client_manager=self.manager, async_mode="threading")
        self.connections = Connections()
        self.signer = TokenSigner("test-secret-key-long", 3600)
        self.namespace = RoomsNamespace(
            app=self.app, node=NODE, broker=self.broker, manager=self.manager,
            connections=self.connections, signer=self.signer, metrics=Metrics(), limits=limits,
            spawn=lambda target, *args, **kwargs: target(*args, **kwargs),
            app_tokens=app_tokens, own_accounts=own_accounts, hooks=hooks,
            join_hook_cache_s=join_hook_cache_s)
        self.server.register_namespace(self.namespace)
        self.broker.deliver = self.manager.deliver
        self.broker.on_control = self.on_control
        self.server.disconnect = self.disconnect  # type: ignore[method-assign]
        self._next = 0

    def on_control(self, body: dict[str, Any]) -> None:
        self.namespace.on_control(body)

    def connect(self, user: str | None = "alice", auth: Any = "token") -> Client:
        self._next += 1
        eio_sid = f"eio-{self._next}"
        sid = self.manager.connect(eio_sid, NAMESPACE)
        socket = self.server.eio.sockets[eio_sid] = Socket()
        environ = EnvironBuilder(path="/socket.io/").get_environ()
        if auth == "token":
            auth = {"token": self.signer.issue(user)} if user else None
        try:
            self.namespace.trigger_event("connect", sid, environ, auth)
        except Refused:
            self.manager.disconnect(sid, NAMESPACE)
            raise
        return Client(self, sid, socket)

    def disconnect(self, sid: str, namespace: str | None = None, **_kwargs: Any) -> None:
        """The server ending a connection: its disconnect handler, then the membership."""
        self.namespace.trigger_event("disconnect", sid, "server disconnect")
        self.manager.disconnect(sid, NAMESPACE)


@pytest.fixture
def harness() -> Harness:
    return Harness(Limits(max_text_chars=4000, rate_per_s=1000, burst=1000))


def test_a_connection_without_credentials_is_refused(harness):
    for auth in (None, {"token": "forged"}, "not an object"):
        with pytest.raises(Refused):
            harness.connect(None, auth=auth)
    assert len(harness.connections) == 0 and harness.manager.rooms.get(NAMESPACE, {}) == {}


def test_a_connection_is_welcomed_and_serves_its_users_channel(harness):
    alice = harness.connect("alice")
    assert alice.got("welcome") == [{"user": "alice", "node": NODE, "sid": alice.sid}]
    assert harness.broker.served == {"user:{alice}:ch"}


def test_a_connection_is_reached_by_its_sid_without_a_room_of_its_own(harness):
    alice, bob = harness.connect("alice"), harness.connect("bob")
    table = harness.manager.rooms[NAMESPACE]
    assert alice.sid not in table and bob.sid not in table  # python-socketio's sid rooms
    harness.server.emit("notice", {"n": 1}, to=alice.sid, namespace=NAMESPACE)
    assert alice.got("notice") == [{"n": 1}] and bob.got("notice") == []
    alice.ok("join", {"room": "lobby"})
    assert harness.namespace.rooms_of(alice.sid) == ["lobby"]
    harness.disconnect(alice.sid)
    assert harness.manager.get_rooms(alice.sid, NAMESPACE) == []
    assert harness.manager.connections_in(channels.socketio_room("lobby")) == []


def test_join_send_history_presence_and_leave(harness):
    alice = harness.connect("alice")
    assert alice.call("send", {"room": "lobby", "text": "hi"})["error"]["code"] == "forbidden"
    joined = alice.ok("join", {"room": "lobby"})
    assert joined == {"ok": True, "room": "lobby", "node": NODE, "members": ["alice"],
                      "missed": [], "truncated": False, "read": None}
    sent = alice.ok("send", {"room": "lobby", "text": "hello", "client_id": "c1"})
    assert sent["ts"] == int(sent["id"].split("-")[0])
    assert alice.ok("send", {"room": "lobby", "text": "hello", "client_id": "c1"}) == sent
    assert [m["id"] for m in alice.got("message")] == [sent["id"]]  # one, the sender's too
    assert [m["text"] for m in alice.ok("history", {"room": "lobby"})["messages"]] == ["hello"]
    bob = harness.connect("bob")
    resumed = bob.ok("join", {"room": "lobby", "since": sent["id"]})
    assert resumed["members"] == ["alice", "bob"] and resumed["missed"] == []
    assert alice.got("presence") == [{"room": "lobby", "user": user, "action": "join"}
                                     for user in ("alice", "bob")]
    assert alice.ok("presence", {"room": "lobby"})["members"] == ["alice", "bob"]
    assert alice.ok("leave", {"room": "lobby"}) == {"ok": True, "room": "lobby"}
    assert alice.ok("presence", {"room": "lobby"})["members"] == ["bob"]
    assert bob.got("presence")[-1] == {"room": "lobby", "user": "alice", "action": "leave"}


def test_a_resuming_join_gets_what_it_missed_once_and_later_messages_live(harness):
    alice, bob = harness.connect("alice"), harness.connect("bob")
    alice.ok("join", {"room": "lobby"})
    first = alice.ok("send", {"room": "lobby", "text": "one"})["id"]
    missed = [alice.ok("send", {"room": "lobby", "text": f"m{n}"})["id"] for n in range(3)]
    answer = bob.ok("join", {"room": "lobby", "since": first})
    assert [m["id"] for m in answer["missed"]] == missed
    later = alice.ok("send", {"room": "lobby", "text": "later"})["id"]
    assert [m["id"] for m in bob.got("message")] == [later]


def test_the_last_connection_in_a_room_leaving_ends_its_subscription(harness):
    alice = harness.connect("alice")
    alice.ok("join", {"room": "lobby"})
    assert "room:{lobby}:ch" in harness.broker.served
    alice.ok("leave", {"room": "lobby"})
    assert "room:{lobby}:ch" not in harness.broker.served


def test_direct_messages_reach_the_recipient_and_the_senders_other_connections(harness):
    alice, alice_phone, bob = (harness.connect("alice"), harness.connect("alice"),
                               harness.connect("bob"))
    answer = alice.ok("direct", {"to": "bob", "text": "psst", "client_id": "d1"})
    assert [m["id"] for m in bob.got("direct")] == [answer["id"]]
    assert [m["id"] for m in alice_phone.got("direct")] == [answer["id"]]
    assert alice.got("direct") == []  # the sending connection has the answer
    assert alice.call("direct", {"to": "nobody", "text": "x"})["error"]["code"] == "not_found"
    assert [m["id"] for m in bob.ok("inbox", {})["messages"]] == [answer["id"]]
    (talk,) = bob.ok("conversations", {})["conversations"]
    assert (talk["with"], talk["unread"]) == ("alice", 1)
    assert bob.ok("direct_history", {"with": "alice"})["messages"][0]["text"] == "psst"
    assert bob.ok("read", {"with": "alice", "id": answer["id"]})["id"] == answer["id"]
    assert bob.ok("conversations", {})["conversations"][0]["unread"] == 0


def test_leaving_on_one_device_takes_the_users_other_connections_out(harness):
    laptop, phone = harness.connect("alice"), harness.connect("alice")
    for device in (laptop, phone):
        device.ok("join", {"room": "lobby"})
    laptop.ok("leave", {"room": "lobby"})
    assert phone.call("send", {"room": "lobby", "text": "x"})["error"]["code"] == "forbidden"
    assert harness.broker.present("lobby") == []


def test_typing_reaches_the_others_and_is_limited(harness):
    alice, bob = harness.connect("alice"), harness.connect("bob")
    for client in (alice, bob):
        client.ok("join", {"room": "lobby"})
    assert alice.ok("typing", {"room": "lobby"}) == {"ok": True}
    assert alice.call("typing", {"room": "lobby"})["error"]["code"] == "rate_limited"
    assert alice.call("typing", {"room": "elsewhere"})["error"]["code"] == "forbidden"
    assert bob.got("typing") == [{"room": "lobby", "user": "alice"}]
    assert alice.got("typing") == []


def test_read_positions_move_forwards_and_tell_the_users_other_devices(harness):
    laptop, phone, bob = (harness.connect("alice"), harness.connect("alice"),
                          harness.connect("bob"))
    for client in (laptop, phone, bob):
        client.ok("join", {"room": "lobby"})
    ids = [bob.ok("send", {"room": "lobby", "text": f"m{n}"})["id"] for n in range(3)]
    assert laptop.ok("rooms", {})["rooms"] == [{"room": "lobby", "unread": 3,
                                               "last_id": ids[-1]}]
    assert laptop.ok("read", {"room": "lobby", "id": ids[1]})["id"] == ids[1]
    assert laptop.ok("read", {"room": "lobby", "id": ids[0]})["id"] == ids[1]  # not back
    assert phone.got("read") == [{"room": "lobby", "id": ids[1]}]
    assert laptop.got("read") == []
    assert phone.ok("rooms", {})["rooms"][0]["unread"] == 1


@pytest.mark.parametrize(("event", "payload", "code"), [
    ("join", {"room": "no spaces"}, "bad_request"),
    ("join", "lobby", "bad_request"),
    ("join", {"room": "lobby", "since": "not-an-id"}, "bad_request"),
    ("send", {"room": "lobby", "text": "x" * 4001}, "too_large"),
    ("send", {"room": "lobby", "text": ""}, "bad_request"),
    ("direct", {"to": "bob", "text": 5}, "bad_request"),
    ("history", {"room": "lobby", "limit": 0}, "bad_request"),
    ("nonsense", {}, "bad_request"),
    ("reserved:disconnect", {}, "bad_request"),  # a client may not call the server's own
])
def test_bad_payloads_get_the_contracts_codes_and_keep_the_connection(harness, event, payload,
                                                                     code):
    alice = harness.connect("alice")
    answer = alice.call(event, payload)
    assert answer["ok"] is False and answer["error"]["code"] == code, answer
    assert alice.connected and alice.ok("join", {"room": "lobby"})


def test_a_flooding_connection_is_limited_then_cut_off():
    harness = Harness(Limits(max_text_chars=4000, rate_per_s=0.001, burst=3))
    flooder, bystander = harness.connect("alice"), harness.connect("bob")
    codes = [flooder.call("presence", {"room": "lobby"}).get("error", {}).get("code", "ok")
             for _ in range(10)]
    # more than a burst refused within the window: cut off, and no longer connected
    assert codes == ["ok"] * 3 + ["rate_limited"] * 4 + ["unauthorized"] * 3
    assert not flooder.connected
    assert bystander.ok("presence", {"room": "lobby"})


def test_an_expired_connection_is_told_then_ended_unless_refreshed(harness, monkeypatch):
    from itsdangerous import TimestampSigner

    signed_at = int(time.time()) - harness.signer.ttl_s + 2  # tokens that expire in 2 s
    with monkeypatch.context() as patch:
        patch.setattr(TimestampSigner, "get_timestamp", lambda _s: signed_at)
        expiring = {user: harness.signer.issue(user) for user in ("alice", "bob")}
    alice = harness.connect("alice", auth={"token": expiring["alice"]})
    bob = harness.connect("bob", auth={"token": expiring["bob"]})
    assert alice.ok("refresh", {"token": harness.signer.issue("alice")})
    assert alice.ok("refresh", {"token": expiring["alice"]})  # never shortens it
    told = []

    def end(sid: str, reason: str) -> None:
        told.append(sid)
        harness.server.emit("expired", {"reason": reason}, to=sid, namespace=NAMESPACE)
        harness.disconnect(sid)

    assert harness.connections.expire_due(time.time(), end) == 0
    assert harness.connections.expire_due(signed_at + harness.signer.ttl_s + 1, end) == 1
    assert told == [bob.sid] and alice.connected and not bob.connected
    assert bob.got("expired") and harness.connections.expiring() == 1


def test_events_after_the_token_expired_are_unauthorized(harness):
    alice = harness.connect("alice")
    harness.connections.get(alice.sid).expires_at = time.time() - 1
    assert alice.call("join", {"room": "lobby"})["error"]["code"] == "unauthorized"


def test_refresh_refuses_another_users_token_and_keeps_the_connection(harness):
    alice = harness.connect("alice")
    before = harness.connections.get(alice.sid).expires_at
    for token in (harness.signer.issue("bob"), harness.signer.issue("alice", "a-browser")):
        assert alice.call("refresh", {"token": token})["error"]["code"] == "unauthorized"
    assert harness.connections.get(alice.sid).expires_at == before
    assert alice.ok("join", {"room": "lobby"})


def test_a_disconnect_ends_presence_and_the_subscriptions_it_alone_needed(harness):
    alice, bob = harness.connect("alice"), harness.connect("bob")
    alice.ok("join", {"room": "lobby"})
    bob.ok("join", {"room": "lobby"})
    harness.disconnect(alice.sid)
    assert harness.broker.present("lobby") == ["bob"]
    assert "user:{alice}:ch" not in harness.broker.served
    assert "room:{lobby}:ch" in harness.broker.served  # bob is still here
