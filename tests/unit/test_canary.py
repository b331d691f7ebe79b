"""The delivery canary's bookkeeping (service/bus/canary.py), with a fake bus and clocks."""

from __future__ import annotations

import pytest

from service.bus import channels
from service.bus.canary import Canary
from service.errors import ServiceError


class Clocks:
    def __init__(self) -> None:
        self.wall = 1_000.0
        self.mono = 50.0

    def advance(self, seconds: float) -> None:
        self.wall += seconds
        self.mono += seconds


@pytest.fixture
def clocks() -> Clocks:
    return Clocks()


def make(clocks: Clocks, peers=(), fail=False):
    sent: list[tuple[str, dict]] = []

    def publish(channel, body):
        if fail:
            raise ServiceError("unavailable", "redis is down")
        sent.append((channel.name, body["canary"]))

    canary = Canary("node-a", publish, lambda: list(peers), interval_s=1, deadline_s=3,
                    clock=lambda: clocks.wall, monotonic=lambda: clocks.mono)
    return canary, sent


def test_each_round_sends_to_itself_and_to_the_next_peer_in_turn(clocks):
    canary, sent = make(clocks, peers=["node-c", "node-a", "node-b"])
    for _ in range(4):
        canary.send()
    targets = [name for name, _ in sent]
    own = channels.canary("node-a").name
    assert targets[0::2] == [own] * 4
    assert targets[1::2] == [channels.canary(p).name for p in ("node-c", "node-b", "node-c",
                                                                "node-b")]
    assert [body["n"] for name, body in sent if name == own] == [1, 2, 3, 4]
    assert canary.sent == 8


def test_hearing_its_own_canary_keeps_the_node_hearing_and_measures_lag(clocks):
    canary, sent = make(clocks)
    canary.send()
    clocks.advance(0.25)
    canary.heard(sent[-1][1])
    assert canary.lag_s["self"] == pytest.approx(0.25)
    assert canary.silent_for() == 0
    clocks.advance(2.9)
    assert not canary.deaf()


def test_silence_past_the_deadline_is_deaf_and_asks_for_one_reconnect_per_deadline(clocks):
    canary, _ = make(clocks)
    clocks.advance(3.1)
    assert canary.deaf()
    assert canary.to_reconnect() == [channels.canary("node-a")]
    clocks.advance(1)
    assert canary.to_reconnect() == [], "a second reconnect within the deadline"
    clocks.advance(3)
    assert canary.to_reconnect() == [channels.canary("node-a")]


def test_one_own_channel_per_master_and_each_must_be_heard(clocks):
    masters = ["m1", "m2", "m3"]
    sent: list[tuple[str, dict]] = []
    canary = Canary("node-a", lambda channel, body: sent.append((channel.name, body["canary"])),
                    lambda: [], 1, 3, masters=lambda: masters,
                    route=lambda name: masters[sum(name.encode()) % len(masters)],
                    clock=lambda: clocks.wall, monotonic=lambda: clocks.mono)
    own = canary.own_channels()
    assert len(own) == 3 and channels.canary("node-a") in own  # where peers send theirs
    assert sorted(masters[sum(c.name.encode()) % 3] for c in own) == masters
    canary.send()
    assert sorted(name for name, _ in sent) == sorted(c.name for c in own)
    clocks.advance(2)
    for _, body in sent[:2]:
        canary.heard(body)
    clocks.advance(1.5)
    assert canary.deaf(), "one master's canary was never heard"
    assert [c.name for c in canary.to_reconnect()] == [sent[2][0]]
    masters.pop()
    assert len(canary.own_channels()) == 2
    assert set(canary.heard_at) == {c.name for c in canary.own}


def test_gaps_in_a_senders_numbers_count_as_lost(clocks):
    canary, sent = make(clocks)
    for _ in range(5):
        canary.send()
    for _, body in (sent[0], sent[3], sent[4]):
        canary.heard(body)
    assert canary.lost == {"self": 2, "peer": 0}
    canary.heard({"from": "node-b", "n": 1, "ms": int(clocks.wall * 1000)})
    canary.heard({"from": "node-b", "n": 4, "ms": int(clocks.wall * 1000)})
    canary.heard({"from": "node-b", "n": 3, "ms": int(clocks.wall * 1000)})  # late: no loss
    assert canary.lost == {"self": 2, "peer": 2}


def test_a_canary_redis_did_not_take_keeps_its_number(clocks):
    canary, sent = make(clocks, fail=True)
    with pytest.raises(ServiceError):
        canary.send()
    canary.publish = lambda channel, body: sent.append((channel.name, body["canary"]))
    canary.send()
    assert [body["n"] for _, body in sent] == [1]
    assert canary.sent == 1


@pytest.mark.parametrize("junk", [None, "x", {"from": 3, "n": 1, "ms": 1},
                                  {"from": "node-a", "n": "1", "ms": 1},
                                  {"from": "node-a", "n": 1}])
def test_malformed_canaries_are_ignored(clocks, junk):
    canary, _ = make(clocks)
    clocks.advance(3.5)
    canary.heard(junk)
    assert canary.deaf()


def test_peers_that_left_are_forgotten(clocks):
    canary, _ = make(clocks, peers=["node-b"])
    canary.send()
    canary.heard({"from": "node-b", "n": 1, "ms": 1})
    canary.forget_peers({"node-a"})
    assert set(canary.numbers) == {channels.canary("node-a").name}
    assert canary.last_heard == {}
