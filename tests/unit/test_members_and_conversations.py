"""Membership, read positions, unread counts and direct conversations against a real
redis-server (service/store/members.py, conversations.py)."""

from __future__ import annotations

import pytest

from service.errors import ServiceError
from service.primitives.ids import parse_id
from service.store import keys


def account(client, *names: str) -> None:
    for name in names:
        client.hset(keys.account(name), "pw", "hash")


def join(store, room: str, user: str, sid: str = "s1"):
    store.members.add(user, room)
    return store.presence.join(room, user, sid, member=True)


# ---- rooms ------------------------------------------------------------------------------------


def test_a_member_stays_one_across_disconnects_until_it_leaves(store):
    join(store, "lobby", "alice")
    store.presence.leave("lobby", "alice", "s1")  # a disconnect
    assert [r.room for r in store.members.rooms("alice")] == ["lobby"]
    store.members.leave("lobby", "alice")
    assert store.members.rooms("alice") == []
    assert not store.members.is_member("lobby", "alice")


def test_unread_counts_others_messages_after_joining_then_after_the_read_position(store):
    store.messages.publish("lobby", "bob", "before alice joined", None)
    joined = join(store, "lobby", "alice")
    assert joined.read is None
    assert store.members.rooms("alice")[0].unread == 0
    ids = [store.messages.publish("lobby", "bob", f"m{n}", None).id for n in range(3)]
    store.messages.publish("lobby", "alice", "mine does not count", None)
    state = store.members.rooms("alice")[0]
    assert state.unread == 3
    moved = store.members.read("lobby", "alice", ids[1])
    assert moved == (ids[1], True)
    assert store.members.rooms("alice")[0].unread == 1
    assert join(store, "lobby", "alice", "s2").read == ids[1]


def test_a_read_position_never_moves_backwards_nor_past_the_newest(store):
    join(store, "lobby", "alice")
    first, second = (store.messages.publish("lobby", "bob", t, None).id for t in ("a", "b"))
    assert store.members.read("lobby", "alice", second) == (second, True)
    assert store.members.read("lobby", "alice", first) == (second, False)
    future = f"{parse_id(second)[0] + 10_000}-0"
    assert store.members.read("lobby", "alice", future) == (second, False)
    third = store.messages.publish("lobby", "bob", "c", None).id
    assert store.members.read("lobby", "alice", future) == (third, True)
    assert store.members.rooms("alice")[0].last_id == third


def test_reading_a_room_one_is_not_a_member_of_is_forbidden(store):
    store.messages.publish("lobby", "bob", "a", None)
    with pytest.raises(ServiceError) as refused:
        store.members.read("lobby", "mallory", "1-0")
    assert refused.value.code == "forbidden"


def test_reading_an_empty_room_keeps_no_position(store):
    join(store, "quiet", "alice")
    assert store.members.read("quiet", "alice", "5-0") == (None, False)
    assert store.members.rooms("alice")[0].unread == 0


def test_unread_counts_stop_at_their_cap(store, monkeypatch):
    from service.store import members

    monkeypatch.setattr(members, "UNREAD_MAX", 250)
    join(store, "busy", "alice")
    for n in range(260):
        store.messages.publish("busy", "bob", f"m{n}", None)
    assert store.members.rooms("alice")[0].unread == 250


# ---- conversations ------------------------------------------------------------------------------


def test_every_direct_message_is_in_both_users_conversation_with_their_inbox_ids(store, client):
    account(client, "alice", "bob")
    first = store.messages.direct("alice", "bob", "hi", None, "n|s")
    store.messages.direct("bob", "alice", "hello", None, "n|t")
    alice_view = store.conversations.history("alice", "bob", None, 50)
    bob_view = store.conversations.history("bob", "alice", None, 50)
    assert [m["text"] for m in alice_view] == ["hi", "hello"] == [m["text"] for m in bob_view]
    alice_inbox = [entry[0] for entry in client.xrange(keys.inbox("alice"))]
    assert [m["id"] for m in alice_view] == alice_inbox
    assert alice_view[0]["id"] == first.id
    assert alice_view[0] | {"id": None, "ts": None} == {
        "id": None, "ts": None, "from": "alice", "to": "bob", "text": "hi", "node": "node-a"}


def test_direct_history_pages_backwards_and_keeps_conversations_apart(store, client):
    account(client, "alice", "bob", "carol")
    for n in range(5):
        store.messages.direct("bob", "alice", f"b{n}", None, "n|s")
        store.messages.direct("carol", "alice", f"c{n}", None, "n|s")
    newest = store.conversations.history("alice", "bob", None, 2)
    assert [m["text"] for m in newest] == ["b3", "b4"]
    older = store.conversations.history("alice", "bob", newest[0]["id"], 10)
    assert [m["text"] for m in older] == ["b0", "b1", "b2"]


def test_direct_history_with_an_unknown_user_is_not_found(store, client):
    account(client, "alice")
    with pytest.raises(ServiceError) as refused:
        store.conversations.history("alice", "nobody", None, 50)
    assert refused.value.code == "not_found"
    assert store.conversations.history("alice", "alice", None, 50) == []


def test_conversations_are_listed_most_recent_first_with_their_unread(store, client):
    account(client, "alice", "bob", "carol")
    from_bob = store.messages.direct("bob", "alice", "b1", None, "n|s")
    store.messages.direct("bob", "alice", "b2", None, "n|s")
    client.zadd(keys.conversations("alice"), {"bob": 1})  # bob's is the older conversation
    store.messages.direct("alice", "carol", "to carol", None, "n|s")
    listed = store.conversations.list("alice")
    assert [(c.with_user, c.unread) for c in listed] == [("carol", 0), ("bob", 2)]
    assert listed[1].last["text"] == "b2"
    bob_copy = store.conversations.history("alice", "bob", None, 1)
    assert store.conversations.read("alice", "bob", from_bob.id).moved
    assert store.conversations.list("alice")[1].unread == 1
    store.conversations.read("alice", "bob", bob_copy[0]["id"])
    assert store.conversations.list("alice")[1].unread == 0
    assert [(c.with_user, c.unread) for c in store.conversations.list("bob")] == [("alice", 0)]


def test_reading_a_conversation_with_an_unknown_user_is_not_found(store, client):
    account(client, "alice")
    with pytest.raises(ServiceError) as refused:
        store.conversations.read("alice", "nobody", "1-0")
    assert refused.value.code == "not_found"


def test_a_repeated_client_id_adds_nothing_to_the_conversation(store, client):
    account(client, "alice", "bob")
    first = store.messages.direct("alice", "bob", "once", "c-1", "n|s")
    again = store.messages.direct("alice", "bob", "once", "c-1", "n|s")
    assert again == first
    assert len(store.conversations.history("bob", "alice", None, 50)) == 1
    assert store.conversations.list("bob")[0].unread == 1


def test_the_inbox_answers_the_newest_without_since_and_resumes_after_since(store, client):
    account(client, "alice", "bob")
    for n in range(3):
        store.messages.direct("bob", "alice", f"m{n}", None, "n|s")
    newest = store.conversations.inbox("alice", None)
    assert [m["text"] for m in newest.messages] == ["m0", "m1", "m2"]
    assert not newest.truncated
    resumed = store.conversations.inbox("alice", newest.messages[0]["id"])
    assert [m["text"] for m in resumed.messages] == ["m1", "m2"]
    assert not resumed.truncated
    assert store.conversations.inbox("alice", resumed.messages[-1]["id"]).messages == []
