"""The local membership (service/realtime/manager.py) with python-socketio's real Server and
stand-ins for the bus and for the connections' sockets: subscribing on the first join and
unsubscribing on the last leave, delivery encoded once, and resuming connections held back."""

from __future__ import annotations

import json
import threading

import pytest
import socketio

from service.bus import channels
from service.errors import ServiceError
from service.primitives import bus_format
from service.realtime.manager import NAMESPACE, RoomsManager

LOBBY = channels.socketio_room("lobby")


class Socket:
    """An Engine.IO socket as far as delivery reaches: it records what is sent to it."""

    def __init__(self) -> None:
        self.sent: list[bytes] = []
        self.closed = False

    def send(self, packet) -> None:
        self.sent.append(packet._frame)


class Bus:
    def __init__(self) -> None:
        self.subscribed: list[str] = []
        self.calls: list[tuple[str, str]] = []
        self.refuse = False
        self.entered = threading.Event()  # set while a subscribe is under way
        self.proceed = threading.Event()
        self.proceed.set()

    def subscribe(self, channel) -> bool:
        self.calls.append(("subscribe", channel.name))
        self.entered.set()
        self.proceed.wait(5)
        if self.refuse:
            raise ServiceError("unavailable", "no")
        self.subscribed.append(channel.name)
        return True

    def unsubscribe(self, channel) -> None:
        self.calls.append(("unsubscribe", channel.name))
        if channel.name in self.subscribed:
            self.subscribed.remove(channel.name)


@pytest.fixture
def bus():
    return Bus()


@pytest.fixture
def manager(bus):
    manager = RoomsManager(bus.subscribe, bus.unsubscribe)
    socketio.Server(client_manager=manager, async_mode="threading")
    return manager


def connect(manager, name: str) -> str:
    """A connected Socket.IO connection of the manager's server, with a recording socket."""
    sid = manager.connect(name, NAMESPACE)
    manager.server.eio.sockets[name] = Socket()
    return sid


def _event(frame: bytes) -> dict:
    payload = frame[2:] if frame[1] < 126 else frame[4:]  # a server frame: no mask
    assert payload[:2] == b"42", payload
    return json.loads(payload[2:])[1]


def test_the_first_to_enter_subscribes_and_the_last_to_leave_unsubscribes(manager, bus):
    alice, bob = connect(manager, "e-alice"), connect(manager, "e-bob")
    manager.enter_room(alice, NAMESPACE, LOBBY)
    manager.enter_room(bob, NAMESPACE, LOBBY)
    assert bus.calls == [("subscribe", channels.room("lobby").name)]
    manager.leave_room(alice, NAMESPACE, LOBBY)
    assert bus.subscribed == [channels.room("lobby").name]
    manager.disconnect(bob, NAMESPACE)
    assert bus.calls[-1] == ("unsubscribe", channels.room("lobby").name)
    assert not manager.serves(LOBBY)


def test_membership_is_answered_per_connection_and_room(manager):
    alice, bob = connect(manager, "e-alice"), connect(manager, "e-bob")
    manager.enter_room(alice, NAMESPACE, LOBBY)
    assert manager.has(alice, LOBBY) and not manager.has(bob, LOBBY)
    assert not manager.has(alice, channels.socketio_room("elsewhere"))
    manager.leave_room(alice, NAMESPACE, LOBBY)
    assert not manager.has(alice, LOBBY)


def test_a_connections_own_room_is_not_a_channel(manager, bus):
    sid = connect(manager, "e-1")
    manager.enter_room(sid, NAMESPACE, "plain-room")
    assert bus.calls == []


def test_a_refused_subscription_leaves_the_connection_out(manager, bus):
    sid = connect(manager, "e-1")
    bus.refuse = True
    with pytest.raises(ServiceError):
        manager.enter_room(sid, NAMESPACE, LOBBY)
    assert not manager.serves(LOBBY) and LOBBY not in manager.get_rooms(sid, NAMESPACE)


def test_a_room_emptied_while_one_enters_it_keeps_its_channel(manager, bus):
    entering, leaving = connect(manager, "e-entering"), connect(manager, "e-leaving")
    bus.proceed.clear()  # the subscribe waits, as one waiting for Redis
    worker = threading.Thread(target=manager.enter_room, args=(entering, NAMESPACE, LOBBY))
    worker.start()
    assert bus.entered.wait(5)
    manager.leave_room(leaving, NAMESPACE, LOBBY)  # the room is empty, but one is entering
    bus.proceed.set()
    worker.join(5)
    assert ("unsubscribe", channels.room("lobby").name) not in bus.calls
    assert manager.connections_in(LOBBY) == [entering]
    assert bus.subscribed == [channels.room("lobby").name]


def live(manager, message_id: str, skip: str | None = None) -> int:
    data = {"id": message_id, "room": "lobby", "text": message_id}
    frame = bus_format.decode(bus_format.stored_event("message", data))
    return manager.deliver(LOBBY, frame.body, skip, frame.stored_id)


def ids(manager, name: str) -> list[str]:
    return [event["id"] for event in map(_event, manager.server.eio.sockets[name].sent)]


def test_delivery_reaches_the_rooms_connections_but_the_one_skipped(manager):
    sids = {name: connect(manager, name) for name in ("e-a", "e-b", "e-c")}
    for sid in list(sids.values())[:2]:
        manager.enter_room(sid, NAMESPACE, LOBBY)
    assert live(manager, "1-0") == 2
    assert live(manager, "2-0", skip=sids["e-a"]) == 1
    assert ids(manager, "e-a") == ["1-0"] and ids(manager, "e-b") == ["1-0", "2-0"]
    assert ids(manager, "e-c") == []
    sockets = manager.server.eio.sockets
    assert sockets["e-a"].sent[0] is sockets["e-b"].sent[0]  # encoded once for all


def test_a_message_of_the_answer_arriving_after_it_is_not_delivered_again(manager):
    joiner, other = connect(manager, "e-joiner"), connect(manager, "e-other")
    for sid in (joiner, other):
        manager.enter_room(sid, NAMESPACE, LOBBY)
    manager.hold(joiner, LOBBY)
    live(manager, "100-0")  # arrives while the join runs: held
    manager.release(joiner, LOBBY, "101-0")  # the answer's missed ended at 101-0
    live(manager, "101-0")  # stored before the join, reaches the subscription only now
    live(manager, "102-0")
    assert ids(manager, "e-joiner") == ["102-0"]
    assert ids(manager, "e-other") == ["100-0", "101-0", "102-0"]
    assert manager.answered == {}  # past the answer, nothing is remembered for the room


def test_held_messages_newer_than_the_answer_follow_it_to_the_joiner_alone(manager):
    joiner, other = connect(manager, "e-joiner"), connect(manager, "e-other")
    for sid in (joiner, other):
        manager.enter_room(sid, NAMESPACE, LOBBY)
    manager.hold(joiner, LOBBY)
    live(manager, "100-0")
    live(manager, "105-0")
    assert manager.release(joiner, LOBBY, "101-0") == 1
    assert ids(manager, "e-joiner") == ["105-0"]
    assert ids(manager, "e-other") == ["100-0", "105-0"]


def test_a_connection_that_leaves_is_forgotten(manager):
    joiner = connect(manager, "e-joiner")
    manager.enter_room(joiner, NAMESPACE, LOBBY)
    manager.hold(joiner, LOBBY)
    manager.release(joiner, LOBBY, "101-0")
    manager.disconnect(joiner, NAMESPACE)
    assert manager.held == {} and manager.answered == {}


class Recorder:
    """An Engine.IO socket that records the Socket.IO events python-socketio sends it."""

    def __init__(self) -> None:
        self.events: list[list] = []
        self.closed = False

    def send(self, packet) -> None:
        self.events.append(json.loads(packet.encode()[2:].lstrip("0123456789")))  # no ack id


def test_a_connection_has_no_room_of_its_own_yet_to_sid_reaches_it(manager):
    sids = {}
    for name in ("e-a", "e-b"):
        sids[name] = manager.connect(name, NAMESPACE)
        manager.server.eio.sockets[name] = Recorder()
    a, b = sids["e-a"], sids["e-b"]
    manager.enter_room(a, NAMESPACE, "plain-room")
    assert set(manager.rooms[NAMESPACE]) == {None, "plain-room"}  # no room named after a sid
    manager.server.emit("hello", {"n": 1}, to=a)
    manager.server.emit("both", None, to=[a, b, "plain-room"])  # each once
    manager.server.emit("ack me", None, to=b, callback=lambda *args: None)
    assert manager.server.eio.sockets["e-a"].events == [["hello", {"n": 1}], ["both"]]
    assert manager.server.eio.sockets["e-b"].events == [["both"], ["ack me"]]
    assert manager.server.rooms(a) == [a, "plain-room"] and manager.server.rooms(b) == [b]
    with pytest.raises(ValueError):
        manager.close_room(a, NAMESPACE)  # as python-socketio: a connection's room is its own
    with pytest.raises(ValueError):
        manager.enter_room(b, NAMESPACE, a)
    manager.leave_room(a, NAMESPACE, "plain-room")
    assert manager.get_rooms(a, NAMESPACE) == [a]
    manager.disconnect(a, NAMESPACE)
    manager.disconnect(b, NAMESPACE)
    assert manager.get_rooms(a, NAMESPACE) == [] and list(manager.get_participants(
        NAMESPACE, a)) == []
    assert manager.rooms == {} and manager.callbacks == {} and manager._rooms_of == {}


class CountingTable(dict):
    """A namespace's table of rooms that records the rooms looked up and any visit of all."""

    def __init__(self, rooms: dict) -> None:
        super().__init__(rooms)
        self.looked_up: set = set()
        self.visits = 0

    def __getitem__(self, room):
        self.looked_up.add(room)
        return super().__getitem__(room)

    def get(self, room, default=None):
        self.looked_up.add(room)
        return super().get(room, default)

    def __contains__(self, room) -> bool:
        self.looked_up.add(room)
        return super().__contains__(room)

    def __delitem__(self, room) -> None:
        self.looked_up.add(room)
        super().__delitem__(room)

    def _visit(self) -> None:
        self.visits += 1

    def __iter__(self):
        self._visit()
        return super().__iter__()

    def items(self):
        self._visit()
        return super().items()

    def keys(self):
        self._visit()
        return super().keys()

    def values(self):
        self._visit()
        return super().values()

    def copy(self):
        self._visit()
        return super().copy()


def test_a_disconnect_among_ten_thousand_rooms_visits_only_the_connections_own(manager, bus):
    for n in range(10_000):
        sid = manager.connect(f"e-{n}", NAMESPACE)
        manager.enter_room(sid, NAMESPACE, f"room-{n}")
    leaving = manager.connect("e-leaving", NAMESPACE)
    for room in ("room-1", "room-2", LOBBY):
        manager.enter_room(leaving, NAMESPACE, room)
    manager.rooms[NAMESPACE] = table = CountingTable(manager.rooms[NAMESPACE])
    assert manager.get_rooms(leaving, NAMESPACE) == [leaving, "room-1", "room-2", LOBBY]
    manager.pre_disconnect(leaving, NAMESPACE)
    manager.disconnect(leaving, NAMESPACE)
    assert table.visits == 0, "a disconnect visited every room of the node"
    assert table.looked_up <= {None, "room-1", "room-2", LOBBY}, table.looked_up - {
        None, "room-1", "room-2", LOBBY}
    assert bus.calls[-1] == ("unsubscribe", channels.room("lobby").name)  # it was the last
    assert manager.get_rooms(leaving, NAMESPACE) == [] and len(table) == 10_001
    assert [sid for sid, _ in manager.get_participants(NAMESPACE, "room-1")] == [
        manager.sid_from_eio_sid("e-1", NAMESPACE)]
