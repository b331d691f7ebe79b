"""Socket.IO handlers: authenticate connections, validate events, call the store, answer by ack."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from contextlib import suppress
from typing import Any

from flask import current_app, request
from flask_login import current_user
from flask_socketio import ConnectionRefusedError as Refused
from flask_socketio import SocketIO, join_room

from ..bus import channels
from ..bus.channels import Channel, socketio_room, user_room
from ..errors import ServiceError
from ..node.node import Node
from ..primitives import bus_format
from ..store.failures import redis_errors
from ..transport import compat
from . import validation
from .connection import Connection

log = logging.getLogger("service")
TYPING_EVERY_S = 1.0  # a connection says it is typing in a room at most this often
Ack = dict[str, Any]
Handler = Callable[["Connection", str, Any], Ack]


def register_handlers(socketio: SocketIO, node: Node) -> None:
    settings = node.settings

    def on_malformed(eio_sid: str, error: Exception) -> None:
        log.warning("node=%s dropped a malformed Socket.IO packet from %s (%s)", node.name,
                    eio_sid, error.__class__.__name__)

    compat.guard_incoming_packets(socketio.server, on_malformed)
    max_text = settings.max_text_chars
    metrics = node.metrics
    publish_seconds = metrics.publish_seconds
    accepted_in_rooms = metrics.accepted.labels("room")
    accepted_directs = metrics.accepted.labels("direct")

    def authenticate(auth: Any) -> Connection:
        if isinstance(auth, dict) and "token" in auth:
            claims = node.signer.verify(auth["token"])
            session_id = None
            if claims.session_binding is not None:  # a page's token: only with its cookie
                session_id = request.cookies.get(current_app.config["SESSION_COOKIE_NAME"])
                if not node.signer.binds(claims, session_id):
                    raise ServiceError("unauthorized", "this token belongs to a browser "
                                       "session: connect with that session's cookie")
            return Connection(claims.user, claims.expires_at, session_id, node.new_bucket())
        if auth not in (None, {}) and not isinstance(auth, dict):
            raise ServiceError("unauthorized", "auth must be an object with a token")
        if current_user.is_authenticated:
            cookie = current_app.config["SESSION_COOKIE_NAME"]
            return Connection(current_user.get_id(), None, request.cookies.get(cookie),
                              node.new_bucket())
        raise ServiceError("unauthorized", "no credentials: send auth {token} or log in first")

    @socketio.on("connect")
    def on_connect(auth: Any = None) -> None:
        sid: str = request.sid  # type: ignore[attr-defined]  # set by Flask-SocketIO
        try:
            connection = authenticate(auth)
            if connection.session_id and not node.store.sessions.add_socket(
                connection.session_id, f"{node.name}|{sid}"
            ):
                raise ServiceError("unauthorized", "this session has logged out; log in again")
            subscribe_inbox(connection.user, sid)
        except ServiceError as error:
            log.info("node=%s refused connection: %s", node.name, error.message)
            raise Refused(error.message) from None
        node.admit(sid, connection)
        welcome = {"user": connection.user, "node": node.name, "sid": sid}
        socketio.start_background_task(
            socketio.emit, "welcome", welcome, to=sid, ignore_queue=True
        )

    def subscribe_inbox(user: str, sid: str) -> None:
        """Serve the user's channel here (direct messages, its other connections' events)."""
        join_room(user_room(user))
        inbox = channels.user(user)
        try:
            if node.bus.attach(sid, inbox):
                node.bus.start_from(inbox, node.store.messages.last_inbox_id(user))
        except ServiceError:
            node.bus.detach(sid, inbox)
            raise

    @socketio.on("disconnect")
    def on_disconnect(*_reason: Any) -> None:
        sid: str = request.sid  # type: ignore[attr-defined]  # set by Flask-SocketIO
        node.bus.forget(sid)
        connection = node.release(sid)
        if connection is None:
            return
        node.bus.detach(sid, channels.user(connection.user))
        for room in connection.rooms:
            node.bus.detach(sid, channels.room(room))
            node.leave_presence(room, connection.user, sid)
        if connection.session_id:
            with suppress(ServiceError):  # the set expires by itself
                node.store.sessions.remove_socket(connection.session_id, f"{node.name}|{sid}")

    server = socketio.server

    def event(name: str) -> Callable[[Handler], Handler]:
        """Register a handler behind `dispatch`; `*` catches events nobody else handles.

        Events go to python-socketio directly, not through Flask-SocketIO, which would build a
        Flask request context and open the HTTP session (a Redis read for browser clients) for
        every event; they need neither: the connection was authenticated at connect."""

        def decorate(handler: Handler) -> Handler:
            if name == "*":
                server.on("*", lambda event_name, sid, *args: dispatch(
                    str(event_name)[:64], handler, sid, args))
            else:
                server.on(name, lambda sid, *args: dispatch(name, handler, sid, args))
            return handler

        return decorate

    def dispatch(name: str, handler: Handler, sid: str, args: tuple[Any, ...]) -> Ack:
        """Rate limit, token expiry, then the handler; failures become acks, never tracebacks."""
        busy = node.busy
        busy[sid] = busy.get(sid, 0) + 1
        try:
            return checked_dispatch(name, handler, sid, args)
        finally:
            if busy[sid] == 1:
                del busy[sid]
            else:
                busy[sid] -= 1

    def checked_dispatch(name: str, handler: Handler, sid: str, args: tuple[Any, ...]) -> Ack:
        payload = args[0] if args else None
        connection = node.connections.get(sid)
        try:
            if connection is None:
                raise ServiceError("unauthorized", "not connected")
            if not connection.bucket.take():
                if connection.bucket.flooding:
                    log.warning("node=%s disconnecting %s for flooding", node.name,
                                connection.user)
                    server.disconnect(sid)
                raise ServiceError("rate_limited", "too many events, slow down")
            if connection.expires_at is not None and time.time() >= connection.expires_at:
                raise ServiceError("unauthorized", "token expired, connect with a new token")
            return handler(connection, sid, payload)
        except ServiceError as error:
            if error.code == "unavailable":
                log.warning("node=%s %s failed: %s", node.name, name, error.message)
            metrics.error(error.code)
            return error.ack()
        except Exception:
            log.exception("node=%s %s failed", node.name, name)
            metrics.error("unavailable")
            return ServiceError("unavailable", "internal error, try again").ack()

    @event("join")
    def on_join(connection: Connection, sid: str, payload: Any) -> Ack:
        join = validation.join(payload)
        channel = channels.room(join.room)
        joined_before = join.room in connection.rooms
        if join.since:
            node.bus.hold(sid, channel)
        server.enter_room(sid, socketio_room(join.room))
        try:
            # subscribed before reading: what is stored after this arrives live
            new_here = node.bus.attach(sid, channel)
            node.store.members.add(connection.user, join.room)
            joined = node.store.presence.join(join.room, connection.user, sid, member=True)
            node.store.members.add(connection.user, join.room)  # again: a leave in between
            resumed = node.store.messages.resume_room(join.room, join.since)
        except Exception:
            if joined_before:  # still a member here: what was held goes out as it came
                node.bus.release(sid, channel, None)
            else:
                node.bus.unhold(sid, channel)
                server.leave_room(sid, socketio_room(join.room))
                node.bus.detach(sid, channel)
            raise
        if new_here:
            node.bus.start_from(channel, resumed.last_id)
        connection.rooms.add(join.room)
        if join.since:
            last = resumed.messages[-1]["id"] if resumed.messages else join.since
            # runs after this handler's ack is queued, so held messages follow the answer
            socketio.start_background_task(node.bus.release, sid, channel, last)
        return {"ok": True, "room": join.room, "node": node.name, "members": joined.members,
                "missed": resumed.messages, "truncated": resumed.truncated, "read": joined.read}

    def leave_here(connection: Connection, sid: str, room: str) -> None:
        if connection.typing_at:
            connection.typing_at.pop(room, None)
        if room in connection.rooms:
            server.leave_room(sid, socketio_room(room))
            connection.rooms.discard(room)
            node.bus.detach(sid, channels.room(room))
            node.leave_presence(room, connection.user, sid)

    def left_elsewhere(body: dict[str, Any]) -> None:
        """The user left a room on one connection: its others, on this node, leave it too."""
        user, room, origin = str(body.get("user")), str(body.get("room")), body.get("from")
        for sid in compat.connections_in(server, user_room(user)):
            connection = node.connections.get(sid)
            if connection is not None and f"{node.name}|{sid}" != origin:
                leave_here(connection, sid, room)

    node.on_left = left_elsewhere

    @event("leave")
    def on_leave(connection: Connection, sid: str, payload: Any) -> Ack:
        room = validation.room_only(payload)
        node.store.members.leave(room, connection.user)
        leave_here(connection, sid, room)
        with redis_errors():  # membership ended: the user's other connections leave it too
            node.emitter.control(channels.user(connection.user), {"left": {
                "user": connection.user, "room": room, "from": f"{node.name}|{sid}"}})
        return {"ok": True, "room": room}

    @event("send")
    def on_send(connection: Connection, _sid: str, payload: Any) -> Ack:
        send = validation.send(payload, max_text)
        if send.room not in connection.rooms:
            raise ServiceError("forbidden", f"join room {send.room} before sending to it")
        with publish_seconds.time():
            stored = node.store.messages.publish(send.room, connection.user, send.text,
                                                 send.client_id)
        accepted_in_rooms.inc()
        return {"ok": True, "id": stored.id, "ts": stored.ts}

    @event("direct")
    def on_direct(connection: Connection, sid: str, payload: Any) -> Ack:
        direct = validation.direct(payload, max_text)
        with publish_seconds.time():
            stored = node.store.messages.direct(connection.user, direct.to, direct.text,
                                                direct.client_id, f"{node.name}|{sid}")
        accepted_directs.inc()
        return {"ok": True, "id": stored.id, "ts": stored.ts}

    @event("presence")
    def on_presence(_connection: Connection, _sid: str, payload: Any) -> Ack:
        room = validation.room_only(payload)
        return {"ok": True, "room": room, "members": node.store.presence.members(room)}

    @event("history")
    def on_history(_connection: Connection, _sid: str, payload: Any) -> Ack:
        query = validation.history(payload)
        messages = node.store.messages.history(query.room, query.before, query.limit)
        return {"ok": True, "room": query.room, "messages": messages}

    def publish(channel: Channel, name: str, data: dict[str, Any], skip: str) -> None:
        """An event for the channel's connections on every node, not stored (at most once)."""
        with redis_errors():
            node.emitter.publish(channel, bus_format.event(name, data, skip=skip))

    @event("inbox")
    def on_inbox(connection: Connection, sid: str, payload: Any) -> Ack:
        since = validation.inbox(payload)
        inbox = channels.user(connection.user)
        if since:
            node.bus.hold(sid, inbox)  # as a resuming join: each message once, in order
        try:
            resumed = node.store.conversations.inbox(connection.user, since)
        except Exception:
            if since:
                node.bus.release(sid, inbox, None)
            raise
        if since:
            last = resumed.messages[-1]["id"] if resumed.messages else since
            socketio.start_background_task(node.bus.release, sid, inbox, last)
        return {"ok": True, "messages": resumed.messages, "truncated": resumed.truncated}

    @event("direct_history")
    def on_direct_history(connection: Connection, _sid: str, payload: Any) -> Ack:
        query = validation.direct_history(payload)
        messages = node.store.conversations.history(connection.user, query.with_user,
                                                    query.before, query.limit)
        return {"ok": True, "with": query.with_user, "messages": messages}

    @event("conversations")
    def on_conversations(connection: Connection, _sid: str, payload: Any) -> Ack:
        validation.no_fields(payload)
        return {"ok": True, "conversations": [
            {"with": c.with_user, "last": c.last, "unread": c.unread}
            for c in node.store.conversations.list(connection.user)]}

    @event("rooms")
    def on_rooms(connection: Connection, _sid: str, payload: Any) -> Ack:
        validation.no_fields(payload)
        return {"ok": True, "rooms": [
            {"room": r.room, "unread": r.unread, "last_id": r.last_id}
            for r in node.store.members.rooms(connection.user)]}

    @event("read")
    def on_read(connection: Connection, sid: str, payload: Any) -> Ack:
        read = validation.read(payload)
        where = {read.field: read.target}
        if read.field == "room":
            moved = node.store.members.read(read.target, connection.user, read.id)
        else:
            moved = node.store.conversations.read(connection.user, read.target, read.id)
        if moved.moved:
            publish(channels.user(connection.user), "read", {**where, "id": moved.id},
                    f"{node.name}|{sid}")
        return {"ok": True, **where, "id": moved.id}

    @event("typing")
    def on_typing(connection: Connection, sid: str, payload: Any) -> Ack:
        room = validation.room_only(payload)
        if room not in connection.rooms:
            raise ServiceError("forbidden", f"join room {room} before typing in it")
        now = time.monotonic()
        typing_at = connection.typing_at if connection.typing_at is not None else {}
        if now - typing_at.get(room, -TYPING_EVERY_S) < TYPING_EVERY_S:
            raise ServiceError("rate_limited",
                               f"typing is sent at most once every {TYPING_EVERY_S:g} s per room")
        typing_at[room] = now
        connection.typing_at = typing_at
        publish(channels.room(room), "typing", {"room": room, "user": connection.user},
                f"{node.name}|{sid}")
        return {"ok": True}

    @event("refresh")
    def on_refresh(connection: Connection, sid: str, payload: Any) -> Ack:
        claims = node.signer.verify(validation.refresh(payload))
        if claims.user != connection.user:
            raise ServiceError("unauthorized", "that token is another user's")
        if claims.session_binding is not None and not node.signer.binds(
                claims, connection.session_id):
            raise ServiceError("unauthorized", "that token belongs to another browser session")
        if connection.expires_at is not None:
            node.extend(connection, sid, claims.expires_at)
        return {"ok": True, "expires_in": max(0, int(claims.expires_at - time.time()))}

    @event("*")
    def on_unknown(_connection: Connection, _sid: str, _payload: Any) -> Ack:
        raise ServiceError("bad_request", "unknown event")
