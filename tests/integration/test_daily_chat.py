"""The contract's second edition across nodes: safe retries, direct conversations, membership
and read positions, typing, refresh and expiry (PROTOCOL.md, "Additions")."""

from __future__ import annotations

import queue
import time
import uuid
from unittest.mock import ANY

import pytest
from itsdangerous import TimestampSigner, URLSafeTimedSerializer

from service.primitives.ids import parse_id
from service.tokens import SALT
from tests.waiting import wait_for

from .conftest import SECRET_KEY, TEST_ENV, Client

TOKEN_TTL_S = int(TEST_ENV.get("TOKEN_TTL_S", 12 * 3600))


def token_expiring_in(user: str, seconds: float, monkeypatch) -> str:
    """A genuine token of `user`, signed as if issued long enough ago to expire in `seconds`."""
    signed_at = int(time.time() + seconds) - TOKEN_TTL_S
    monkeypatch.setattr(TimestampSigner, "get_timestamp", lambda _s: signed_at)
    token = URLSafeTimedSerializer(SECRET_KEY, salt=SALT).dumps({"u": user})
    monkeypatch.undo()
    return token


def failure(client: Client, event: str, payload) -> str:
    answer = client.call(event, payload)
    assert answer["ok"] is False, answer
    return answer["error"]["code"]


# ---- sending twice is safe ----------------------------------------------------------------------


@pytest.mark.redis_cluster
def test_a_send_retried_on_another_node_answers_the_first_and_delivers_once(users, room, nodes):
    name, token = users.register()
    first_device = users.connect(token, nodes[0])
    retrying_device = users.connect(token, nodes[1])
    _, member = users.user_on(nodes[2])
    for client in (first_device, retrying_device, member):
        client.ok("join", {"room": room})
    client_id = "retry-" + uuid.uuid4().hex
    first = first_device.ok("send", {"room": room, "text": "once", "client_id": client_id})
    first_device.close()  # the ack may have been lost with this connection
    again = retrying_device.ok("send", {"room": room, "text": "once", "client_id": client_id})
    assert (again["id"], again["ts"]) == (first["id"], first["ts"])
    other = member.ok("send", {"room": room, "text": "next"})
    received = member.take("message", 2)
    assert [m["id"] for m in received] == [first["id"], other["id"]]
    assert [m["text"] for m in users.history(room)] == ["once", "next"]
    assert name == received[0]["user"]


@pytest.mark.redis_cluster
def test_a_direct_retried_on_another_node_is_stored_and_delivered_once(users, nodes):
    _sender, token = users.register()
    first_device = users.connect(token, nodes[0])
    retrying_device = users.connect(token, nodes[1])
    recipient, inbox = users.user_on(nodes[2])
    client_id = "d-" + uuid.uuid4().hex
    payload = {"to": recipient, "text": "only once", "client_id": client_id}
    first = first_device.ok("direct", payload)
    again = retrying_device.ok("direct", payload)
    assert (again["id"], again["ts"]) == (first["id"], first["ts"])
    assert [m["text"] for m in inbox.take("direct", 1)] == ["only once"]
    assert inbox.ok("direct_history", {"with": _sender})["messages"][-1]["client_id"] == client_id
    assert len(inbox.ok("inbox", {})["messages"]) == 1


@pytest.mark.redis_cluster
def test_the_same_client_id_in_another_room_is_another_message(users, room, nodes):
    _, client = users.user_on(nodes[0])
    client.ok("join", {"room": room})
    client.ok("join", {"room": room + "-b"})
    client.ok("send", {"room": room, "text": "a", "client_id": "same"})
    client.ok("send", {"room": room + "-b", "text": "b", "client_id": "same"})
    assert [m["text"] for m in users.history(room)] == ["a"]
    assert [m["text"] for m in users.history(room + "-b")] == ["b"]


# ---- direct conversations -----------------------------------------------------------------------


@pytest.mark.redis_cluster
def test_inbox_resumes_after_since_without_repeating_what_was_delivered(users, nodes):
    alice, alice_token = users.register()
    bob, bob_client = users.user_on(nodes[1])
    alice_client = users.connect(alice_token, nodes[0])
    ids = [bob_client.ok("direct", {"to": alice, "text": f"m{n}"})["id"] for n in range(3)]
    seen = alice_client.take("direct", 3)
    alice_client.close()
    later = [bob_client.ok("direct", {"to": alice, "text": f"late{n}"}) for n in range(2)]
    back = users.connect(alice_token, nodes[2])
    answer = back.ok("inbox", {"since": seen[-1]["id"]})
    assert [m["text"] for m in answer["messages"]] == ["late0", "late1"]
    assert answer["truncated"] is False
    assert [m["from"] for m in answer["messages"]] == [bob, bob]
    assert ids == [m["id"] for m in seen] and len(later) == 2
    newest = back.ok("inbox", None)["messages"]
    assert [m["text"] for m in newest] == ["m0", "m1", "m2", "late0", "late1"]
    assert back.until_marker(bob_client.mark_user(alice)) == []  # nothing twice


@pytest.mark.redis_cluster
def test_direct_history_pages_back_through_one_conversation(users, nodes):
    alice, alice_client = users.user_on(nodes[0])
    bob, bob_client = users.user_on(nodes[1])
    _carol, carol_client = users.user_on(nodes[2])
    for n in range(4):
        bob_client.ok("direct", {"to": alice, "text": f"bob{n}"})
        carol_client.ok("direct", {"to": alice, "text": f"carol{n}"})
    alice_client.ok("direct", {"to": bob, "text": "reply"})
    page = alice_client.ok("direct_history", {"with": bob, "limit": 3})
    assert page["with"] == bob
    assert [m["text"] for m in page["messages"]] == ["bob2", "bob3", "reply"]
    older = alice_client.ok("direct_history", {"with": bob, "before": page["messages"][0]["id"]})
    assert [m["text"] for m in older["messages"]] == ["bob0", "bob1"]
    bobs = bob_client.ok("direct_history", {"with": alice})["messages"]
    assert [m["text"] for m in bobs] == ["bob0", "bob1", "bob2", "bob3", "reply"]
    assert failure(alice_client, "direct_history", {"with": "nobody" + uuid.uuid4().hex[:8]}) \
        == "not_found"
    assert [m["text"] for m in carol_client.ok("direct_history", {"with": alice})["messages"]] \
        == [f"carol{n}" for n in range(4)]


@pytest.mark.redis_cluster
def test_conversations_and_their_unread_are_the_same_on_every_device(users, nodes):
    alice, alice_token = users.register()
    phone = users.connect(alice_token, nodes[0])
    laptop = users.connect(alice_token, nodes[1])
    for device in (phone, laptop):
        device.listen("read")
    bob, bob_client = users.user_on(nodes[2])
    carol, carol_client = users.user_on(nodes[2])
    for n in range(3):
        bob_client.ok("direct", {"to": alice, "text": f"b{n}"})
    carol_client.ok("direct", {"to": alice, "text": "from carol"})
    phone.ok("direct", {"to": bob, "text": "mine is not unread"})
    expected = [(bob, 3, "mine is not unread"), (carol, 1, "from carol")]

    def listed(client: Client):
        return [(c["with"], c["unread"], c["last"]["text"])
                for c in client.ok("conversations", {})["conversations"]]

    assert listed(phone) == listed(laptop) == expected
    second_from_bob = phone.ok("direct_history", {"with": bob})["messages"][1]
    answer = phone.ok("read", {"with": bob, "id": second_from_bob["id"]})
    assert answer["id"] == second_from_bob["id"]
    assert laptop.take("read", 1)[0] == {"with": bob, "id": second_from_bob["id"]}
    assert listed(laptop)[0] == (bob, 1, "mine is not unread")
    assert listed(users.connect(alice_token, nodes[2]))[0][1] == 1  # a new device too
    # only the other devices hear of it: `read` goes on alice's channel, as directs to her do
    assert phone.until_marker(bob_client.mark_user(alice), "read") == []


# ---- membership and read positions --------------------------------------------------------------


@pytest.mark.redis_cluster
def test_rooms_are_kept_across_connections_until_left(users, room, nodes):
    _name, token = users.register()
    first = users.connect(token, nodes[0])
    first.ok("join", {"room": room})
    assert first.ok("join", {"room": room + "-2"})["read"] is None
    first.close()
    other_device = users.connect(token, nodes[1])
    listed = other_device.ok("rooms", {})["rooms"]
    assert [r["room"] for r in listed] == sorted([room, room + "-2"])
    other_device.ok("leave", {"room": room + "-2"})  # never joined on this connection
    assert [r["room"] for r in other_device.ok("rooms", None)["rooms"]] == [room]


@pytest.mark.redis_cluster
def test_leaving_on_one_device_leaves_the_room_on_every_device(users, room, nodes):
    # named like the room: a direct to the user is a marker for the room's channel too
    user, token = users.register(name=room)
    phone = users.connect(token, nodes[0])
    laptop = users.connect(token, nodes[1])
    _, writer = users.user_on(nodes[2])
    for client in (phone, laptop, writer):
        client.ok("join", {"room": room})
    phone.ok("leave", {"room": room})
    wait_for(lambda: failure(laptop, "send", {"room": room, "text": "still in?"}) == "forbidden",
             what="the laptop leaving too")
    writer.ok("send", {"room": room, "text": "after the leave"})
    assert laptop.until_marker(writer.mark_user(user), "message") == []
    assert laptop.ok("rooms", {})["rooms"] == []


@pytest.mark.redis_cluster
def test_unread_counts_follow_the_read_position_on_every_node(users, room, nodes):
    _reader, token = users.register()
    device_a = users.connect(token, nodes[0])
    device_b = users.connect(token, nodes[1])
    device_b.listen("read")
    _, writer = users.user_on(nodes[2])
    for client in (device_a, writer):
        client.ok("join", {"room": room})
    ids = [writer.ok("send", {"room": room, "text": f"m{n}"})["id"] for n in range(4)]
    device_a.ok("send", {"room": room, "text": "my own"})

    def state(client: Client):
        return next(r for r in client.ok("rooms", {})["rooms"] if r["room"] == room)

    assert state(device_a)["unread"] == state(device_b)["unread"] == 4
    device_a.ok("read", {"room": room, "id": ids[2]})
    assert device_b.take("read", 1)[0] == {"room": room, "id": ids[2]}
    assert state(device_b)["unread"] == 1
    assert parse_id(state(device_b)["last_id"]) > parse_id(ids[-1])  # my own is the newest
    device_a.ok("read", {"room": room, "id": ids[0]})  # backwards: nothing moves
    assert state(device_b)["unread"] == 1
    assert device_b.ok("join", {"room": room})["read"] == ids[2]


def test_reading_a_room_i_am_not_a_member_of_is_forbidden(users, room, nodes):
    _, writer = users.user_on(nodes[0])
    writer.ok("join", {"room": room})
    sent = writer.ok("send", {"room": room, "text": "private"})
    _, outsider = users.user_on(nodes[1])
    assert failure(outsider, "read", {"room": room, "id": sent["id"]}) == "forbidden"
    assert failure(outsider, "read", {"with": "nobody" + uuid.uuid4().hex[:8],
                                      "id": sent["id"]}) == "not_found"
    assert outsider.sio.connected


# ---- typing -------------------------------------------------------------------------------------


def test_typing_reaches_the_other_members_is_rate_limited_and_not_stored(users, room, nodes):
    typist_name, typist = users.user_on(nodes[0])
    _, watcher = users.user_on(nodes[1])
    for client in (typist, watcher):
        client.listen("typing")
        client.ok("join", {"room": room})
    answers: queue.Queue = queue.Queue()
    for _ in range(2):  # back to back, without waiting for the first answer (however slow the
        typist.sio.emit("typing", {"room": room}, callback=answers.put)  # machine, < 1 s apart)
    assert [answers.get(timeout=10) for _ in range(2)] == [
        {"ok": True}, {"ok": False, "error": {"code": "rate_limited", "message": ANY}}]
    assert watcher.take("typing", 1)[0] == {"room": room, "user": typist_name}
    assert failure(typist, "typing", {"room": room + "-elsewhere"}) == "forbidden"
    wait_for(lambda: typist.call("typing", {"room": room})["ok"], what="typing allowed again")
    assert watcher.take("typing", 1)[0]["user"] == typist_name
    assert users.history(room) == []
    assert typist.until_marker(watcher.mark_room(room), "typing") == []  # not to the one typing


# ---- long-lived connections ---------------------------------------------------------------------


def test_a_refreshed_connection_outlives_its_first_token(users, room, nodes, monkeypatch):
    name, refresh_token = users.register()
    client = users.connect(token_expiring_in(name, 3, monkeypatch), nodes[0])
    # never refreshed, and expiring after the client's first token: a node ends connections
    # soonest deadline first (service/realtime/expiry.py), so when the witness is told, the
    # node is past the client's first deadline and would have told the client before
    witness = users.connect(token_expiring_in(name, 4, monkeypatch), nodes[0])
    for connection in (client, witness):
        connection.listen("expired")
    client.ok("join", {"room": room})
    answer = client.ok("refresh", {"token": refresh_token})
    assert TOKEN_TTL_S - 60 <= answer["expires_in"] <= TOKEN_TTL_S
    witness.take("expired", 1, timeout=10)
    wait_for(lambda: not witness.sio.connected, what="the witness's disconnect")
    # the answer comes on the client's connection after anything the node sent it before
    assert client.ok("send", {"room": room, "text": "still here"})
    assert client.sio.connected and client.arrived("expired") == []


def test_an_unrefreshed_connection_is_told_and_disconnected(users, room, nodes, monkeypatch):
    name, _ = users.register()
    client = users.connect(token_expiring_in(name, 2, monkeypatch), nodes[1])
    client.listen("expired")
    client.ok("join", {"room": room})
    notice = client.take("expired", 1, timeout=10)[0]
    assert "expired" in notice["reason"]
    wait_for(lambda: not client.sio.connected, what="the disconnect after expired")


def test_refresh_with_a_wrong_token_is_unauthorized_and_changes_nothing(users, room, nodes,
                                                                       monkeypatch):
    name, _ = users.register()
    _, someone_elses = users.register()
    client = users.connect(token_expiring_in(name, 60, monkeypatch), nodes[2])
    client.ok("join", {"room": room})
    assert failure(client, "refresh", {"token": someone_elses}) == "unauthorized"
    expired = token_expiring_in(name, -5, monkeypatch)
    assert failure(client, "refresh", {"token": expired}) == "unauthorized"
    assert failure(client, "refresh", {"token": "garbage"}) == "unauthorized"
    assert failure(client, "refresh", {}) == "bad_request"
    assert failure(client, "refresh", None) == "bad_request"
    assert client.ok("send", {"room": room, "text": "as it was"})
    assert client.sio.connected


@pytest.mark.parametrize("event,payload", [
    ("inbox", {"since": "yesterday"}), ("inbox", "x"), ("direct_history", {}),
    ("direct_history", {"with": "a b"}), ("direct_history", {"with": "bob", "limit": 0}),
    ("direct_history", {"with": "bob", "before": "x"}), ("conversations", []),
    ("rooms", "all"), ("read", {}), ("read", {"room": "ok"}), ("read", {"room": "ok", "id": 5}),
    ("read", {"room": "ok", "with": "bob", "id": "1-0"}), ("read", {"with": "x", "id": "1-0"}),
    ("typing", {}), ("typing", {"room": "bad room"}), ("refresh", {"token": 7}),
])
def test_bad_payloads_of_the_new_events_are_bad_requests(users, nodes, event, payload):
    _, client = users.user_on(nodes[0])
    assert failure(client, event, payload) == "bad_request"
    assert client.ok("rooms", {})["rooms"] == []
