"""Rooms the app controls, in the store (service/store/rules.py and the scripts that read the
rules: lua/append.lua, lua/join.lua), against a real redis-server and a real Redis Cluster: a
user's send is refused in the same step as the append, what a removal ends, what a public room
pays, and direct messages from the app."""

from __future__ import annotations

import pytest

from service.errors import ServiceError
from service.settings import RedisTarget
from service.store import keys
from service.store.store import Store


def forbidden(call, *args, **kwargs) -> str:
    with pytest.raises(ServiceError) as caught:
        call(*args, **kwargs)
    assert caught.value.code == "forbidden", caught.value.message
    return caught.value.message


def send(store: Store, room: str, user: str, text: str = "hi", client_id: str | None = None):
    return store.messages.publish(room, user, text, client_id, enforce_rules=True)


def join(store: Store, room: str, user: str, sid: str, admission: str = ""):
    return store.presence.join(room, user, sid, member=True, admission=admission)


def test_rules_default_to_public_and_keep_what_a_put_left_out(store):
    assert store.rules.get("team") == (False, False)
    assert store.rules.set("team", True, None) == (True, False)
    assert store.rules.set("team", None, True) == (True, True)
    assert store.rules.set("team", False, None) == (False, True)
    assert store.rules.get("team") == (False, True)


def test_rooms_default_private_until_a_put_makes_one_public(client, redis_server):
    private = Store(RedisTarget(url=redis_server.url), "node-a", history_max=100,
                    rooms_default_private=True)
    try:
        assert private.rules.get("team").private
        assert "private" in forbidden(send, private, "team", "ann")
        private.rules.set("team", False, None)
        assert not private.rules.get("team").private
        assert send(private, "team", "ann").id
    finally:
        private.close()


def test_a_users_send_is_checked_against_the_rules_in_the_append(store, client):
    assert send(store, "team", "ann").id  # public
    store.rules.set("team", True, None)
    assert forbidden(send, store, "team", "ann") == "room team is private and you are not a member"
    store.rules.add_member("team", "ann")
    assert send(store, "team", "ann").id
    store.rules.set("team", None, True)
    assert forbidden(send, store, "team", "ann") == "room team is read-only"
    posted = store.messages.publish("team", "api", "the app posts", None)  # no rules for it
    assert [m["text"] for m in store.messages.history("team", None, 10)] == [
        "hi", "hi", "the app posts"]
    assert posted.id


def test_a_removal_ends_everything_and_refuses_sends_until_the_user_joins_again(store, client):
    join(store, "lobby", "ann", "s1")  # public
    store.members.add("ann", "lobby")
    store.rules.remember_join("lobby", "ann", 60)
    assert store.rules.remove_member("lobby", "ann")
    store.members.unlist("ann", "lobby")
    assert forbidden(send, store, "lobby", "ann") == "you were removed from room lobby"
    assert not client.hexists(keys.room_members("lobby"), "ann")
    assert not client.exists(keys.room_join_allowed("lobby", "ann"))
    assert store.members.rooms("ann") == []
    join(store, "lobby", "ann", "s2")
    assert send(store, "lobby", "ann").id
    assert not store.rules.remove_member("lobby", "nobody")  # never there: nothing recorded
    assert client.hkeys(keys.room_rules("lobby")) == []


def test_a_join_admitted_as_member_is_refused_if_the_app_removed_it_meanwhile(store, client):
    store.rules.set("team", True, None)
    store.rules.add_member("team", "ann")
    store.rules.remove_member("team", "ann")  # between the admission and the join
    assert "private" in forbidden(join, store, "team", "ann", "s1", "member")
    assert store.presence.members("team") == [] and not client.exists(keys.room_members("team"))
    joined = join(store, "team", "ann", "s1", "granted")  # a token or the hook admits it
    assert joined.new_member and joined.members == ["ann"]
    assert not join(store, "team", "ann", "s2", "granted").new_member
    assert send(store, "team", "ann").id
    store.members.leave("team", "ann")  # its own leave ends the admission too
    assert "private" in forbidden(send, store, "team", "ann")


def test_access_reads_rules_membership_admission_and_the_remembered_hook_answer(store, client):
    store.rules.set("team", True, True)
    assert store.rules.access("team", "ann") == ((True, True), False, False, False)
    store.rules.add_member("team", "ann")
    store.rules.remember_join("team", "bob", 60)
    assert store.rules.access("team", "ann") == ((True, True), True, True, False)
    assert store.rules.access("team", "bob") == ((True, True), False, False, True)
    assert 0 < client.ttl(keys.room_join_allowed("team", "bob")) <= 60


def test_a_retry_of_a_stored_send_is_answered_even_after_the_rules_changed(store):
    first = send(store, "lobby", "ann", client_id="c-1")
    assert store.messages.find_sent("lobby", "ann", "c-1") == first
    assert store.messages.find_sent("lobby", "ann", "c-2") is None
    store.rules.set("lobby", None, True)
    assert send(store, "lobby", "ann", client_id="c-1") == first
    assert "read-only" in forbidden(send, store, "lobby", "ann", client_id="c-2")


def test_a_public_room_pays_one_hmget_for_its_rules(store, client):
    send(store, "lobby", "ann")

    def calls(command: str) -> int:
        return int(client.info("commandstats").get(f"cmdstat_{command}", {}).get("calls", 0))

    before = {command: calls(command) for command in ("hmget", "sismember", "hget")}
    for n in range(5):
        send(store, "lobby", "ann", f"m{n}")
    after = {command: calls(command) for command in before}
    assert after["hmget"] - before["hmget"] == 5
    assert after["sismember"] == before["sismember"]


def test_direct_messages_from_the_app_go_to_the_recipients_inbox_only(store, client):
    store.accounts.create("ann", "hash")
    stored = store.messages.direct_from_app("ann", "your export is ready", "x-1")
    assert store.messages.direct_from_app("ann", "your export is ready", "x-1") == stored
    [message] = store.conversations.inbox("ann", None).messages
    assert (message["id"], message["from"], message["to"]) == (stored.id, "api", "ann")
    assert not client.exists(keys.inbox("api"))
    assert [c.with_user for c in store.conversations.list("ann")] == ["api"]
    with pytest.raises(ServiceError) as caught:
        store.messages.direct_from_app("nobody", "hello?", None)
    assert caught.value.code == "not_found"
    assert store.messages.find_direct("ann", "bob", "x-1") is None


def test_on_a_redis_cluster_every_rule_lives_in_the_rooms_slot(redis_cluster):
    store = Store(RedisTarget(cluster_nodes=redis_cluster.seeds), "node-c", history_max=100)
    try:
        room = "cluster-rules-room"
        store.rules.set(room, True, None)
        store.rules.add_member(room, "ann")
        join(store, room, "ann", "s1", "member")
        assert send(store, room, "ann").id
        assert store.rules.access(room, "bob").rules.private
        store.rules.remember_join(room, "bob", 60)
        join(store, room, "bob", "s2", "granted")
        assert send(store, room, "bob").id
        store.rules.remove_member(room, "ann")
        store.members.unlist("ann", room)
        assert "removed" in forbidden(send, store, room, "ann")
        store.rules.set(room, None, True)
        assert "read-only" in forbidden(send, store, room, "bob")
    finally:
        store.close()
