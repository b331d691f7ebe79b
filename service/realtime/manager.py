"""Which of this node's connections are in which room, and what reaches them: the one table.

A python-socketio Manager subclass, the way python-socketio's own managers extend the base: its
table of rooms (`self.rooms`) is the node's only record of local membership. A chat room's
Socket.IO room (`r:<room>`) and a user's (`u:<user>`) stand for bus channels (bus/channels.py).

Guarantees
- The first connection that enters a room makes the bus subscribe its channel, and `enter_room`
  returns only once Redis confirmed it (raising ServiceError('unavailable') if it does not, and
  then the connection is not in the room); the last one to leave (or disconnect) unsubscribes it.
  A connection entering while another is the last to leave keeps the channel subscribed.
- `deliver` hands a bus frame to the room's connections here, encoded once for all of them
  (bus frames carry the Socket.IO event's JSON, which becomes every recipient's WebSocket frame
  as it is), skipping the one the frame names.
- A resuming connection sees every message exactly once, in order: between `hold` and `release`
  it gets no live message of the room (they are kept for it); `release(after_id)` then delivers
  those newer than its answer's last id, and later live messages not newer than that id (stored
  before its join, they can reach the subscription after the answer) are not delivered to it
  again.

The table is python-socketio's, leaner: no room per connection (python-socketio enters each
connection into a room named after its sid, a bidict of about 424 bytes each; `to=sid`, `rooms`
and `close_room` answer the same from the table of all connections, the `None` room), and an
index from each connection to its rooms, so that a disconnect and `get_rooms` visit that
connection's rooms, not every room of the node (python-socketio's disconnect scans them all).
compat.py checks the library's behaviour this relies on.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from typing import Any

import socketio

from ..bus import channels
from ..bus.channels import Channel
from ..primitives.ids import parse_id
from ..transport import compat
from ..transport.websocket import message_packet

NAMESPACE = "/"
Subscribe = Callable[[Channel], bool]


def channel_of(room: Any) -> Channel | None:
    """The bus channel a Socket.IO room stands for (None: a connection's own room)."""
    if isinstance(room, str):
        if room.startswith(channels.ROOM_PREFIX):
            return channels.room(room[len(channels.ROOM_PREFIX):])
        if room.startswith(channels.USER_PREFIX):
            return channels.user(room[len(channels.USER_PREFIX):])
    return None


class RoomsManager(socketio.Manager):
    def __init__(self, subscribe: Subscribe, unsubscribe: Callable[[Channel], None]):
        super().__init__()
        self.subscribe = subscribe
        self.unsubscribe = unsubscribe
        self._lock = threading.Lock()
        self._entering: dict[str, int] = {}  # room -> connections entering it now
        self.held: dict[str, dict[str, list[tuple[str, bytes]]]] = {}  # room -> sid -> held
        self.answered: dict[str, dict[str, str]] = {}  # room -> sid -> newest id answered
        # sid -> the rooms it is in but the None room (sids are unique across namespaces)
        self._rooms_of: dict[str, tuple[Any, ...]] = {}

    # ---- membership --------------------------------------------------------------------------

    def enter_room(self, sid: str, namespace: str, room: Any, eio_sid: str | None = None) -> Any:
        channel = channel_of(room)
        if channel is None:
            return super().enter_room(sid, namespace, room, eio_sid=eio_sid)
        with self._lock:
            self._entering[room] = self._entering.get(room, 0) + 1
        try:
            if not self.serves(room):
                self.subscribe(channel)
            return super().enter_room(sid, namespace, room, eio_sid=eio_sid)
        finally:
            with self._lock:
                self._entering[room] -= 1
                if not self._entering[room]:
                    del self._entering[room]
            self._unsubscribe_if_empty(room, channel)

    def leave_room(self, sid: str, namespace: str, room: Any) -> Any:
        result = super().leave_room(sid, namespace, room)
        self._forget(sid, room)
        channel = channel_of(room)
        if channel is not None:
            self._unsubscribe_if_empty(room, channel)
        return result

    def disconnect(self, sid: str, namespace: str, **kwargs: Any) -> Any:
        rooms = self._rooms_of.get(sid, ())
        result = super().disconnect(sid, namespace, **kwargs)
        for room in rooms:
            self._forget(sid, room)
            channel = channel_of(room)
            if channel is not None:
                self._unsubscribe_if_empty(room, channel)
        return result

    # ---- the table: no room per connection, an index from each connection to its rooms ---------

    def basic_enter_room(self, sid: str, namespace: str, room: Any,
                         eio_sid: str | None = None) -> Any:
        if room is not None and room == sid:
            return None  # the connection's own room: `to=sid` is answered from the None room
        if isinstance(room, str):
            room = sys.intern(room)  # the index keeps the table's one name, not one per entry
        result = super().basic_enter_room(sid, namespace, room, eio_sid=eio_sid)
        if room is not None:
            rooms = self._rooms_of.get(sid, ())
            if room not in rooms:
                self._rooms_of[sid] = (*rooms, room)
        return result

    def basic_leave_room(self, sid: str, namespace: str, room: Any) -> Any:
        result = super().basic_leave_room(sid, namespace, room)
        rooms = self._rooms_of.get(sid)
        if rooms is not None and room in rooms:
            rest = tuple(other for other in rooms if other != room)
            if rest:
                self._rooms_of[sid] = rest
            else:
                del self._rooms_of[sid]
        return result

    def basic_disconnect(self, sid: str, namespace: str, **kwargs: Any) -> None:
        """python-socketio's, visiting the connection's own rooms only."""
        if namespace not in self.rooms:
            return
        for room in self._rooms_of.get(sid, ()):
            self.basic_leave_room(sid, namespace, room)
        self.basic_leave_room(sid, namespace, None)
        self._rooms_of.pop(sid, None)
        self.callbacks.pop(sid, None)
        for pending in (self.pending_connect, self.pending_disconnect):
            sids = pending.get(namespace)
            if sids is not None and sid in sids:
                sids.remove(sid)
                if not sids:
                    del pending[namespace]

    def get_rooms(self, sid: str, namespace: str) -> list[Any]:
        """The rooms `sid` is in, its own room first, as python-socketio answers."""
        if sid not in self.rooms.get(namespace, {}).get(None, {}):
            return []
        return [sid, *self._rooms_of.get(sid, ())]

    def get_participants(self, namespace: str, room: Any) -> Any:
        ns = self.rooms.get(namespace, {})
        several = hasattr(room, "__len__") and not isinstance(room, str)
        if not several and (room is None or room in ns):
            yield from super().get_participants(namespace, room)
            return
        everyone = ns.get(None, {})
        participants: dict[str, str] = {}
        for name in room if several else (room,):
            if name in ns:
                participants.update(ns[name].items())
            elif name is not None and name in everyone:  # a connection's own room
                participants[name] = everyone[name]
        yield from participants.items()

    def serves(self, room: str) -> bool:
        """Whether a connection of this node is in `room`."""
        return room in self.rooms.get(NAMESPACE, {})

    def has(self, sid: str, room: str) -> bool:
        """Whether connection `sid` is in `room`: one lookup (python-socketio's get_rooms reads
        every room of the node)."""
        members = self.rooms.get(NAMESPACE, {}).get(room)
        return members is not None and sid in members

    def connections_in(self, room: str) -> list[str]:
        return [sid for sid, _eio_sid in self.get_participants(NAMESPACE, room)]

    def _unsubscribe_if_empty(self, room: str, channel: Channel) -> None:
        with self._lock:
            gone = not self.serves(room) and room not in self._entering
        if gone:
            self.unsubscribe(channel)

    # ---- delivery ------------------------------------------------------------------------------

    def deliver(self, room: str | None, event_args: bytes, skip: str | None = None,
                stored_id: str | None = None) -> int:
        """Hand a bus frame's event to this node's connections in `room` (None: all), but `skip`
        and those catching up (see the guarantees); how many it was written to."""
        skipped = {skip} if skip else set()
        if stored_id is not None and room is not None and (room in self.held
                                                           or room in self.answered):
            skipped.update(self._catching_up(room, stored_id, event_args))
        packet = message_packet(b"2" + event_args)
        reached = 0
        for sid, eio_sid in self.get_participants(NAMESPACE, room):
            if sid not in skipped and compat.write_packet(self.server, eio_sid, packet):
                reached += 1
        return reached

    def deliver_to(self, sid: str, event_args: bytes) -> bool:
        """Hand an event to one connection of this node; whether it was written."""
        eio_sid = self.eio_sid_from_sid(sid, NAMESPACE)
        return eio_sid is not None and compat.write_packet(
            self.server, eio_sid, message_packet(b"2" + event_args))

    # ---- resuming connections ------------------------------------------------------------------

    def hold(self, sid: str, room: str) -> None:
        """Keep live messages of `room` back from `sid` until `release` (a second hold while one
        stands keeps what the first holds)."""
        with self._lock:
            self.held.setdefault(room, {}).setdefault(sid, [])

    def unhold(self, sid: str, room: str) -> None:
        """Drop what is held for `sid` in `room` undelivered (a join that failed)."""
        with self._lock:
            self._drop(self.held, room, sid)

    def release(self, sid: str, room: str, after_id: str | None) -> int:
        """Deliver what was held for `sid` above `after_id` (the answer's last), then stop
        holding; how many."""
        with self._lock:
            held = self.held.get(room, {}).get(sid, [])
            self._drop(self.held, room, sid)
            if after_id:
                self.answered.setdefault(room, {})[sid] = after_id
        floor = parse_id(after_id) if after_id else (-1, -1)
        sent = 0
        for stored_id, body in held:
            if parse_id(stored_id) > floor and self.deliver_to(sid, body):
                sent += 1
        return sent

    def _catching_up(self, room: str, stored_id: str, body: bytes) -> list[str]:
        """Connections that must not get this live message now: those held (it is kept for
        them) and those whose answer already carried it."""
        skip: list[str] = []
        with self._lock:
            held_by_sid = self.held.get(room)
            if held_by_sid:
                for held in held_by_sid.values():
                    held.append((stored_id, body))
                skip.extend(held_by_sid)
            answered = self.answered.get(room)
            if answered:
                position = parse_id(stored_id)
                for sid, upto in list(answered.items()):
                    if position <= parse_id(upto):
                        skip.append(sid)
                    else:  # every later message of the room is newer still
                        del answered[sid]
                if not answered:
                    del self.answered[room]
        return skip

    def _forget(self, sid: str, room: str) -> None:
        with self._lock:
            self._drop(self.held, room, sid)
            self._drop(self.answered, room, sid)

    @staticmethod
    def _drop(table: dict[str, dict[str, Any]], room: str, sid: str) -> None:
        by_sid = table.get(room)
        if by_sid is not None:
            by_sid.pop(sid, None)
            if not by_sid:
                del table[room]
