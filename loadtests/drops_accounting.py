"""The drops probe's figures: every acknowledged message against what each receiver of its room
recorded (loadtests/drops_probe.js writes the record; `account` reads it).

A message is one client_id. It is owed to every receiver of its room once its send was
acknowledged; a receiver has it when it recorded any message with that client_id. So
`delivered_percent` is the share of (acknowledged message, receiver of its room) pairs received
at least once, rounded down: 100.0 only when nothing is missing.

Where the losses come from, each counted once:
- missing, by the message's server time (its ack's `ts`) against the receiver's outages, each
  from a disconnect to the moment it was back in its room (the connect when Socket.IO recovered
  it, else its join's answer), widened by MARGIN_MS on both sides for messages still in flight:
  `recovered` (Socket.IO said it recovered the connection, and the replay lacked the message),
  `rejoined` (a join {room, since} did not return it), `never_back` (the receiver was not in its
  room again by the end), `connected` (lost on a connection that was up, away from any outage).
- duplicates, receipts beyond the first of one client_id: `stored_twice` (another id: a resend
  the server stored again), `in_missed` (the same id again in a join's `missed`), `as_event` (the
  same id again as a `message` event: a replay or a second delivery).
- out of order: first receipts of an id below one received before in the room, by how they came
  (`in_missed` or `as_event`).
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from loadtests.accounting import id_key

MARGIN_MS = 1000
MISSING_CAUSES = ("recovered", "rejoined", "never_back", "connected")
DUPLICATE_CAUSES = ("stored_twice", "in_missed", "as_event")
VIA = {"missed": "in_missed", "event": "as_event"}


@dataclass(frozen=True)
class Outage:
    down_ms: int
    back_ms: int | None  # None: not back in its room by the end
    kind: str  # recovered, rejoined, never_back

    def covers(self, ts: int) -> bool:
        back = math.inf if self.back_ms is None else self.back_ms + MARGIN_MS
        return self.down_ms - MARGIN_MS <= ts <= back


@dataclass
class Figures:
    acknowledged: int = 0
    unacknowledged_sends: int = 0
    resends: int = 0
    send_errors: Counter = field(default_factory=Counter)
    expected: int = 0
    delivered: int = 0
    missing: Counter = field(default_factory=Counter)
    duplicates: Counter = field(default_factory=Counter)
    out_of_order: Counter = field(default_factory=Counter)
    delivered_unacknowledged: int = 0
    reconnects: Counter = field(default_factory=Counter)
    truncated_joins: int = 0


def outages(events: list[list[Any]]) -> list[Outage]:
    """The receiver's outages from its events: ['d', ms, reason] a disconnect, ['c', ms, 1|0] a
    connect (recovered or not), ['j', ms, missed, truncated] a join answered. The probe's own
    closing disconnect ('io client disconnect') is not an outage."""
    spans: list[Outage] = []
    down: int | None = None
    recovered = False
    connected = False
    for kind, ms, *rest in events:
        if kind == "d" and rest and rest[0] == "io client disconnect":
            break
        if kind == "d":
            if down is None:
                down, connected = ms, False
        elif kind == "c":
            connected, recovered = True, bool(rest[0])
            if down is not None and recovered:
                spans.append(Outage(down, ms, "recovered"))
                down = None
        elif kind == "j" and connected and down is not None:
            spans.append(Outage(down, ms, "rejoined"))
            down = None
    if down is not None:
        spans.append(Outage(down, None, "never_back"))
    return spans


def missing_cause(ts: int, spans: list[Outage]) -> str:
    for span in spans:
        if span.covers(ts):
            return span.kind
    return "connected"


def count_sends(record: dict, figures: Figures) -> dict[str, tuple[str, str, int]]:
    """Acknowledged messages: client_id -> (room, id, ts)."""
    acked = {}
    for sender in record["senders"]:
        for client_id, message_id, attempts, errors, *ts in sender["messages"]:
            figures.send_errors.update(errors)
            if message_id is None:
                figures.unacknowledged_sends += 1
                continue
            figures.resends += attempts - 1
            acked[client_id] = (sender["room"], message_id, ts[0] if ts else 0)
    figures.acknowledged = len(acked)
    return acked


def count_receiver(receiver: dict, owed: dict[str, tuple[str, int]], seeds: set[str],
                   figures: Figures) -> None:
    """One receiver's receipts ([id, client_id, via, ms]) against what it is owed
    (client_id -> (id, ts))."""
    ids_of: dict[str, set[str]] = {}
    seen: set[str] = set()
    newest: tuple[int, int] | None = None
    for message_id, client_id, via, _at in receiver["messages"]:
        if client_id in seeds:
            continue
        key = client_id or message_id
        if key in ids_of:
            cause = VIA[via] if message_id in ids_of[key] else "stored_twice"
            figures.duplicates[cause] += 1
        elif client_id not in owed:
            figures.delivered_unacknowledged += 1
        ids_of.setdefault(key, set()).add(message_id)
        if message_id not in seen:
            seen.add(message_id)
            position = id_key(message_id)
            if newest is not None and position < newest:
                figures.out_of_order[VIA[via]] += 1
            else:
                newest = position
    spans = outages(receiver["events"])
    figures.reconnects.update(span.kind for span in spans)
    figures.truncated_joins += sum(1 for event in receiver["events"]
                                   if event[0] == "j" and event[3])
    figures.expected += len(owed)
    for client_id, (_message_id, ts) in owed.items():
        if client_id in ids_of:
            figures.delivered += 1
        else:
            figures.missing[missing_cause(ts, spans)] += 1


def account(record: dict) -> dict[str, Any]:
    """The figures of one probe run, as one JSON-ready row."""
    figures = Figures()
    acked = count_sends(record, figures)
    seeds = {seed["client_id"] for seed in record["seeds"].values()}
    for receiver in record["receivers"]:
        owed = {client_id: (message_id, ts)
                for client_id, (room, message_id, ts) in acked.items()
                if room == receiver["room"]}
        count_receiver(receiver, owed, seeds, figures)
    expected = figures.expected
    return {
        "mode": record["mode"],
        "receivers": len(record["receivers"]),
        "senders": len(record["senders"]),
        "acknowledged": figures.acknowledged,
        "unacknowledged_sends": figures.unacknowledged_sends,
        "resends": figures.resends,
        "send_errors": dict(figures.send_errors),
        "expected": expected,
        "delivered": figures.delivered,
        "delivered_percent": (math.floor(10000 * figures.delivered / expected) / 100
                              if expected else None),
        "missing": sum(figures.missing.values()),
        "missing_by_cause": {cause: figures.missing[cause] for cause in MISSING_CAUSES},
        "duplicates": sum(figures.duplicates.values()),
        "duplicates_by_cause": {cause: figures.duplicates[cause] for cause in DUPLICATE_CAUSES},
        "out_of_order": sum(figures.out_of_order.values()),
        "out_of_order_by_way": {way: figures.out_of_order[way] for way in VIA.values()},
        "delivered_unacknowledged": figures.delivered_unacknowledged,
        "receiver_reconnects": dict(figures.reconnects),
        "truncated_joins": figures.truncated_joins,
        "settled": record["settled"],
        "sent_for_s": round(record["sent_for_s"], 1),
        "settle_for_s": round(record["settle_for_s"], 1),
    }
