"""The webhook outbox against a real redis-server (service/store/outbox.py): what the appending
scripts mark, what a sender takes and moves past, the index and its re-check, retention that
keeps undelivered events, and the sweep."""

from __future__ import annotations

import time

import pytest

from service.primitives.ids import parse_id
from service.settings import RedisTarget
from service.store import keys
from service.store.outbox import INBOX, ROOM, Outbox
from service.store.store import Store

DAY_S = 86_400


class Indexed:
    """Counts the index writes a store's appends made (its on_indexed hook)."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self) -> None:
        self.calls += 1


def webhook_store(redis_server, *, retry_s: int | None = DAY_S, history_max: int = 1000,
                  node: str = "node-a") -> Store:
    return Store(RedisTarget(url=redis_server.url), node, history_max=history_max,
                 webhook_retry_s=retry_s)


@pytest.fixture
def hooked(client, redis_server):
    store = webhook_store(redis_server)
    store.webhooks.on_indexed = Indexed()
    yield store
    store.close()


def account(client, name: str) -> None:
    client.hset(keys.account(name), "pw", "hash")


def due_members(client) -> list[str]:
    return client.zrange(keys.WEBHOOK_DUE, 0, -1)


def take_all(store: Store, outbox: Outbox, token: str = "t1", limit: int = 1000):  # noqa: S107 - a lease's
    taken = store.webhooks.take(outbox, token, 10_000, limit)
    assert taken is not None
    return taken


# ---- off: nothing written ---------------------------------------------------------------------


def test_with_webhooks_off_the_appending_scripts_write_nothing_of_them(client, store):
    account(client, "bob")
    store.messages.publish("lobby", "alice", "hi", None)
    store.messages.direct("alice", "bob", "psst", None, "node-a|s1")
    store.presence.join("lobby", "alice", "s1", member=True)
    store.presence.leave("lobby", "alice", "s1")
    assert store.members.leave("lobby", "alice") is True
    assert [key for key in client.keys("*") if ":wh" in key or "webhooks" in key] == []


# ---- messages and directs ---------------------------------------------------------------------


def test_the_first_event_marks_and_indexes_the_room_later_ones_only_mark(client, hooked):
    room = Outbox(ROOM, "lobby")
    first = hooked.messages.publish("lobby", "alice", "one", None)
    assert client.get(keys.room_webhook_pending("lobby")) == "1"
    assert client.hget(keys.room_webhook("lobby"), "cursor") == "0-0"
    assert due_members(client) == [room.member]
    assert hooked.webhooks.on_indexed.calls == 1
    second = hooked.messages.publish("lobby", "bob", "two", "c-2")
    assert hooked.webhooks.on_indexed.calls == 1  # the marker was set: indexed already
    taken = take_all(hooked, room)
    assert [entry.event for entry in taken.entries] == [
        {"id": f"m:lobby:{first.id}", "type": "message", "ts": first.ts, "room": "lobby",
         "message": {"id": first.id, "room": "lobby", "user": "alice", "text": "one",
                     "ts": first.ts, "node": "node-a"}},
        {"id": f"m:lobby:{second.id}", "type": "message", "ts": second.ts, "room": "lobby",
         "message": {"id": second.id, "room": "lobby", "user": "bob", "text": "two",
                     "ts": second.ts, "node": "node-a", "client_id": "c-2"}}]


def test_what_was_stored_before_webhooks_were_on_is_not_sent(client, redis_server, store):
    store.messages.publish("lobby", "alice", "before", None)
    hooked = webhook_store(redis_server)
    try:
        after = hooked.messages.publish("lobby", "alice", "after", None)
        taken = take_all(hooked, Outbox(ROOM, "lobby"))
        assert [entry.stream_id for entry in taken.entries] == [after.id]
    finally:
        hooked.close()


def test_a_repeated_client_id_marks_nothing_new(client, hooked):
    hooked.messages.publish("lobby", "alice", "one", "same")
    taken = take_all(hooked, Outbox(ROOM, "lobby"))
    assert hooked.webhooks.advance(taken, taken.entries, "delivered").state == "done"
    hooked.messages.publish("lobby", "alice", "one", "same")
    assert client.exists(keys.room_webhook_pending("lobby")) == 0


def test_a_direct_message_is_an_event_of_the_recipients_inbox_only(client, hooked):
    account(client, "alice")
    account(client, "bob")
    hooked.messages.direct("bob", "alice", "first, from bob", None, "node-a|s0")
    stored = hooked.messages.direct("alice", "bob", "psst", None, "node-a|s1")
    assert client.exists(keys.inbox_webhook_pending("bob")) == 1
    assert Outbox(INBOX, "bob").member in due_members(client)
    taken = take_all(hooked, Outbox(INBOX, "bob"))
    [entry] = taken.entries
    assert entry.event == {
        "id": f"d:bob:{stored.id}", "type": "direct", "ts": stored.ts,
        "message": {"id": stored.id, "from": "alice", "to": "bob", "text": "psst",
                    "ts": stored.ts, "node": "node-a"}}
    # alice's inbox holds bob's message (an event) and her own copy of hers (none)
    mine = take_all(hooked, Outbox(INBOX, "alice"))
    assert [entry.event is not None for entry in mine.entries] == [True, False]
    assert hooked.webhooks.advance(mine, mine.entries, "delivered").state == "done"


def test_a_direct_message_to_oneself_is_one_event(client, hooked):
    account(client, "alice")
    stored = hooked.messages.direct("alice", "alice", "note", None, "node-a|s1")
    taken = take_all(hooked, Outbox(INBOX, "alice"))
    assert [entry.event["id"] for entry in taken.entries] == [f"d:alice:{stored.id}"]


# ---- presence and membership ------------------------------------------------------------------


def test_presence_and_membership_are_events_of_the_room_in_their_order(client, hooked):
    """Among themselves in the order they happened; beside messages by time, to the
    millisecond (the two streams' ids do not order events within one millisecond)."""
    hooked.presence.join("lobby", "alice", "s1", member=True)
    hooked.presence.join("lobby", "alice", "s2", member=True)  # not her first: nothing new
    message = hooked.messages.publish("lobby", "alice", "hi", None)
    hooked.presence.leave("lobby", "alice", "s2")  # she is still there on s1
    hooked.presence.leave("lobby", "alice", "s1")
    hooked.members.leave("lobby", "alice")
    hooked.webhooks.record_room_event("lobby", {"type": "member", "user": "bob",
                                                "action": "added"})
    hooked.members.leave("lobby", "bob", action="removed")  # never joined: no event
    taken = take_all(hooked, Outbox(ROOM, "lobby"))
    others = [(e.event["type"], e.event["user"], e.event["action"]) for e in taken.entries
              if e.source == "side"]
    assert others == [("presence", "alice", "join"), ("member", "alice", "joined"),
                      ("presence", "alice", "leave"), ("member", "alice", "left"),
                      ("member", "bob", "added")]
    assert [e.event["id"] for e in taken.entries if e.source == "log"] == [
        f"m:lobby:{message.id}"]
    times = [entry.ms for entry in taken.entries]
    assert times == sorted(times)
    side = taken.entries[[e.source for e in taken.entries].index("side")]
    assert side.event == {"id": f"e:lobby:{side.stream_id}", "type": "presence",
                          "ts": parse_id(side.stream_id)[0], "room": "lobby", "user": "alice",
                          "action": "join"}


def test_a_reaped_nodes_users_leave_as_events(client, redis_server, hooked):
    dead = webhook_store(redis_server, node="node-dead")
    try:
        dead.presence.join("lobby", "carol", "s9")
    finally:
        dead.close()
    taken = take_all(hooked, Outbox(ROOM, "lobby"))
    hooked.webhooks.advance(taken, taken.entries, "delivered")
    assert hooked.presence.reap("node-dead", "lobby") == 1
    taken = take_all(hooked, Outbox(ROOM, "lobby"), token="t2")
    assert [(e.event["user"], e.event["action"]) for e in taken.entries] == [("carol", "leave")]


def test_an_unknown_room_event_is_refused(hooked):
    with pytest.raises(ValueError):
        hooked.webhooks.record_room_event("lobby", {"type": "member", "user": "bob",
                                                    "action": "promoted"})
    with pytest.raises(ValueError):
        hooked.webhooks.record_room_event("lobby", {"type": "typing", "user": "bob",
                                                    "action": "join"})


# ---- the sender's steps -----------------------------------------------------------------------


def test_a_lease_admits_one_sender_and_only_its_holder_moves_the_cursor(client, hooked):
    room = Outbox(ROOM, "lobby")
    hooked.messages.publish("lobby", "alice", "one", None)
    taken = take_all(hooked, room, token="mine")
    assert hooked.webhooks.take(room, "theirs", 10_000, 10) is None
    stolen = type(taken)(room, "theirs", True, 0, 0, taken.entries)
    assert hooked.webhooks.advance(stolen, taken.entries, "delivered").state == "lost"
    assert hooked.webhooks.failed(stolen, 0) is None
    assert hooked.webhooks.advance(taken, taken.entries, "delivered").state == "done"
    assert client.exists(keys.room_webhook_pending("lobby")) == 0
    assert client.exists(keys.room_webhook_lease("lobby")) == 0
    assert hooked.webhooks.take(room, "theirs", 10_000, 10).entries == []


def test_an_append_during_a_try_keeps_the_marker_and_the_rest_follows(client, hooked):
    room = Outbox(ROOM, "lobby")
    hooked.messages.publish("lobby", "alice", "one", None)
    taken = take_all(hooked, room)
    later = hooked.messages.publish("lobby", "alice", "two", None)
    advanced = hooked.webhooks.advance(taken, taken.entries, "delivered")
    assert advanced == ("more", later.ts)
    assert client.exists(keys.room_webhook_pending("lobby")) == 1
    again = take_all(hooked, room, token="t2")
    assert [entry.stream_id for entry in again.entries] == [later.id]


def test_an_append_between_clearing_and_unlisting_is_listed_again(client, hooked):
    """The race the re-check closes: the outbox is caught up (marker cleared), an append sets
    the marker and finds the index entry still there (its own add is a no-op), then the sender
    unlists the outbox: settled() reads the marker after unlisting and lists it again."""
    room = Outbox(ROOM, "lobby")
    hooked.messages.publish("lobby", "alice", "one", None)
    taken = take_all(hooked, room)
    assert hooked.webhooks.advance(taken, taken.entries, "delivered").state == "done"
    hooked.messages.publish("lobby", "alice", "two", None)
    assert due_members(client) == [room.member]  # still there from before
    hooked.webhooks.settled(room)
    assert due_members(client) == [room.member]
    taken = take_all(hooked, room, token="t2")
    assert hooked.webhooks.advance(taken, taken.entries, "delivered").state == "done"
    hooked.webhooks.settled(room)
    assert due_members(client) == []


def test_failures_count_up_until_a_delivery_and_the_schedule_keeps_the_oldest(client, hooked):
    room = Outbox(ROOM, "lobby")
    stored = hooked.messages.publish("lobby", "alice", "one", None)
    for expected in (1, 2):
        taken = take_all(hooked, room, token=f"t{expected}")
        assert taken.failures == expected - 1
        assert hooked.webhooks.failed(taken, 0) == expected
    hooked.webhooks.schedule(room, int(time.time() * 1000) + 60_000, stored.ts)
    assert hooked.webhooks.due(10) == []  # put off
    figures = hooked.webhooks.figures()
    assert figures.outboxes == 1 and figures.oldest_event_ms == stored.ts
    taken = take_all(hooked, room, token="t3")
    assert taken.failures == 2
    hooked.webhooks.advance(taken, taken.entries, "delivered")
    hooked.webhooks.settled(room)
    assert client.hget(keys.room_webhook("lobby"), "failures") is None
    assert hooked.webhooks.figures() == (0, None, None)


def test_an_outbox_is_not_taken_before_the_pause_after_its_failure_passed(client, hooked):
    """Whatever a sender's list of due outboxes says (it may predate the pause)."""
    room = Outbox(ROOM, "lobby")
    hooked.messages.publish("lobby", "alice", "one", None)
    assert hooked.webhooks.failed(take_all(hooked, room), 60_000) == 1
    assert hooked.webhooks.due(10) == [room]  # as if this sender had not heard of the pause
    assert hooked.webhooks.take(room, "t2", 10_000, 10) is None
    assert client.zscore(keys.WEBHOOK_DUE, room.member) > (time.time() + 50) * 1000
    client.hincrby(keys.room_webhook("lobby"), "next", -60_000)  # the pause passed
    taken = take_all(hooked, room, token="t3")
    assert hooked.webhooks.advance(taken, taken.entries, "delivered").state == "done"
    assert client.hmget(keys.room_webhook("lobby"), "failures", "next") == [None, None]


def test_delivered_side_events_are_deleted_and_an_empty_side_stream_goes(client, hooked):
    hooked.presence.join("lobby", "alice", "s1")
    hooked.presence.join("lobby", "bob", "s2")
    taken = take_all(hooked, Outbox(ROOM, "lobby"))
    first, second = taken.entries
    assert hooked.webhooks.advance(taken, [first], "keep") == ("more", second.ms)
    assert client.xlen(keys.room_webhook_events("lobby")) == 1
    assert hooked.webhooks.advance(taken, [second], "delivered").state == "done"
    assert client.exists(keys.room_webhook_events("lobby")) == 0


def test_a_take_reads_at_most_its_limit_of_both_streams_merged(client, hooked):
    for n in range(3):
        hooked.messages.publish("lobby", "alice", f"m{n}", None)
        hooked.webhooks.record_room_event("lobby", {"type": "member", "user": f"u{n}",
                                                    "action": "added"})
    whole = take_all(hooked, Outbox(ROOM, "lobby"), token="t0")
    hooked.webhooks.advance(whole, [], "release")
    everything = whole.entries
    taken = take_all(hooked, Outbox(ROOM, "lobby"), limit=4)
    assert len(taken.entries) == 4
    for source in ("log", "side"):  # the oldest of each stream
        ours = [entry for entry in taken.entries if entry.source == source]
        assert ours == [entry for entry in everything if entry.source == source][:len(ours)]
    times = [entry.ms for entry in taken.entries]
    assert times == sorted(times)


# ---- retention ---------------------------------------------------------------------------------


def test_retention_never_trims_undelivered_events_and_trims_delivered_ones(client, redis_server):
    store = webhook_store(redis_server, history_max=10)
    try:
        room = Outbox(ROOM, "lobby")
        ids = [store.messages.publish("lobby", "alice", f"m{n}", None).id for n in range(130)]
        assert client.xlen(keys.room_log("lobby")) == 130  # nothing delivered: all kept
        taken = take_all(store, room, limit=100)
        assert store.webhooks.advance(taken, taken.entries, "delivered").state == "more"
        store.messages.publish("lobby", "alice", "one more", None)
        left = [entry[0] for entry in client.xrange(keys.room_log("lobby"))]
        assert left[0] == ids[100]  # the delivered ones went (retention may drop them)
        assert client.hget(keys.room_meta("lobby"), "trimmed") == ids[99]
        assert client.hget(keys.room_webhook("lobby"), "expired") is None
    finally:
        store.close()


def test_retention_drops_undelivered_events_older_than_the_retry_time_and_counts_them(
        client, redis_server):
    store = webhook_store(redis_server, history_max=10, retry_s=3600)
    try:
        old_ms = int(time.time() * 1000) - 2 * 3600 * 1000
        client.hset(keys.room_webhook("lobby"), "cursor", "0-0")
        for n in range(120):
            client.xadd(keys.room_log("lobby"), {"u": "alice", "t": f"old{n}", "n": "x"},
                        id=f"{old_ms}-{n}")
        young = [store.messages.publish("lobby", "alice", f"m{n}", None).id for n in range(5)]
        left = [entry[0] for entry in client.xrange(keys.room_log("lobby"))]
        assert young[-1] in left and len(left) < 125
        dropped = 125 - len(left)
        cursor = client.hget(keys.room_webhook("lobby"), "cursor")
        assert cursor == f"{old_ms}-{dropped - 1}"
        taken = take_all(store, Outbox(ROOM, "lobby"))
        assert taken.expired == dropped  # reported to the sender once
        store.webhooks.advance(taken, [], "release")
        assert take_all(store, Outbox(ROOM, "lobby"), token="t2").expired == 0
    finally:
        store.close()


def test_an_inboxs_retention_keeps_its_undelivered_events_whoever_appends(client, redis_server):
    store = webhook_store(redis_server, history_max=10)
    try:
        account(client, "alice")
        account(client, "bob")
        store.messages.direct("bob", "alice", "to alice", None, "node-a|s0")
        for n in range(120):  # alice's own copies: no events, yet retention keeps her cursor
            store.messages.direct("alice", "bob", f"m{n}", None, "node-a|s1")
        taken = take_all(store, Outbox(INBOX, "alice"))
        assert [entry.event["message"]["text"] for entry in taken.entries
                if entry.event is not None] == ["to alice"]
    finally:
        store.close()


# ---- the sweep ---------------------------------------------------------------------------------


def test_the_sweep_lists_again_an_outbox_a_crash_left_unlisted(client, hooked):
    hooked.messages.publish("lobby", "alice", "one", None)
    client.zrem(keys.WEBHOOK_DUE, Outbox(ROOM, "lobby").member)  # the crash
    client.set("room:{kitchen}:sent:alice:x:wh:pending", "1")  # a client_id, no marker
    assert hooked.webhooks.sweep(50_000) == 1
    assert due_members(client) == ["room:lobby"]
    assert hooked.webhooks.sweep(50_000) is None  # another sweep waits for the lease
