"""A resuming join meets the live stream without a gap or a duplicate (ClusterManager hold/release).

The subscription is read by its own task, so a message stored before a join (and so in its
`missed`) can reach the node after the join was answered."""

from typing import Any

import pytest
import socketio

from service.bus.cluster_manager import ClusterManager, as_list
from service.store.store import socketio_room

ROOM = "lobby"
KEY = socketio_room(ROOM)


class RecordingManager(ClusterManager):
    """Records each live delivery (id, connections skipped) instead of writing to sockets."""

    def __init__(self) -> None:
        super().__init__("redis://127.0.0.1:1/0", "channel", "node-a", store=None)  # type: ignore[arg-type]
        self.delivered: list[tuple[str, list[str]]] = []

    def _deliver(self, event: str, data: list[Any], room: Any, skip_sid: Any) -> None:
        skip = as_list(skip_sid)
        self.delivered.append((data[0]["id"], sorted(skip)))


def live(manager: ClusterManager, message_id: str, skip_sid: Any = None) -> None:
    manager._handle_emit({"method": "emit", "event": "message", "namespace": "/", "room": KEY,
                          "skip_sid": skip_sid, "data": [{"id": message_id, "room": ROOM}]})


@pytest.fixture
def manager() -> RecordingManager:
    return RecordingManager()


def test_a_message_of_the_answer_arriving_after_it_is_not_delivered_again(manager):
    manager.hold("joiner", ROOM)
    live(manager, "100-0")  # arrives while the join runs: held
    manager.release("joiner", ROOM, "101-0")  # the answer's missed ended at 101-0
    live(manager, "101-0")  # stored before the join, reaches the subscription only now
    live(manager, "102-0", skip_sid="sender-elsewhere")
    live(manager, "103-0")
    assert manager.delivered == [
        ("100-0", ["joiner"]),
        ("101-0", ["joiner"]),
        ("102-0", ["sender-elsewhere"]),
        ("103-0", []),
    ]
    assert manager._answered == {}  # past the answer, nothing is remembered for the room


def test_held_messages_newer_than_the_answer_follow_it_to_the_joiner_alone(manager, monkeypatch):
    sent: list[tuple[str, str]] = []
    monkeypatch.setattr(socketio.Manager, "emit", lambda self, event, data, namespace=None,
                        room=None, **_: sent.append((data["id"], room)))
    manager.hold("joiner", ROOM)
    live(manager, "100-0")
    live(manager, "105-0")
    manager.release("joiner", ROOM, "101-0")
    assert sent == [("105-0", "joiner")]
    assert manager.delivered == [("100-0", ["joiner"]), ("105-0", ["joiner"])]


def test_a_connection_that_leaves_is_forgotten(manager):
    manager.hold("joiner", ROOM)
    manager.release("joiner", ROOM, "101-0")
    manager.forget("joiner")
    live(manager, "101-0")
    assert manager.delivered == [("101-0", [])]
