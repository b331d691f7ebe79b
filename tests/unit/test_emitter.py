"""Emitting to a room, a user or everyone from any process (service/bus/emitter.py)."""

import json

import pytest
import redis

from service.bus import channels
from service.bus.emitter import Emitter
from service.primitives import bus_format


@pytest.fixture
def emitter(redis_server):
    emitter = Emitter.connect(redis_server.url)
    yield emitter
    emitter.close()


@pytest.fixture
def listen(redis_server):
    pubsub = redis.Redis.from_url(redis_server.url).pubsub(ignore_subscribe_messages=True)
    names = [channels.room("lobby").name, channels.user("alice").name, channels.BROADCAST.name]
    pubsub.ssubscribe(*names)
    for _ in names:
        pubsub.get_sharded_message(timeout=1)

    def frames():
        got = []
        while (item := pubsub.get_sharded_message(timeout=0.3)) is not None:
            got.append((item["channel"].decode(), bus_format.decode(item["data"])))
        return got

    yield frames
    pubsub.close()


def test_events_go_to_the_channel_of_their_target(emitter, listen):
    emitter.to_room("lobby", "announcement", {"text": "hi room"})
    emitter.to_user("alice", "notice", {"text": "hi alice"})
    emitter.to_all("reload", {"reason": "new version"})
    got = [(channel, json.loads(frame.body)) for channel, frame in listen()]
    assert got == [
        (channels.room("lobby").name, ["announcement", {"text": "hi room"}]),
        (channels.user("alice").name, ["notice", {"text": "hi alice"}]),
        (channels.BROADCAST.name, ["reload", {"reason": "new version"}]),
    ]


@pytest.mark.parametrize(("call", "error"), [
    (lambda e: e.emit("connect", {}), "Socket.IO's own"),
    (lambda e: e.emit("", {}), "1-64 characters"),
    (lambda e: e.emit("x" * 65, {}), "1-64 characters"),
    (lambda e: e.emit("ok", {}, room="no spaces"), "room"),
    (lambda e: e.emit("ok", {}, user="a b"), "user must be 1-64"),
    (lambda e: e.emit("ok", {}, room="lobby", user="alice"), "not both"),
    (lambda e: e.emit("ok", {"x": object()}), "must be JSON"),
])
def test_bad_emits_are_refused_and_publish_nothing(emitter, listen, call, error):
    with pytest.raises(ValueError, match=error):
        call(emitter)
    assert listen() == []
