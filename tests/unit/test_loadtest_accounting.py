"""The load tests' delivery accounting and pacing, on hand-made ledgers."""

from types import SimpleNamespace

import pytest

from loadtests import pacing
from loadtests.accounting import account, steady_delivery_rate


def receiver(room: str, ids: list[str], watermark: str | None = None) -> dict:
    return {"room": room, "node": "node-1", "watermark": watermark, "ids": ids, "listening": True}


def ledger(sent: dict, receivers: list[dict]) -> dict:
    return {"sent": sent, "send_failures": {}, "latencies": {"same_node": [], "cross_node": []},
            "receivers": {str(n): r for n, r in enumerate(receivers)}}


def test_a_clean_run_counts_every_delivery():
    sent = {"a": ["1000-0", "1001-0", "1002-0"]}
    result = account([ledger(sent, [receiver("a", ["1000-0", "1001-0", "1002-0"])])])
    assert (result.expected, result.delivered, result.lost) == (3, 3, 0)
    assert result.clean


def test_loss_duplicates_and_disorder_are_each_counted():
    sent = {"a": ["1000-0", "1001-0", "1002-0", "1003-0"]}
    got = ["1000-0", "1002-0", "1001-0", "1002-0"]  # 1003 lost, 1002 twice, 1001 late
    result = account([ledger(sent, [receiver("a", got)])])
    assert result.lost == 1
    assert result.duplicates == 1
    assert result.out_of_order == 1
    assert not result.clean


def test_a_receiver_is_owed_only_what_came_after_its_join():
    sent = {"a": ["1000-0", "1001-0", "1002-0"]}
    result = account([ledger(sent, [receiver("a", ["1002-0"], watermark="1001-0")])])
    assert (result.expected, result.lost) == (1, 0)


def test_ledgers_of_several_processes_are_merged():
    first = ledger({"a": ["1000-0"]}, [receiver("a", ["1000-0", "1001-0"])])
    second = ledger({"a": ["1001-0"]}, [receiver("a", ["1000-0"])])
    result = account([first, second])
    assert result.sent == 2
    assert (result.expected, result.delivered, result.lost) == (4, 3, 1)


def test_the_delivery_rate_counts_only_the_window_when_everyone_had_joined():
    sent = {"a": [f"{ms}-0" for ms in range(0, 10_001, 100)]}
    early = receiver("a", [f"{ms}-0" for ms in range(0, 10_001, 100)], watermark="0-0")
    late = receiver("a", [f"{ms}-0" for ms in range(5_100, 10_001, 100)], watermark="5000-0")
    # from 5 s to 10 s both receive 10 messages/s each
    assert steady_delivery_rate(sent, [early, late]) == pytest.approx(20.0)


def test_steady_rate_keeps_a_fixed_grid_and_skips_missed_slots(monkeypatch):
    clock = SimpleNamespace(now=100.0)
    monkeypatch.setattr(pacing.time, "monotonic", lambda: clock.now)
    wait = pacing.steady_rate(per_second=2)
    user = SimpleNamespace()
    first = wait(user)
    assert 0 <= first <= 0.5
    origin = clock.now + first
    clock.now = origin + 0.1  # the send took 100 ms
    assert wait(user) == pytest.approx(0.4)  # the grid, not 0.5 after the send
    clock.now = origin + 2.2  # a 1.7 s pause of the load generator
    assert wait(user) == pytest.approx(0.3)  # next slot at origin + 2.5, no burst of catch-ups


def test_direct_messages_are_owed_once_to_a_listening_recipient_in_inbox_order():
    from loadtests.accounting import Ledger, account

    ledger = Ledger()
    ledger.inbox_open = {"bob": [1000.0, 9000.0], "carol": [5000.0, 0]}
    ledger.direct_acknowledged("bob", "ld:a:1", 2000.0)  # delivered twice
    ledger.direct_acknowledged("bob", "ld:a:2", 3000.0)  # lost
    ledger.direct_acknowledged("carol", "ld:a:3", 4000.0)  # before carol listened: not owed
    ledger.direct_acknowledged("carol", "ld:a:4", 6000.0)  # delivered, out of order
    ledger.direct_received("bob", "ld:a:1", "20-0")
    ledger.direct_received("bob", "ld:a:1", "20-0")
    ledger.direct_received("carol", "ld:a:4", "40-0")
    ledger.direct_received("carol", "ld:a:5", "30-0")
    result = account([ledger.to_json()])
    assert (result.expected, result.delivered, result.lost, result.duplicates) == (3, 2, 1, 1)
    assert result.out_of_order == 1
    assert result.directs == 4
