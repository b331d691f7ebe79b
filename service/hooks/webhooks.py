"""The webhook sender: every node's loop that takes due rooms and inboxes from the outbox's index
and POSTs their events to WEBHOOK_URL in batches `{"events": [...]}` (PROTOCOL.md, "Webhooks").

Guarantees (the store's side, and why nothing is lost, is in store/outbox.py)
- At least once: an outbox's cursor moves only after a batch holding its events was answered
  2xx, by the sender that still holds its lease; anything else (another status, a timeout, no
  connection, a node that dies on the way) leaves the events to be sent again, with the same ids.
- In stored order per room and per inbox: one sender at a time holds an outbox (its lease, in
  Redis, outlasts the longest request: 2 x HOOK_TIMEOUT_S + 5 s), sends its oldest undelivered
  events, oldest first, and the next batch starts after what was delivered. A batch may hold
  several outboxes' events, each outbox's consecutive.
- Failures pause the outbox, growing (batching.py: 0.5 s doubling to min(300 s,
  WEBHOOK_RETRY_S), jittered); the pause lives in the index, so whichever node tries next keeps
  to it. A receiver that answers again gets everything still within WEBHOOK_RETRY_S.
- Events older than WEBHOOK_RETRY_S are dropped at the next try (the cursor moves past them),
  counted (`dropped`) and logged, one line per outbox and try. Failed requests are logged at most
  every FAILURE_LOG_EVERY_S per node, with how many failed since the last line.
- Every WEBHOOK_SWEEP_S one node (under a lease) indexes again any outbox a crash left
  unindexed.

It runs on every node in a background task of its own (node.py), until the node drains, when
it finishes the batch in flight and stops.
"""

from __future__ import annotations

import logging
import random
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

import redis

from ..errors import ServiceError
from ..store.outbox import Advanced, Entry, Outbox, Taken, Webhooks
from .batching import Batch, backoff_s, events_in, split_expired
from .delivery import DELIVERED, OUTCOMES, Answer, Poster

log = logging.getLogger("service.webhooks")
POLL_S = 0.2  # how often an idle sender looks at the index (its own node's appends wake it)
# a round that did not fill its batch waits this long before the next, and so does a sender woken
# from idle: events of other rooms and inboxes that come meanwhile share one request (measured
# with `make bench PARTS=app`: without it, nearly every message was a request of its own)
LINGER_S = 0.05
DUE_SCAN = 32  # due outboxes read per round
FIGURES_EVERY_S = 1.0
FAILURE_LOG_EVERY_S = 5.0  # a receiver that is down logs a line this often per node, not per try


@dataclass
class Counts:
    """What this node's sender did since it started (the metrics and the cluster page)."""

    batches: dict[str, int] = field(default_factory=lambda: dict.fromkeys(OUTCOMES, 0))
    events: dict[str, int] = field(default_factory=lambda: {"delivered": 0, "failed": 0})
    retries: int = 0  # outboxes put off after a failed try
    dropped: int = 0  # events older than WEBHOOK_RETRY_S, never delivered
    pending: int = 0  # outboxes with undelivered events, cluster-wide (the index)
    oldest_pending_s: float = 0.0  # age of the oldest undelivered event the index tells of


class WebhookSender:
    def __init__(self, webhooks: Webhooks, poster: Poster, *, node: str, retry_s: float,
                 batch_max: int, sweep_s: float, timeout_s: float,
                 clock: Callable[[], float] = time.time,
                 monotonic: Callable[[], float] = time.monotonic,
                 rng: random.Random | None = None):
        self.webhooks = webhooks
        self.poster = poster
        self.node = node
        self.retry_s = retry_s
        self.batch_max = batch_max
        self.sweep_s = sweep_s
        self.lease_ms = int((2 * timeout_s + 5) * 1000)
        self.request_s = timeout_s + 1  # the longest a request takes (delivery.py)
        self.clock = clock
        self.monotonic = monotonic
        self.rng = rng or random.Random()
        self.counts = Counts()
        self._wake = threading.Event()
        self._halt = threading.Event()  # set by stop(): ends a linger at once
        self._filled = False  # whether the last round's batch was full
        self._stopping = False
        self._stopped = threading.Event()
        self._failing: str | None = None
        self._offset = 0  # where in the due outboxes the next round looks
        self._failure_logged_at = -FAILURE_LOG_EVERY_S
        self._unlogged_failures = 0

    # ---- the loop ------------------------------------------------------------------------------

    def wake(self) -> None:
        """An outbox was indexed on this node: look at the index now."""
        self._wake.set()

    def forever(self, closed: Callable[[], bool]) -> None:
        """Rounds until `closed()` or `stop()`; pauses POLL_S while nothing is due."""
        next_sweep = self.monotonic() + self.rng.uniform(0, self.sweep_s)
        next_figures = 0.0
        try:
            while not closed() and not self._stopping:
                self._wake.clear()
                worked = False
                try:
                    worked = self.round()
                    now = self.monotonic()
                    if now >= next_figures:
                        self.refresh_figures()
                        next_figures = now + FIGURES_EVERY_S
                    if now >= next_sweep:
                        self.sweep()
                        next_sweep = now + self.sweep_s * self.rng.uniform(0.9, 1.1)
                    self._recovered()
                except (ServiceError, redis.RedisError, OSError) as error:
                    self._failed(str(getattr(error, "message", error.__class__.__name__)))
                except Exception:
                    log.exception("node=%s webhook round failed", self.node)
                if not worked:
                    if self._wake.wait(POLL_S):
                        self._halt.wait(LINGER_S)
                elif not self._filled:
                    self._halt.wait(LINGER_S)
        finally:
            self._stopped.set()

    def stop(self, wait_s: float) -> bool:
        """Finish the batch in flight and stop; whether it stopped within `wait_s`."""
        self._stopping = True
        self._halt.set()
        self._wake.set()
        return self._stopped.wait(wait_s)

    def _failed(self, why: str) -> None:
        if self._failing is None:
            log.error("node=%s webhook sender cannot reach Redis: %s", self.node, why)
        self._failing = why

    def _recovered(self) -> None:
        if self._failing is not None:
            log.info("node=%s webhook sender reaches Redis again", self.node)
            self._failing = None

    # ---- one round -------------------------------------------------------------------------------

    def round(self) -> bool:
        """Take due outboxes (each under its lease) until a batch is full, drop what is too
        old, POST the rest, and settle each outbox by the answer. Whether there was anything to
        do (an idle sender pauses)."""
        due = self.webhooks.due(DUE_SCAN, self._offset)
        self.rng.shuffle(due)  # nodes that look at once take different outboxes first
        token = uuid.uuid4().hex
        batch = Batch(self.batch_max)
        started = self.monotonic()
        worked = False
        for outbox in due:
            if batch.full():
                break
            taken = self.webhooks.take(outbox, token, self.lease_ms, batch.room_left())
            if taken is None:
                continue  # another node's now
            worked = True
            fresh = self._drop_expired(taken)
            if fresh is None:
                continue
            added = batch.add(taken, fresh)
            if not added:
                self._settle(outbox, self.webhooks.advance(taken, [], "release"))
        # a page of due outboxes that all are another's (their leases outlive a dead node's
        # requests) must not hide those after it: look further on the next round
        self._offset = self._offset + DUE_SCAN if len(due) == DUE_SCAN and not worked else 0
        self._filled = batch.full()
        if not batch.parts:
            return worked
        if self.monotonic() - started > self.lease_ms / 1000 - self.request_s - 1:
            for part in batch.parts:  # too slow to be sure the leases outlast the request
                self._settle(part.taken.outbox, self.webhooks.advance(part.taken, [], "release"))
            return True
        if batch.count() == 0:  # only entries that are no events: nothing to send
            self._delivered(batch)
            return True
        answer = self.poster.post(batch.body())
        self.counts.batches[answer.outcome] += 1
        if answer.outcome == DELIVERED:
            self.counts.events["delivered"] += batch.count()
            self._delivered(batch)
        else:
            self.counts.events["failed"] += batch.count()
            self._put_off(batch, answer)
        return True

    def _drop_expired(self, taken: Taken) -> list[Entry] | None:
        """Drop (move past, count, log) the taken entries older than WEBHOOK_RETRY_S; the
        others, or None when nothing is left to send (the outbox is settled then)."""
        outbox = taken.outbox
        floor_ms = int((self.clock() - self.retry_s) * 1000)
        expired, fresh = split_expired(taken.entries, floor_ms)
        dropped = events_in(expired) + taken.expired
        if dropped:
            self.counts.dropped += dropped
            log.warning("node=%s dropped %d webhook events of %s %s: older than "
                        "WEBHOOK_RETRY_S (%g s) and never delivered", self.node, dropped,
                        outbox.kind, outbox.target, self.retry_s)
        if fresh:
            if expired and self.webhooks.advance(taken, expired, "keep").state == "lost":
                return None
            return fresh
        self._settle(outbox, self.webhooks.advance(taken, expired, "release"))
        return None

    def _delivered(self, batch: Batch) -> None:
        for part in batch.parts:
            advanced = self.webhooks.advance(part.taken, part.entries, "delivered")
            if advanced.state == "lost":
                log.warning("node=%s lost the webhook lease of %s %s before its batch was "
                            "answered: another node sends it again", self.node,
                            part.taken.outbox.kind, part.taken.outbox.target)
            self._settle(part.taken.outbox, advanced)

    def _put_off(self, batch: Batch, answer: Answer) -> None:
        status = f"HTTP {answer.status}" if answer.status is not None else answer.outcome
        now = self.clock()
        longest = 0.0
        for part in batch.parts:
            pause = backoff_s(part.taken.failures + 1, self.retry_s, self.rng.random)
            if self.webhooks.failed(part.taken, int(pause * 1000)) is None:
                continue  # the lease had expired: another node has it
            longest = max(longest, pause)
            self.webhooks.schedule(part.taken.outbox, int((now + pause) * 1000),
                                   part.entries[0].ms)
            self.counts.retries += 1
        self._unlogged_failures += 1
        if self.monotonic() - self._failure_logged_at >= FAILURE_LOG_EVERY_S:
            log.warning("node=%s webhook request of %d events failed (%s after %.2f s), tried "
                        "again in %.1f s; %d failed requests since the last such line",
                        self.node, batch.count(), status, answer.seconds, longest,
                        self._unlogged_failures)
            self._failure_logged_at = self.monotonic()
            self._unlogged_failures = 0

    def _settle(self, outbox: Outbox, advanced: Advanced) -> None:
        if advanced.state == "done":
            self.webhooks.settled(outbox)
        elif advanced.state == "more":
            self.webhooks.schedule(outbox, int(self.clock() * 1000),
                                   advanced.oldest_left_ms or int(self.clock() * 1000))

    # ---- around the rounds -----------------------------------------------------------------------

    def sweep(self) -> None:
        """Index again outboxes a crash left out (one node per WEBHOOK_SWEEP_S)."""
        found = self.webhooks.sweep(int(self.sweep_s * 900))
        if found:
            log.warning("node=%s webhook sweep found %d rooms or inboxes with undelivered "
                        "events that were not indexed (a node stopped between storing and "
                        "indexing): indexed again", self.node, found)

    def refresh_figures(self) -> None:
        """Pending outboxes and the age of the oldest undelivered event, cluster-wide."""
        figures = self.webhooks.figures()
        now_ms = self.clock() * 1000
        oldest = [ms for ms in (figures.oldest_event_ms, figures.earliest_due_ms)
                  if ms is not None and ms <= now_ms]
        self.counts.pending = figures.outboxes
        self.counts.oldest_pending_s = (now_ms - min(oldest)) / 1000 if oldest else 0.0
