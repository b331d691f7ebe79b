"""Rooms the app controls and the hooks, through the handlers (service/realtime/namespace.py,
admission.py, app_control.py) with the in-memory Broker (memory_broker.py): who may join, read
and send, what a removal does to every connection of the user, disconnecting a user, and how the
join and send hooks' answers are used. The hooks are stand-ins here (their HTTP is
test_hook_client.py's); the Redis side is test_app_api.py's and the integration suite's."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry

from service.hooks.client import HookFailed
from service.hooks.hooks import Hooks
from service.hooks.metrics import HookMetrics
from service.realtime import app_control
from service.realtime.namespace import Limits

from .test_handlers import Harness

LIMITS = Limits(max_text_chars=4000, rate_per_s=1000, burst=1000)


class StandInHook:
    """A hook that answers what `answer(body)` returns (or raises), and records what it was
    asked."""

    def __init__(self, name: str, answer: Callable[[dict[str, Any]], dict[str, Any]]):
        self.name = name
        self.answer = answer
        self.asked: list[dict[str, Any]] = []

    def ask(self, body: dict[str, Any]) -> dict[str, Any]:
        self.asked.append(body)
        return self.answer(body)


def code(answer: dict[str, Any]) -> str:
    return answer["error"]["code"] if answer.get("ok") is False else "ok"


def with_hooks(join: StandInHook | None = None, send: StandInHook | None = None,
               **kwargs: Any) -> Harness:
    hooks = Hooks(join=join, send=send, metrics=HookMetrics(CollectorRegistry()),  # type: ignore[arg-type]
                  max_text_chars=4000, node="node-t")
    return Harness(LIMITS, hooks=hooks, **kwargs)


def in_room(harness: Harness, client: Any, room: str) -> bool:
    return harness.manager.has(client.sid, "r:" + room)


# ---- who may join ------------------------------------------------------------------------------


def test_a_private_room_admits_members_and_matching_tokens_only():
    harness = Harness(LIMITS)
    broker = harness.broker
    assert broker.set_rules("team", True, None).private
    alice, bob, carol = (harness.connect(user) for user in ("alice", "bob", "carol"))
    refused = alice.call("join", {"room": "team"})
    assert code(refused) == "forbidden" and "private" in refused["error"]["message"]
    assert not in_room(harness, alice, "team") and broker.present("team") == []
    app_control.add_member(broker, "team", "alice")
    assert alice.ok("join", {"room": "team"})["members"] == ["alice"]
    harness.connections.get(bob.sid).room_grants = ("team",)
    harness.connections.get(carol.sid).room_grants = ("tea*",)
    assert bob.ok("join", {"room": "team"}) and carol.ok("join", {"room": "team"})
    for client in (alice, bob, carol):
        assert client.ok("send", {"room": "team", "text": "hi"})
    other = harness.connect("carol")
    harness.connections.get(other.sid).room_grants = ("team-*", "teams")
    assert code(other.call("join", {"room": "team"})) == "forbidden"
    assert broker.member_events == [("team", "alice", "added"), ("team", "alice", "joined"),
                                    ("team", "bob", "joined"), ("team", "carol", "joined")]
    alice.ok("leave", {"room": "team"})
    alice.ok("leave", {"room": "team"})  # no longer a member: nothing to tell
    assert broker.member_events[-1:] == [("team", "alice", "left")]
    assert broker.member_events.count(("team", "alice", "left")) == 1


def test_rooms_default_private_makes_every_room_private_unless_made_public():
    harness = Harness(LIMITS, default_private=True)
    alice = harness.connect("alice")
    assert harness.broker.rules("lobby").private
    assert code(alice.call("join", {"room": "lobby"})) == "forbidden"
    harness.broker.set_rules("lobby", False, None)
    assert alice.ok("join", {"room": "lobby"}) and alice.ok("send", {"room": "lobby",
                                                                     "text": "open"})


def test_a_read_only_room_is_joined_and_read_but_only_the_app_posts():
    harness = Harness(LIMITS)
    harness.broker.set_rules("news", None, True)
    alice = harness.connect("alice")
    alice.ok("join", {"room": "news"})
    refused = alice.call("send", {"room": "news", "text": "me too"})
    assert code(refused) == "forbidden" and "read-only" in refused["error"]["message"]
    posted = harness.broker.publish("news", "api", "the news", None)  # the HTTP API's way
    assert [m["id"] for m in alice.got("message")] == [posted.id]
    assert [m["text"] for m in alice.ok("history", {"room": "news"})["messages"]] == ["the news"]
    harness.broker.set_rules("news", None, False)
    assert alice.ok("send", {"room": "news", "text": "now me"})


def test_a_room_made_private_refuses_the_sends_of_those_it_did_not_admit():
    harness = Harness(LIMITS)
    alice, bob = harness.connect("alice"), harness.connect("bob")
    for client in (alice, bob):
        client.ok("join", {"room": "team"})
    harness.broker.set_rules("team", True, None)
    app_control.add_member(harness.broker, "team", "alice")
    assert alice.ok("send", {"room": "team", "text": "still here"})
    assert code(bob.call("send", {"room": "team", "text": "me?"})) == "forbidden"


def test_a_private_room_is_read_only_by_those_it_admits():
    harness = Harness(LIMITS)
    harness.broker.set_rules("team", True, None)
    bob = harness.connect("bob")
    for event in ("history", "presence"):
        assert code(bob.call(event, {"room": "team"})) == "forbidden"
    harness.connections.get(bob.sid).room_grants = ("team",)
    for event in ("history", "presence"):
        assert bob.ok(event, {"room": "team"})


# ---- removal and disconnection -----------------------------------------------------------------


def test_a_removed_user_leaves_the_room_on_every_connection_and_may_not_send():
    harness = Harness(LIMITS)
    broker = harness.broker
    broker.set_rules("team", True, None)
    for user in ("alice", "bob"):
        app_control.add_member(broker, "team", user)
    laptop, phone, idle, bob = (harness.connect("alice"), harness.connect("alice"),
                                harness.connect("alice"), harness.connect("bob"))
    for client in (laptop, phone, bob):
        client.ok("join", {"room": "team"})
    assert [r["room"] for r in laptop.ok("rooms", {})["rooms"]] == ["team"]
    app_control.remove_member(broker, "team", "alice", "moved to another team")
    for client in (laptop, phone, idle):  # every connection, in the room or not, is told
        assert client.got("removed") == [{"room": "team", "reason": "moved to another team"}]
    assert not in_room(harness, laptop, "team") and not in_room(harness, phone, "team")
    bob.ok("send", {"room": "team", "text": "after alice"})
    assert [m["text"] for m in laptop.got("message") + phone.got("message")] == []
    assert code(laptop.call("send", {"room": "team", "text": "x"})) == "forbidden"
    assert code(phone.call("join", {"room": "team"})) == "forbidden"
    assert laptop.ok("rooms", {})["rooms"] == [] and broker.present("team") == ["bob"]
    assert ("team", "alice", "removed") in broker.member_events


def test_a_removal_stored_before_its_message_arrives_already_refuses_sends():
    """The bus is at most once: until a node hears of a removal, the store refuses the
    removed user's sends (public rooms too); joining again clears it."""
    harness = Harness(LIMITS)
    alice = harness.connect("alice")
    alice.ok("join", {"room": "lobby"})
    harness.broker.remove_member("lobby", "alice")  # stored; no node told
    assert in_room(harness, alice, "lobby")
    refused = alice.call("send", {"room": "lobby", "text": "x"})
    assert code(refused) == "forbidden" and "removed" in refused["error"]["message"]
    alice.ok("join", {"room": "lobby"})
    assert alice.ok("send", {"room": "lobby", "text": "back"})


def test_disconnecting_a_user_ends_each_of_its_connections_with_expired():
    harness = Harness(LIMITS)
    laptop, phone, bob = (harness.connect("alice"), harness.connect("alice"),
                          harness.connect("bob"))
    app_control.disconnect_user(harness.broker, "alice", "account closed")
    for client in (laptop, phone):
        assert client.got("expired") == [{"reason": "account closed"}]
        assert not client.connected
    assert bob.connected and bob.got("expired") == []


# ---- the join hook -----------------------------------------------------------------------------


def test_the_join_hook_decides_for_private_rooms_others_do_not_admit_and_is_remembered():
    answers = {"alice": {"allow": True}, "bob": {"allow": False, "reason": "invite only"}}
    join = StandInHook("join", lambda body: answers[body["user"]])
    harness = with_hooks(join=join, join_hook_cache_s=60)
    broker = harness.broker
    broker.set_rules("team", True, None)
    alice, alice_phone, bob, carol = (harness.connect(u) for u in ("alice", "alice", "bob",
                                                                   "carol"))
    assert alice.ok("join", {"room": "team"}) and alice.ok("send", {"room": "team",
                                                                    "text": "in"})
    assert alice_phone.ok("join", {"room": "team"})  # remembered: not asked again
    refused = bob.call("join", {"room": "team"})
    assert code(refused) == "forbidden" and refused["error"]["message"] == "invite only"
    assert not in_room(harness, bob, "team")
    app_control.add_member(broker, "team", "carol")
    harness.connections.get(bob.sid).room_grants = ("team",)
    assert carol.ok("join", {"room": "team"}) and bob.ok("join", {"room": "team"})
    assert alice.ok("join", {"room": "lobby"})  # a public room: never asked
    assert join.asked == [{"event": "join", "user": "alice", "room": "team"},
                          {"event": "join", "user": "bob", "room": "team"}]
    app_control.remove_member(broker, "team", "alice")  # forgets the remembered answer
    assert alice.ok("join", {"room": "team"})
    assert len(join.asked) == 3


def test_a_join_hook_that_fails_makes_the_join_unavailable_and_joins_nothing():
    def fail(_body: dict[str, Any]) -> dict[str, Any]:
        raise HookFailed("timeout", "did not answer within 2 s")

    harness = with_hooks(join=StandInHook("join", fail), join_hook_cache_s=60)
    harness.broker.set_rules("team", True, None)
    alice = harness.connect("alice")
    assert code(alice.call("join", {"room": "team"})) == "unavailable"
    assert not in_room(harness, alice, "team") and harness.broker.present("team") == []
    assert alice.ok("rooms", {})["rooms"] == [] and harness.broker.hook_allowed == {}


def test_without_a_cache_the_join_hook_is_asked_every_time():
    join = StandInHook("join", lambda body: {"allow": True})
    harness = with_hooks(join=join, join_hook_cache_s=0)
    harness.broker.set_rules("team", True, None)
    alice = harness.connect("alice")
    for _ in range(2):
        alice.ok("join", {"room": "team"})
    assert len(join.asked) == 2


# ---- the send hook -----------------------------------------------------------------------------


def moderate(body: dict[str, Any]) -> dict[str, Any]:
    if "spam" in body["text"]:
        return {"allow": False, "reason": "no spam"}
    if body["text"] == "down":
        raise HookFailed("error", "answered 500")
    return {"allow": True, "text": body["text"].replace("darn", "d**n")}


def test_the_send_hook_replaces_refuses_or_fails_a_send_before_it_is_stored():
    send = StandInHook("send", moderate)
    harness = with_hooks(send=send)
    alice, bob = harness.connect("alice"), harness.connect("bob")
    for client in (alice, bob):
        client.ok("join", {"room": "lobby"})
    sent = alice.ok("send", {"room": "lobby", "text": "darn it", "client_id": "c-1"})
    assert [(m["id"], m["text"]) for m in bob.got("message")] == [(sent["id"], "d**n it")]
    refused = alice.call("send", {"room": "lobby", "text": "buy spam"})
    assert code(refused) == "forbidden" and refused["error"]["message"] == "no spam"
    assert code(alice.call("send", {"room": "lobby", "text": "down"})) == "unavailable"
    history = alice.ok("history", {"room": "lobby"})["messages"]
    assert [m["text"] for m in history] == ["d**n it"]
    assert send.asked == [
        {"event": "send", "user": "alice", "room": "lobby", "text": "darn it",
         "client_id": "c-1"},
        {"event": "send", "user": "alice", "room": "lobby", "text": "buy spam"},
        {"event": "send", "user": "alice", "room": "lobby", "text": "down"}]
    again = alice.ok("send", {"room": "lobby", "text": "darn it", "client_id": "c-1"})
    assert again == sent and len(send.asked) == 3  # answered from the store, hook not asked


def test_the_send_hook_is_asked_about_direct_messages_too():
    send = StandInHook("send", moderate)
    harness = with_hooks(send=send)
    alice, bob = harness.connect("alice"), harness.connect("bob")
    sent = alice.ok("direct", {"to": "bob", "text": "darn", "client_id": "d-1"})
    assert [m["text"] for m in bob.got("direct")] == ["d**n"]
    assert alice.ok("direct", {"to": "bob", "text": "darn", "client_id": "d-1"}) == sent
    assert code(alice.call("direct", {"to": "bob", "text": "spam"})) == "forbidden"
    assert code(alice.call("direct", {"to": "bob", "text": "down"})) == "unavailable"
    assert [m["text"] for m in bob.ok("inbox", {})["messages"]] == ["d**n"]
    assert send.asked[0] == {"event": "direct", "user": "alice", "to": "bob", "text": "darn",
                             "client_id": "d-1"}
    assert len(send.asked) == 3


def test_the_room_rules_still_apply_after_the_send_hook_allowed():
    harness = with_hooks(send=StandInHook("send", lambda body: {"allow": True}))
    alice = harness.connect("alice")
    alice.ok("join", {"room": "news"})
    harness.broker.set_rules("news", None, True)
    assert code(alice.call("send", {"room": "news", "text": "x"})) == "forbidden"


def test_direct_messages_from_the_app_reach_the_user_and_keep_no_inbox_for_api():
    harness = Harness(LIMITS)
    alice = harness.connect("alice")
    stored = harness.broker.direct_from_app("alice", "your export is ready", None)
    [direct] = alice.got("direct")
    assert (direct["id"], direct["from"], direct["to"]) == (stored.id, "api", "alice")
    assert "api" not in harness.broker.inboxes
