"""Delivery accounting: what was sent to each room against what each receiver got.

Each load-generating process keeps a Ledger and writes it to a JSON file when the test stops;
`account()` merges the files of all processes. A receiver is owed every message of its room with
an id above its watermark (the room's newest id just after its join was acknowledged), up to the
moment it stopped listening; senders stop a drain period before the end, so every message sent
was owed to every receiver that was listening.

A send whose ack was lost is sent again with the same client_id (resend.py): the ledger holds the
id of its one ack, and counts the resends (`retries`). A receipt is a duplicate when its id was
received before, or when its client_id was received before under another id (a message stored
twice: what a resend must never do).
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import Any


def id_key(message_id: str) -> tuple[int, int]:
    ms, _, seq = message_id.partition("-")
    return int(ms), int(seq)


@dataclass
class Receiver:
    room: str
    node: str
    watermark: str | None = None
    ids: list[str] = field(default_factory=list)
    client_ids: list[str] = field(default_factory=list)  # of each receipt, beside `ids`
    listening: bool = False

    def received(self, message_id: str, client_id: str) -> None:
        self.ids.append(message_id)
        self.client_ids.append(client_id)

    def stored_twice(self) -> int:
        """Receipts whose client_id came before under another id: one send, stored again."""
        ids_of: dict[str, set[str]] = {}
        for client_id, message_id in zip(self.client_ids, self.ids, strict=True):
            if client_id:
                ids_of.setdefault(client_id, set()).add(message_id)
        return sum(len(ids) - 1 for ids in ids_of.values())

    def to_json(self) -> dict[str, Any]:
        return {"room": self.room, "node": self.node, "watermark": self.watermark,
                "ids": self.ids, "stored_twice": self.stored_twice(),
                "listening": self.listening}


@dataclass
class Ledger:
    """One process's record of sends and receipts.

    Direct messages are owed to their recipient connection when they were acknowledged while it
    was listening (`inbox_open`: from its welcome until it stopped); senders pick recipients in
    their own process, so one clock decides."""

    sent: dict[str, list[str]] = field(default_factory=dict)  # room -> acknowledged ids
    send_failures: Counter = field(default_factory=Counter)  # error code -> count
    retries: int = 0  # sends and directs sent again after a lost ack
    receivers: dict[str, Receiver] = field(default_factory=dict)  # connection id -> receiver
    latencies: dict[str, list[float]] = field(default_factory=lambda: {"same_node": [],
                                                                        "cross_node": []})
    directs: list[tuple[str, str, float]] = field(default_factory=list)  # to, client_id, at ms
    inbox: dict[str, list[tuple[str, str]]] = field(default_factory=dict)  # uid -> client_id, id
    inbox_open: dict[str, list[float]] = field(default_factory=dict)  # uid -> [from ms, to ms]

    def acknowledged(self, room: str, message_id: str) -> None:
        self.sent.setdefault(room, []).append(message_id)

    def received(self, receiver_id: str, message_id: str, client_id: str = "") -> None:
        self.receivers[receiver_id].received(message_id, client_id)

    def direct_acknowledged(self, recipient: str, client_id: str, at_ms: float) -> None:
        self.directs.append((recipient, client_id, at_ms))

    def direct_received(self, recipient: str, client_id: str, message_id: str) -> None:
        self.inbox.setdefault(recipient, []).append((client_id, message_id))

    def to_json(self) -> dict[str, Any]:
        return {
            "sent": self.sent,
            "send_failures": dict(self.send_failures),
            "retries": self.retries,
            "receivers": {key: r.to_json() for key, r in self.receivers.items() if r.listening},
            "latencies": self.latencies,
            "directs": self.directs,
            "inbox": self.inbox,
            "inbox_open": self.inbox_open,
        }

    def write(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_json()))


@dataclass
class Accounting:
    expected: int = 0
    delivered: int = 0
    lost: int = 0
    duplicates: int = 0
    out_of_order: int = 0
    deliveries_per_s: float = 0.0
    sent: int = 0
    send_failures: dict[str, int] = field(default_factory=dict)
    retries: int = 0  # resends after a lost ack, each acknowledged at most once
    latencies: dict[str, list[float]] = field(default_factory=dict)
    directs: int = 0  # direct messages received (among the deliveries)

    @property
    def clean(self) -> bool:
        return self.lost == 0 and self.duplicates == 0 and self.out_of_order == 0


def account(ledgers: list[dict[str, Any]]) -> Accounting:
    """Merge the ledgers of every process and count what each receiver was owed and got."""
    sent: dict[str, list[str]] = {}
    failures: Counter = Counter()
    latencies: dict[str, list[float]] = {"same_node": [], "cross_node": []}
    receivers: list[dict[str, Any]] = []
    for ledger in ledgers:
        for room, ids in ledger["sent"].items():
            sent.setdefault(room, []).extend(ids)
        failures.update(ledger["send_failures"])
        receivers.extend(ledger["receivers"].values())
        for kind, values in ledger["latencies"].items():
            latencies[kind].extend(values)
    result = Accounting(sent=sum(len(ids) for ids in sent.values()),
                        send_failures=dict(failures), latencies=latencies,
                        retries=sum(ledger.get("retries", 0) for ledger in ledgers))
    for receiver in receivers:
        watermark = id_key(receiver["watermark"]) if receiver["watermark"] else (-1, -1)
        owed = {i for i in sent.get(receiver["room"], []) if id_key(i) > watermark}
        got = receiver["ids"]
        counts = Counter(got)
        result.expected += len(owed)
        result.delivered += len(owed & counts.keys())
        result.lost += len(owed - counts.keys())
        result.duplicates += sum(n - 1 for n in counts.values() if n > 1)
        result.duplicates += receiver.get("stored_twice", 0)
        keys = [id_key(i) for i in got]
        result.out_of_order += sum(1 for a, b in pairwise(keys) if b < a)
    result.deliveries_per_s = steady_delivery_rate(sent, receivers)
    for ledger in ledgers:
        add_directs(result, ledger)
    return result


def add_directs(result: Accounting, ledger: dict[str, Any]) -> None:
    """Direct messages of one process: each owed once, in inbox order, to its recipient."""
    inbox = ledger.get("inbox", {})
    windows = ledger.get("inbox_open", {})
    for recipient, client_id, at_ms in ledger.get("directs", []):
        window = windows.get(recipient)
        if window is None or not window[0] < at_ms < (window[1] or float("inf")):
            continue
        got = [cid for cid, _ in inbox.get(recipient, [])].count(client_id)
        result.expected += 1
        result.delivered += min(got, 1)
        result.lost += 1 if got == 0 else 0
        result.duplicates += max(0, got - 1)
    for received in inbox.values():
        keys = [id_key(message_id) for _, message_id in received]
        result.out_of_order += sum(1 for a, b in pairwise(keys) if b < a)
    result.directs += sum(len(received) for received in inbox.values())


def steady_delivery_rate(sent: dict[str, list[str]], receivers: list[dict[str, Any]]) -> float:
    """Deliveries per second of the messages stored while every receiver was in its room.

    Message ids carry Redis's clock in milliseconds, so the window runs from the last receiver's
    join (its watermark) to the last acknowledged message, on one clock."""
    stored = [id_key(i)[0] for ids in sent.values() for i in ids]
    if not stored:
        return 0.0
    joined = [id_key(r["watermark"])[0] for r in receivers if r["watermark"]]
    start = max(joined, default=min(stored))
    end = max(stored)
    if end - start < 1000:
        start = min(stored)
    count = sum(1 for r in receivers for i in r["ids"] if start < id_key(i)[0] <= end)
    return round(count / max((end - start) / 1000, 0.001), 1)


def load_ledgers(folder: Path) -> list[dict[str, Any]]:
    return [json.loads(path.read_text()) for path in sorted(folder.glob("ledger-*.json"))]
