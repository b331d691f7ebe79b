"""The bus's frame format, version 1 (service/primitives/bus_format.py), and its channels."""

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from service.bus import channels
from service.primitives import bus_format
from service.store import keys


def test_an_event_frame_carries_the_socketio_arguments_as_they_go_into_the_packet():
    frame = bus_format.decode(bus_format.event("notice", {"text": "hi"}, skip="node-1|abc"))
    assert (frame.kind, frame.stored_id, frame.skip) == ("e", None, "node-1|abc")
    assert json.loads(frame.body) == ["notice", {"text": "hi"}]


def test_a_scripts_joined_pieces_are_the_stored_frame():
    data = {"room": "lobby", "user": "alice", "text": 'a "quoted" \\ text', "node": "n1"}
    pieces = bus_format.stored_template("message", data, skip="n1|s")
    joined = (pieces[0] + "1700000000000-3" + pieces[1] + "1700000000000-3" + pieces[2]
              + "1700000000000" + pieces[3]).encode()
    expected = bus_format.stored_event(
        "message", {"id": "1700000000000-3", "ts": 1700000000000, **data}, skip="n1|s")
    assert bus_format.decode(joined) == bus_format.decode(expected)
    assert json.loads(bus_format.decode(joined).body)[1]["ts"] == 1700000000000


def test_a_stored_template_of_empty_data_is_still_json():
    pieces = bus_format.stored_template("ping", {})
    joined = pieces[0] + "1-0" + pieces[1] + "1-0" + pieces[2] + "1" + pieces[3]
    assert json.loads(bus_format.decode(joined.encode()).body) == ["ping", {"id": "1-0", "ts": 1}]


def test_a_presence_template_joined_around_a_user_is_the_presence_event():
    head, tail = bus_format.presence_template("lobby", "leave")
    frame = bus_format.decode((head + "bob_1.x-y" + tail).encode())
    assert json.loads(frame.body) == ["presence", {"room": "lobby", "action": "leave",
                                                   "user": "bob_1.x-y"}]


def test_control_frames_carry_an_object():
    frame = bus_format.decode(bus_format.control({"disconnect": ["node-1|s"]}))
    assert frame.kind == "c" and frame.control() == {"disconnect": ["node-1|s"]}
    with pytest.raises(bus_format.UnknownFrame):
        bus_format.decode(b"1 c - -\n[1]").control()


@pytest.mark.parametrize("payload", [
    b"", b"hello", b"2 e - -\n[]", b"1 x - -\n[]", b"1 e -\n[]", b"\xff\xfe", b"1 e - - -\n[]",
])
def test_anything_else_is_not_a_frame(payload):
    with pytest.raises(bus_format.UnknownFrame):
        bus_format.decode(payload)


@given(st.text(max_size=200), st.dictionaries(st.text(max_size=10), st.integers(), max_size=3))
def test_any_text_round_trips(text, extra):
    frame = bus_format.decode(bus_format.event("e", {**extra, "text": text}))
    assert json.loads(frame.body)[1]["text"] == text


def test_channels_share_the_hash_tag_of_their_keys():
    room, user = channels.room("lobby"), channels.user("alice")
    assert keys.hash_tag(room.name) == keys.hash_tag(keys.room_log("lobby")) == "lobby"
    assert keys.hash_tag(keys.room_sent("lobby", "a", "{x}")) == "lobby"
    assert keys.hash_tag(user.name) == keys.hash_tag(keys.inbox("alice")) == "alice"
    assert keys.hash_tag(keys.account("alice")) == "alice"
    assert (room.local_room, user.local_room, channels.BROADCAST.local_room) == (
        "r:lobby", "u:alice", None)
    for channel in (room, user, channels.BROADCAST):
        assert channels.parse(channel.name) == channel
    assert channels.parse("flask-socketio") is None
    assert channels.parse("room:{x}:log") is None
