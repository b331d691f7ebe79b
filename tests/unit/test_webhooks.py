"""The webhook sender's decisions (service/hooks/batching.py) and its rounds against a real
redis-server with a stand-in receiver (service/hooks/webhooks.py): batching, pauses that grow,
drops after WEBHOOK_RETRY_S, leases, and the signed request itself (delivery.py)."""

from __future__ import annotations

import itertools
import json
import random
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from service.hooks import signing
from service.hooks.batching import (
    BACKOFF_CAP_S,
    Batch,
    backoff_s,
    events_in,
    split_expired,
)
from service.hooks.delivery import DELIVERED, REJECTED, TIMEOUT, UNREACHABLE, Answer, Poster
from service.hooks.webhooks import WebhookSender
from service.settings import RedisTarget
from service.store import keys
from service.store.outbox import ROOM, Entry, Outbox, Taken
from service.store.store import Store

SECRET = "a-webhook-secret-of-ours"


def entry(ms: int, seq: int = 0, event: bool = True, source: str = "log") -> Entry:
    stream_id = f"{ms}-{seq}"
    return Entry(source, stream_id, {"id": f"m:r:{stream_id}"} if event else None)


def taken_of(name: str, entries: list[Entry]) -> Taken:
    return Taken(Outbox(ROOM, name), "t", True, 0, 0, entries)


# ---- pauses ------------------------------------------------------------------------------------


def test_pauses_grow_from_half_a_second_each_at_least_the_one_before_until_the_cap():
    rng = random.Random(7)
    for _ in range(200):
        pauses = [backoff_s(failures, 86_400, rng.random) for failures in range(1, 11)]
        assert 0.25 <= pauses[0] <= 0.5
        assert all(later >= earlier for earlier, later in itertools.pairwise(pauses))
        capped = [backoff_s(failures, 86_400, rng.random) for failures in range(11, 40)]
        assert all(BACKOFF_CAP_S / 2 <= pause <= BACKOFF_CAP_S for pause in capped)
    assert backoff_s(400, 86_400, lambda: 1.0) == BACKOFF_CAP_S


def test_pauses_never_pass_the_retry_time():
    assert backoff_s(20, 3, lambda: 1.0) == 3.0
    assert backoff_s(1, 3, lambda: 1.0) == 0.5


def test_pauses_are_spread_so_outboxes_that_failed_together_come_back_apart():
    rng = random.Random(1)
    pauses = {round(backoff_s(5, 86_400, rng.random), 3) for _ in range(50)}
    assert len(pauses) > 40


# ---- drops -------------------------------------------------------------------------------------


def test_entries_older_than_the_floor_are_the_prefix_dropped():
    entries = [entry(100), entry(150, event=False), entry(199), entry(200), entry(300)]
    expired, fresh = split_expired(entries, 200)
    assert expired == entries[:3] and fresh == entries[3:]
    assert events_in(expired) == 2
    assert split_expired(entries, 0) == ([], entries)
    assert split_expired(entries, 10_000) == (entries, [])


# ---- batches -----------------------------------------------------------------------------------


def test_a_batch_holds_at_most_its_capacity_with_each_outboxs_events_together_in_order():
    batch = Batch(4)
    first = [entry(1), entry(2, event=False), entry(3)]
    assert batch.add(taken_of("a", []), first) == first
    assert batch.room_left() == 2
    second = [entry(5), entry(6), entry(7)]
    assert batch.add(taken_of("b", []), second) == second[:2]
    assert batch.full()
    assert batch.add(taken_of("c", []), [entry(9)]) == []
    assert [event["id"] for event in batch.events()] == [
        "m:r:1-0", "m:r:3-0", "m:r:5-0", "m:r:6-0"]
    assert json.loads(batch.body()) == {"events": batch.events()}


def test_entries_that_are_no_events_ride_along_free_up_to_the_next_event_that_does_not_fit():
    batch = Batch(1)
    entries = [entry(1, event=False), entry(2), entry(3, event=False), entry(4)]
    assert batch.add(taken_of("a", []), entries) == entries[:3]
    assert batch.count() == 1


# ---- the signed request ------------------------------------------------------------------------


class Receiver:
    """A real HTTP server for the sender's requests: records them, answers `status`, or hangs
    for `hang_s`."""

    def __init__(self) -> None:
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.status = 200
        self.hang_s = 0.0
        self.redirect_to: str | None = None
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.requests.append((dict(self.headers), body))
                if receiver.hang_s:
                    time.sleep(receiver.hang_s)  # a receiver that hangs
                try:
                    self.send_response(receiver.status)
                    if receiver.redirect_to:
                        self.send_header("Location", receiver.redirect_to)
                    self.send_header("Content-Length", "2")
                    self.end_headers()
                    self.wfile.write(b"ok")
                except OSError:
                    pass  # the sender gave up waiting

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def batches(self) -> list[list[dict]]:
        return [json.loads(body)["events"] for _, body in self.requests]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    server = Receiver()
    yield server
    server.close()


def test_a_request_is_signed_json_and_its_outcome_follows_the_answer(receiver):
    poster = Poster(receiver.url, SECRET, timeout_s=0.5)
    assert poster.post(b'{"events":[]}').outcome == DELIVERED
    headers, body = receiver.requests[0]
    assert headers["Content-Type"] == "application/json"
    assert signing.verify(SECRET, headers[signing.TIMESTAMP_HEADER],
                          headers[signing.SIGNATURE_HEADER], body)
    receiver.status = 500
    assert poster.post(b"{}") == (REJECTED, 500, pytest.approx(0, abs=0.5))
    receiver.status, receiver.redirect_to = 307, receiver.url
    assert poster.post(b"{}").outcome == REJECTED  # never followed
    assert len(receiver.requests) == 3
    receiver.status, receiver.redirect_to, receiver.hang_s = 200, None, 1.0
    assert poster.post(b"{}").outcome == TIMEOUT


def test_a_receiver_that_is_not_there_is_unreachable():
    from tests.redis_server import free_port

    poster = Poster(f"http://127.0.0.1:{free_port()}/hook", SECRET, timeout_s=0.5)
    assert poster.post(b"{}").outcome == UNREACHABLE


# ---- rounds against Redis ----------------------------------------------------------------------


class Clock:
    """The node's clock, moved by the test. Redis keeps its own (an outbox's pause after a
    failure is timed by it), so `advance` moves the pauses Redis holds back by as much."""

    def __init__(self, client=None) -> None:
        self.now = time.time()
        self.client = client

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
        for key in self.client.scan_iter(match="*:wh", _type="hash") if self.client else ():
            if self.client.hexists(key, "next"):
                self.client.hincrby(key, "next", -int(seconds * 1000))


class Answers:
    """A stand-in for the receiver: answers from a list (then `default`), records bodies."""

    def __init__(self, *outcomes: str, default: str = DELIVERED):
        self.outcomes = list(outcomes)
        self.default = default
        self.bodies: list[list[dict]] = []

    def post(self, body: bytes) -> Answer:
        self.bodies.append(json.loads(body)["events"])
        outcome = self.outcomes.pop(0) if self.outcomes else self.default
        return Answer(outcome, 500 if outcome == REJECTED else 200, 0.01)


@pytest.fixture
def hooked(client, redis_server):
    store = Store(RedisTarget(url=redis_server.url), "node-a", history_max=1000,
                  webhook_retry_s=60)
    yield store
    store.close()


def sender_of(store: Store, answers: Answers, clock: Clock, *, batch_max: int = 100,
              retry_s: float = 60) -> WebhookSender:
    store.webhooks.clock = clock  # the index's times too
    return WebhookSender(store.webhooks, answers, node="node-a",  # type: ignore[arg-type]
                         retry_s=retry_s, batch_max=batch_max, sweep_s=60, timeout_s=1,
                         clock=clock, rng=random.Random(3))


def test_a_round_batches_several_rooms_and_settles_each(client, hooked):
    clock, answers = Clock(), Answers()
    sender = sender_of(hooked, answers, clock, batch_max=5)
    for room in ("a", "b", "c"):
        for n in range(3):
            hooked.messages.publish(room, "alice", f"{room}{n}", None)
    rounds = 0
    while sender.round():
        rounds += 1
        assert rounds < 10
    sent = [event for body in answers.bodies for event in body]
    assert all(len(body) <= 5 for body in answers.bodies)
    for room in ("a", "b", "c"):
        texts = [e["message"]["text"] for e in sent if e["room"] == room]
        assert texts == [f"{room}0", f"{room}1", f"{room}2"]
    assert sender.counts.events["delivered"] == 9
    assert client.zcard(keys.WEBHOOK_DUE) == 0
    assert not any(client.exists(keys.room_webhook_pending(room)) for room in "abc")


def test_a_failed_batch_is_put_off_with_growing_pauses_then_sent_again_with_the_same_ids(
        client, hooked):
    clock = Clock(client)
    answers = Answers(REJECTED, TIMEOUT, UNREACHABLE)
    sender = sender_of(hooked, answers, clock)
    hooked.messages.publish("lobby", "alice", "one", None)
    due_at = []
    for _ in range(3):
        assert sender.round()
        due_at.append(client.zscore(keys.WEBHOOK_DUE, "room:lobby") / 1000 - clock.now)
        assert not sender.round()  # not due yet
        clock.advance(due_at[-1] + 0.001)
    assert due_at == sorted(due_at) and 0.25 <= due_at[0] <= 0.5 and due_at[2] >= 1
    assert sender.round()
    assert [body[0]["id"] for body in answers.bodies] == [answers.bodies[0][0]["id"]] * 4
    assert sender.counts.retries == 3
    assert sender.counts.batches == {DELIVERED: 1, REJECTED: 1, TIMEOUT: 1, UNREACHABLE: 1}
    assert sender.counts.events == {"delivered": 1, "failed": 3}


def old_message(client, room: str, age_s: float, text: str) -> None:
    """A message stored `age_s` ago, undelivered (as the outbox would hold it)."""
    client.hsetnx(keys.room_webhook(room), "cursor", "0-0")
    old_ms = int((time.time() - age_s) * 1000)
    client.xadd(keys.room_log(room), {"u": "alice", "t": text, "n": "node-a"}, id=f"{old_ms}-0")


def test_events_older_than_the_retry_time_are_dropped_counted_and_never_sent(client, hooked):
    clock = Clock(client)
    answers = Answers()
    sender = sender_of(hooked, answers, clock, retry_s=60)
    old_message(client, "lobby", 61, "old")
    hooked.messages.publish("lobby", "alice", "young", None)
    assert sender.round()
    assert [e["message"]["text"] for e in answers.bodies[-1]] == ["young"]
    assert sender.counts.dropped == 1
    assert client.exists(keys.room_webhook_pending("lobby")) == 0
    assert not sender.round()


def test_an_event_is_tried_until_the_retry_time_then_dropped(client, hooked):
    clock = Clock(client)
    answers = Answers(default=REJECTED)
    sender = sender_of(hooked, answers, clock, retry_s=60)
    hooked.messages.publish("lobby", "alice", "one", None)
    stored_s = time.time()
    while not sender.counts.dropped and clock.now < stored_s + 300:
        sender.round()
        clock.advance(5)
    assert stored_s + 60 < clock.now < stored_s + 60 + 60 + 10  # at most one pause late
    assert sender.counts.dropped == 1
    assert sender.counts.retries == len(answers.bodies) >= 5
    assert client.exists(keys.room_webhook_pending("lobby")) == 0


def test_everything_dropped_settles_the_outbox_without_a_request(client, hooked):
    clock = Clock(client)
    answers = Answers()
    sender = sender_of(hooked, answers, clock, retry_s=60)
    hooked.messages.publish("lobby", "alice", "old", None)
    clock.advance(120)
    assert sender.round()
    assert answers.bodies == [] and sender.counts.dropped == 1
    assert client.zcard(keys.WEBHOOK_DUE) == 0


def test_an_outbox_another_sender_holds_is_left_alone(client, hooked):
    clock, answers = Clock(), Answers()
    sender = sender_of(hooked, answers, clock)
    hooked.messages.publish("lobby", "alice", "one", None)
    other = hooked.webhooks.take(Outbox(ROOM, "lobby"), "another-node", 10_000, 10)
    assert other is not None
    assert not sender.round()
    assert answers.bodies == []
    hooked.webhooks.advance(other, [], "release")
    assert sender.round()
    assert len(answers.bodies) == 1


def test_a_page_of_due_outboxes_all_held_elsewhere_does_not_hide_the_next(client, hooked):
    from service.hooks.webhooks import DUE_SCAN

    clock, answers = Clock(client), Answers()
    sender = sender_of(hooked, answers, clock)
    for n in range(DUE_SCAN + 1):
        hooked.messages.publish(f"r{n:03}", "alice", "hi", None)
        if n < DUE_SCAN:  # a dead node's leases, say
            assert hooked.webhooks.take(Outbox(ROOM, f"r{n:03}"), "dead", 60_000, 1)
    assert not sender.round()
    assert sender.round()
    assert [event["room"] for event in answers.bodies[0]] == [f"r{DUE_SCAN:03}"]


def test_the_figures_tell_the_pending_outboxes_and_the_oldest_event(client, hooked):
    clock = Clock(client)
    sender = sender_of(hooked, Answers(REJECTED), clock)
    stored = hooked.messages.publish("lobby", "alice", "one", None)
    clock.now = stored.ts / 1000 + 5
    sender.refresh_figures()
    assert sender.counts.pending == 1
    assert sender.counts.oldest_pending_s == pytest.approx(5, abs=0.01)
    assert sender.round()  # failed: put off, and the oldest event recorded
    clock.advance(1)
    sender.refresh_figures()
    assert sender.counts.oldest_pending_s == pytest.approx(6, abs=0.01)


def test_the_loop_stops_when_asked(hooked):
    sender = sender_of(hooked, Answers(), Clock())
    thread = threading.Thread(target=sender.forever, args=(lambda: False,), daemon=True)
    thread.start()
    sender.wake()
    assert sender.stop(5)
    thread.join(5)
    assert not thread.is_alive()
