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

from . import validation
from .errors import ServiceError
from .node import Connection, Node
from .store import socketio_room, user_room

log = logging.getLogger("service")
Ack = dict[str, Any]
Handler = Callable[["Connection", str, Any], Ack]


# Names of the server's own handlers that no client may call: python-socketio would run the
# lifecycle handlers for a client event of that name (a client "disconnect" event would drop its
# presence) and call the catch-all with its arguments shifted for an event named "*".
SERVER_ONLY_EVENTS = frozenset({"connect", "disconnect", "connect_error", "disconnecting",
                                "__disconnect_final", "*"})


def guard_incoming_packets(server: Any, node_name: str) -> None:
    """Harden python-socketio's entry points against what hostile clients send.

    - A client event named like a server-only handler goes to the catch-all (`bad_request`).
    - An event packet without an event name is dropped.
    - A packet python-socketio cannot decode is dropped with one log line, not a traceback per
      packet (which a client could use to flood the logs).
    """
    handle_event = server._handle_event
    handle_message = server._handle_eio_message

    def guarded_event(eio_sid: str, namespace: str | None, ack_id: int | None, data: Any):
        if not isinstance(data, list) or not data:
            return None
        if isinstance(data[0], str) and data[0] in SERVER_ONLY_EVENTS:
            data = [f"reserved:{data[0]}", *data[1:]]
        return handle_event(eio_sid, namespace, ack_id, data)

    def guarded_message(eio_sid: str, data: Any):
        try:
            return handle_message(eio_sid, data)
        except (ValueError, TypeError, KeyError, IndexError, AttributeError) as error:
            log.warning("node=%s dropped a malformed Socket.IO packet from %s (%s)", node_name,
                        eio_sid, error.__class__.__name__)
            return None

    server._handle_event = guarded_event
    server.eio.on("message", guarded_message)  # engineio holds the handler registered at init


def register_handlers(socketio: SocketIO, node: Node) -> None:
    settings = node.settings
    guard_incoming_packets(socketio.server, node.name)
    max_text = settings.max_text_chars

    def authenticate(auth: Any) -> Connection:
        if isinstance(auth, dict) and "token" in auth:
            claims = node.signer.verify(auth["token"])
            return Connection(claims.user, claims.expires_at, None, node.new_bucket())
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
            if connection.session_id and not node.store.add_session_socket(
                connection.session_id, sid
            ):
                raise ServiceError("unauthorized", "this session has logged out; log in again")
        except ServiceError as error:
            log.info("node=%s refused connection: %s", node.name, error.message)
            raise Refused(error.message) from None
        node.connections[sid] = connection
        join_room(user_room(connection.user))
        welcome = {"user": connection.user, "node": node.name, "sid": sid}
        socketio.start_background_task(
            socketio.emit, "welcome", welcome, to=sid, ignore_queue=True
        )

    @socketio.on("disconnect")
    def on_disconnect(*_reason: Any) -> None:
        sid: str = request.sid  # type: ignore[attr-defined]  # set by Flask-SocketIO
        node.manager.forget(sid)
        connection = node.connections.pop(sid, None)
        if connection is None:
            return
        for room in connection.rooms:
            node.leave_presence(room, connection.user, sid)
        if connection.session_id:
            with suppress(ServiceError):  # the set expires by itself
                node.store.remove_session_socket(connection.session_id, sid)

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
        node.in_flight += 1
        try:
            return checked_dispatch(name, handler, sid, args)
        finally:
            node.in_flight -= 1

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
            return error.ack()
        except Exception:
            log.exception("node=%s %s failed", node.name, name)
            return ServiceError("unavailable", "internal error, try again").ack()

    @event("join")
    def on_join(connection: Connection, sid: str, payload: Any) -> Ack:
        join = validation.join(payload)
        if join.since:
            node.manager.hold(sid, join.room)
        server.enter_room(sid, socketio_room(join.room))
        try:
            result = node.store.join(join.room, connection.user, sid, join.since)
        except Exception:
            node.manager.forget(sid)
            if join.room not in connection.rooms:
                server.leave_room(sid, socketio_room(join.room))
            raise
        connection.rooms.add(join.room)
        if join.since:
            last = result.missed[-1]["id"] if result.missed else join.since
            # runs after this handler's ack is queued, so held messages follow the answer
            socketio.start_background_task(node.manager.release, sid, join.room, last)
        return {"ok": True, "room": join.room, "node": node.name, "members": result.members,
                "missed": result.missed, "truncated": result.truncated}

    @event("leave")
    def on_leave(connection: Connection, sid: str, payload: Any) -> Ack:
        room = validation.room_only(payload)
        if room in connection.rooms:
            server.leave_room(sid, socketio_room(room))
            connection.rooms.discard(room)
            node.leave_presence(room, connection.user, sid)
        return {"ok": True, "room": room}

    @event("send")
    def on_send(connection: Connection, _sid: str, payload: Any) -> Ack:
        send = validation.send(payload, max_text)
        if send.room not in connection.rooms:
            raise ServiceError("forbidden", f"join room {send.room} before sending to it")
        stored = node.store.publish(send.room, connection.user, send.text, send.client_id)
        return {"ok": True, "id": stored.id, "ts": stored.ts}

    @event("direct")
    def on_direct(connection: Connection, sid: str, payload: Any) -> Ack:
        direct = validation.direct(payload, max_text)
        stored = node.store.direct(connection.user, direct.to, direct.text, direct.client_id,
                                   sid)
        return {"ok": True, "id": stored.id, "ts": stored.ts}

    @event("presence")
    def on_presence(_connection: Connection, _sid: str, payload: Any) -> Ack:
        room = validation.room_only(payload)
        return {"ok": True, "room": room, "members": node.store.members(room)}

    @event("history")
    def on_history(_connection: Connection, _sid: str, payload: Any) -> Ack:
        query = validation.history(payload)
        messages = node.store.history(query.room, query.before, query.limit)
        return {"ok": True, "room": query.room, "messages": messages}

    @event("*")
    def on_unknown(_connection: Connection, _sid: str, _payload: Any) -> Ack:
        raise ServiceError("bad_request", "unknown event")
