"""The Socket.IO events of PROTOCOL.md, one method each (python-socketio's class-based
namespaces): authenticate connections, validate events, ask the Broker, answer by ack.

Every event goes through `trigger_event`: the connection's rate limit and token expiry first,
then the event's method; a failure becomes the contract's error in the ack, never a traceback
and never a dropped connection (a flooder is cut off). Events of one connection are handled in
its own task, in the order they came (python-socketio's `async_handlers` is off).

The connect handler runs inside a Flask request context built from the connection's first
request, so a browser's session cookie (Flask-Session, Flask-Login) signs it in as it does a page.

Credentials: an app's JWT (app_tokens.py) when app JWTs are configured and the token is one; the
service's own token or session cookie otherwise, unless OWN_ACCOUNTS=false turned them off. A JWT
gives the connection its `sub` as the user (the same user as an account of that name), its
expiry, and its `rooms` claim as the connection's room grants; `refresh` with a newer token of
the same user moves the expiry later and replaces the grants.

Rooms the app controls: a `join` is admitted by admission.py (private rooms, the join hook); a
`send` and a `direct` go to the send hook first, when there is one (hooks/hooks.py), and a
user's `send` is stored only if the room's rules allow it when it is stored (bus/broker.py,
`enforce_rules`). A hook call waits in the connection's own task: other connections' events go
on meanwhile.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from typing import Any

import socketio
from flask import Flask, request
from flask_login import current_user
from socketio.exceptions import ConnectionRefusedError as Refused

from ..app_tokens import AppTokens, looks_like_jwt
from ..bus import channels
from ..bus.broker import Broker
from ..bus.channels import socketio_room, user_room
from ..errors import ServiceError
from ..hooks.hooks import Hooks
from ..store.messages import Stored
from ..tokens import TokenClaims, TokenSigner
from . import app_control, validation
from .admission import Admission
from .connection import Connection
from .connections import Connections
from .manager import NAMESPACE, RoomsManager
from .metrics import Metrics
from .ratelimit import TokenBucket

log = logging.getLogger("service")
TYPING_EVERY_S = 1.0  # a connection says it is typing in a room at most this often
Ack = dict[str, Any]


@dataclass(frozen=True)
class Limits:
    max_text_chars: int
    rate_per_s: float
    burst: int


class RoomsNamespace(socketio.Namespace):
    def __init__(self, *, app: Flask, node: str, broker: Broker, manager: RoomsManager,
                 connections: Connections, signer: TokenSigner, metrics: Metrics,
                 limits: Limits, spawn: Callable[..., Any], app_tokens: AppTokens | None = None,
                 own_accounts: bool = True, hooks: Hooks | None = None,
                 join_hook_cache_s: int = 0):
        super().__init__(NAMESPACE)
        self.app, self.node, self.broker, self.manager = app, node, broker, manager
        self.connections, self.signer, self.metrics = connections, signer, metrics
        self.limits, self.spawn = limits, spawn
        self.app_tokens, self.own_accounts = app_tokens, own_accounts
        self.user_names = validation.ACCOUNT_USERS if app_tokens is None else validation.APP_USERS
        self.hooks = hooks or Hooks(join=None, send=None, metrics=metrics.hooks,
                                    max_text_chars=limits.max_text_chars, node=node)
        self.admission = Admission(broker, self.hooks, join_hook_cache_s)
        self._accepted_in_rooms = metrics.accepted.labels("room")
        self._accepted_directs = metrics.accepted.labels("direct")
        self._events: dict[str, Callable[[Connection, str, Any], Ack]] = {
            "join": self.on_join, "leave": self.on_leave, "send": self.on_send,
            "direct": self.on_direct, "presence": self.on_presence, "history": self.on_history,
            "inbox": self.on_inbox, "direct_history": self.on_direct_history,
            "conversations": self.on_conversations, "rooms": self.on_rooms,
            "read": self.on_read, "typing": self.on_typing, "refresh": self.on_refresh}

    def connection_id(self, sid: str) -> str:
        """How other nodes and the store name a connection of this node (`node|sid`)."""
        return f"{self.node}|{sid}"

    # ---- dispatch ----------------------------------------------------------------------------

    def trigger_event(self, event: str, *args: Any) -> Any:
        if event == "connect":
            return self.on_connect(*args)
        if event == "disconnect":
            return self.on_disconnect(args[0])
        sid, payload = args[0], (args[1] if len(args) > 1 else None)
        with self.connections.handling(sid):
            return self.dispatch(event, sid, payload)

    def dispatch(self, event: str, sid: str, payload: Any) -> Ack:
        """Rate limit, token expiry, then the event's method; failures become acks."""
        connection = self.connections.get(sid)
        try:
            if connection is None:
                raise ServiceError("unauthorized", "not connected")
            if not connection.bucket.take():
                if connection.bucket.flooding:
                    log.warning("node=%s disconnecting %s for flooding", self.node,
                                connection.user)
                    self.server.disconnect(sid, namespace=NAMESPACE)
                raise ServiceError("rate_limited", "too many events, slow down")
            if connection.expires_at is not None and time.time() >= connection.expires_at:
                raise ServiceError("unauthorized", "token expired, connect with a new token")
            handler = self._events.get(event)
            if handler is None:
                raise ServiceError("bad_request", "unknown event")
            return handler(connection, sid, payload)
        except ServiceError as error:
            if error.code == "unavailable":
                log.warning("node=%s %s failed: %s", self.node, str(event)[:64], error.message)
            self.metrics.error(error.code)
            return error.ack()
        except Exception:
            log.exception("node=%s %s failed", self.node, str(event)[:64])
            self.metrics.error("unavailable")
            return ServiceError("unavailable", "internal error, try again").ack()

    # ---- connecting --------------------------------------------------------------------------

    def on_connect(self, sid: str, environ: dict[str, Any], auth: Any = None) -> None:
        try:
            with self.app.request_context(environ):
                connection = self.authenticate(auth)
            if connection.session_id and not self.broker.add_socket(
                    connection.session_id, self.connection_id(sid)):
                raise ServiceError("unauthorized", "this session has logged out; log in again")
            self.serve_inbox(connection.user, sid)
        except ServiceError as error:
            log.info("node=%s refused connection: %s", self.node, error.message)
            raise Refused(error.message) from None
        self.connections.admit(sid, connection)
        welcome = {"user": connection.user, "node": self.node, "sid": sid}
        # after the connect handler: the CONNECT answer goes first
        self.spawn(self.server.emit, "welcome", welcome, to=sid, namespace=NAMESPACE)

    def authenticate(self, auth: Any) -> Connection:
        """The connection's user, from `auth {token}` or the browser session's cookie (inside
        the connection's request context)."""
        cookie = self.app.config["SESSION_COOKIE_NAME"]
        if isinstance(auth, dict) and "token" in auth:
            claims = self.verify_token(auth["token"])
            session_id = None
            if claims.session_binding is not None:  # a page's token: only with its cookie
                session_id = request.cookies.get(cookie)
                if not self.signer.binds(claims, session_id):
                    raise ServiceError("unauthorized", "this token belongs to a browser "
                                       "session: connect with that session's cookie")
            return Connection(claims.user, claims.expires_at, session_id, self.new_bucket(),
                              room_grants=claims.room_grants)
        if auth not in (None, {}) and not isinstance(auth, dict):
            raise ServiceError("unauthorized", "auth must be an object with a token")
        if not self.own_accounts:
            raise ServiceError("unauthorized", "no credentials: send auth {token} with your "
                               "app's JWT (this service has no log-in of its own: "
                               "OWN_ACCOUNTS=false)")
        if current_user.is_authenticated:
            return Connection(current_user.get_id(), None, request.cookies.get(cookie),
                              self.new_bucket())
        raise ServiceError("unauthorized", "no credentials: send auth {token} or log in first")

    def verify_token(self, token: Any) -> TokenClaims:
        """The claims of an app's JWT or of the service's own token; ServiceError
        ('unauthorized') saying why not."""
        if self.app_tokens is not None and looks_like_jwt(token):
            return self.app_tokens.verify(token)
        if not self.own_accounts:
            raise ServiceError("unauthorized", "not a JWT: this service takes only your app's "
                               "JWTs (OWN_ACCOUNTS=false)")
        return self.signer.verify(token)

    def new_bucket(self) -> TokenBucket:
        return TokenBucket(self.limits.rate_per_s, self.limits.burst)

    def serve_inbox(self, user: str, sid: str) -> None:
        """Serve the user's channel here (direct messages, its other connections' events)."""
        room = user_room(user)
        new_here = not self.manager.serves(room)
        self.server.enter_room(sid, room, namespace=NAMESPACE)
        if new_here:
            self.broker.start_from(channels.user(user), self.broker.last_inbox_id(user))

    def on_disconnect(self, sid: str) -> None:
        connection = self.connections.release(sid)
        if connection is None:
            return
        for room in self.rooms_of(sid):
            self.broker.leave(room, connection.user, self.connection_id(sid))
        if connection.session_id:
            with suppress(ServiceError):  # the set expires by itself
                self.broker.remove_socket(connection.session_id, self.connection_id(sid))

    def rooms_of(self, sid: str) -> list[str]:
        """The chat rooms connection `sid` is in."""
        prefix = channels.ROOM_PREFIX
        return [room[len(prefix):] for room in self.manager.get_rooms(sid, NAMESPACE)
                if room.startswith(prefix)]

    def in_room(self, sid: str, room: str) -> bool:
        return self.manager.has(sid, socketio_room(room))

    # ---- rooms -------------------------------------------------------------------------------

    def on_join(self, connection: Connection, sid: str, payload: Any) -> Ack:
        join = validation.join(payload)
        admission = self.admission.admit(connection.user, connection.room_grants, join.room)
        local = socketio_room(join.room)
        joined_before = self.in_room(sid, join.room)
        new_here = not self.manager.serves(local)
        if join.since:
            self.manager.hold(sid, local)
        try:
            # subscribed before reading: what is stored after this arrives live
            self.server.enter_room(sid, local, namespace=NAMESPACE)
            joined = self.broker.join(join.room, connection.user, self.connection_id(sid),
                                      admission)
            resumed = self.broker.resume(join.room, join.since)
        except Exception:
            if joined_before:  # still in the room: what was held goes out as it came
                self.manager.release(sid, local, None)
            else:
                self.manager.unhold(sid, local)
                self.server.leave_room(sid, local, namespace=NAMESPACE)
            raise
        if new_here:
            self.broker.start_from(channels.room(join.room), resumed.last_id)
        if join.since:
            last = resumed.messages[-1]["id"] if resumed.messages else join.since
            # runs after this handler's ack is queued, so held messages follow the answer
            self.spawn(self.manager.release, sid, local, last)
        return {"ok": True, "room": join.room, "node": self.node, "members": joined.members,
                "missed": resumed.messages, "truncated": resumed.truncated, "read": joined.read}

    def leave_here(self, connection: Connection, sid: str, room: str) -> None:
        if self._leave_locally(connection, sid, room):
            self.broker.leave(room, connection.user, self.connection_id(sid))

    def _leave_locally(self, connection: Connection, sid: str, room: str) -> bool:
        """Take the connection out of the room's local membership (no more of its events reach
        it); whether it was in."""
        if connection.typing_at:
            connection.typing_at.pop(room, None)
        if not self.in_room(sid, room):
            return False
        self.server.leave_room(sid, socketio_room(room), namespace=NAMESPACE)
        return True

    # ---- what other nodes and the app tell this node (control messages) ------------------------

    def on_control(self, body: dict[str, Any]) -> None:
        """A control message on a channel this node serves: a user `left` a room on another
        connection; `disconnect` these connections (a log-out); the app `removed` a user from a
        room, or ends a user's connections (`disconnect_user`: app_control.py)."""
        if "left" in body:
            self.left_elsewhere(body["left"])
        for target in body.get("disconnect", []):
            self.disconnect_here(target)
        if app_control.REMOVED in body:
            self.removed_here(body[app_control.REMOVED])
        if app_control.DISCONNECT_USER in body:
            self.disconnect_user_here(body[app_control.DISCONNECT_USER])

    def removed_here(self, body: dict[str, Any]) -> None:
        """The app removed a user from a room: each of the user's connections here leaves it
        (nothing more of the room reaches it) and receives `removed {room, reason}`."""
        user, room, reason = str(body.get("user")), str(body.get("room")), body.get("reason")
        for sid in self.manager.connections_in(user_room(user)):
            connection = self.connections.get(sid)
            if connection is None:
                continue
            was_in = self._leave_locally(connection, sid, room)
            self.server.emit("removed", {"room": room, "reason": str(reason)}, to=sid,
                             namespace=NAMESPACE)
            if was_in:
                self.broker.leave(room, user, self.connection_id(sid))

    def disconnect_user_here(self, body: dict[str, Any]) -> None:
        """The app ends a user's connections: each one here receives `expired {reason}` and is
        disconnected."""
        user, reason = str(body.get("user")), str(body.get("reason"))
        for sid in self.manager.connections_in(user_room(user)):
            if self.connections.get(sid) is not None:
                self.server.emit("expired", {"reason": reason}, to=sid, namespace=NAMESPACE)
                self.server.disconnect(sid, namespace=NAMESPACE)

    def left_elsewhere(self, body: dict[str, Any]) -> None:
        """The user left a room on one connection: its others, on this node, leave it too (a
        control message on the user's channel)."""
        user, room, origin = str(body.get("user")), str(body.get("room")), body.get("from")
        for sid in self.manager.connections_in(user_room(user)):
            connection = self.connections.get(sid)
            if connection is not None and self.connection_id(sid) != origin:
                self.leave_here(connection, sid, room)

    def disconnect_here(self, target: str) -> None:
        """End connection `node|sid` if it is this node's (a log-out elsewhere)."""
        node, _, sid = str(target).partition("|")
        if node == self.node and self.connections.get(sid) is not None:
            self.server.disconnect(sid, namespace=NAMESPACE)

    def on_leave(self, connection: Connection, sid: str, payload: Any) -> Ack:
        room = validation.room_only(payload)
        self.broker.end_membership(room, connection.user)
        self.leave_here(connection, sid, room)
        # membership ended: the user's other connections leave it too
        self.broker.control(channels.user(connection.user), {"left": {
            "user": connection.user, "room": room, "from": self.connection_id(sid)}})
        return {"ok": True, "room": room}

    def on_presence(self, connection: Connection, sid: str, payload: Any) -> Ack:
        room = validation.room_only(payload)
        self.check_read(connection, sid, room)
        return {"ok": True, "room": room, "members": self.broker.present(room)}

    def check_read(self, connection: Connection, sid: str, room: str) -> None:
        """A connection in the room may read it; another must be admitted (admission.py)."""
        if not self.in_room(sid, room):
            self.admission.check_read(connection.user, connection.room_grants, room)

    def on_rooms(self, connection: Connection, _sid: str, payload: Any) -> Ack:
        validation.no_fields(payload)
        return {"ok": True, "rooms": [
            {"room": r.room, "unread": r.unread, "last_id": r.last_id}
            for r in self.broker.rooms(connection.user)]}

    def on_typing(self, connection: Connection, sid: str, payload: Any) -> Ack:
        room = validation.room_only(payload)
        if not self.in_room(sid, room):
            raise ServiceError("forbidden", f"join room {room} before typing in it")
        now = time.monotonic()
        typing_at = connection.typing_at if connection.typing_at is not None else {}
        if now - typing_at.get(room, -TYPING_EVERY_S) < TYPING_EVERY_S:
            raise ServiceError("rate_limited",
                               f"typing is sent at most once every {TYPING_EVERY_S:g} s per room")
        typing_at[room] = now
        connection.typing_at = typing_at
        self.broker.event(channels.room(room), "typing", {"room": room, "user": connection.user},
                          self.connection_id(sid))
        return {"ok": True}

    # ---- messages ----------------------------------------------------------------------------

    def on_send(self, connection: Connection, sid: str, payload: Any) -> Ack:
        send = validation.send(payload, self.limits.max_text_chars)
        if not self.in_room(sid, send.room):
            raise ServiceError("forbidden", f"join room {send.room} before sending to it")
        text = send.text
        if self.hooks.asks_sends:
            if send.client_id is not None and (first := self.broker.find_sent(
                    send.room, connection.user, send.client_id)) is not None:
                return stored_answer(first)  # stored before: the hook was asked then
            text = self.hooks.send(connection.user, send.room, send.text, send.client_id)
        with self.metrics.publish_seconds.time():
            stored = self.broker.publish(send.room, connection.user, text, send.client_id,
                                         enforce_rules=True)
        self._accepted_in_rooms.inc()
        return stored_answer(stored)

    def on_direct(self, connection: Connection, sid: str, payload: Any) -> Ack:
        direct = validation.direct(payload, self.limits.max_text_chars, self.user_names)
        text = direct.text
        if self.hooks.asks_sends:
            if direct.client_id is not None and (first := self.broker.find_direct(
                    connection.user, direct.to, direct.client_id)) is not None:
                return stored_answer(first)
            text = self.hooks.direct(connection.user, direct.to, direct.text, direct.client_id)
        with self.metrics.publish_seconds.time():
            stored = self.broker.direct(connection.user, direct.to, text,
                                        direct.client_id, self.connection_id(sid))
        self._accepted_directs.inc()
        return stored_answer(stored)

    def on_history(self, connection: Connection, sid: str, payload: Any) -> Ack:
        query = validation.history(payload)
        self.check_read(connection, sid, query.room)
        return {"ok": True, "room": query.room,
                "messages": self.broker.history(query.room, query.before, query.limit)}

    def on_inbox(self, connection: Connection, sid: str, payload: Any) -> Ack:
        since = validation.inbox(payload)
        local = user_room(connection.user)
        if since:
            self.manager.hold(sid, local)  # as a resuming join: each message once, in order
        try:
            resumed = self.broker.inbox(connection.user, since)
        except Exception:
            if since:
                self.manager.release(sid, local, None)
            raise
        if since:
            last = resumed.messages[-1]["id"] if resumed.messages else since
            self.spawn(self.manager.release, sid, local, last)
        return {"ok": True, "messages": resumed.messages, "truncated": resumed.truncated}

    def on_direct_history(self, connection: Connection, _sid: str, payload: Any) -> Ack:
        query = validation.direct_history(payload, self.user_names)
        return {"ok": True, "with": query.with_user, "messages": self.broker.conversation(
            connection.user, query.with_user, query.before, query.limit)}

    def on_conversations(self, connection: Connection, _sid: str, payload: Any) -> Ack:
        validation.no_fields(payload)
        return {"ok": True, "conversations": [
            {"with": c.with_user, "last": c.last, "unread": c.unread}
            for c in self.broker.conversations(connection.user)]}

    def on_read(self, connection: Connection, sid: str, payload: Any) -> Ack:
        read = validation.read(payload, self.user_names)
        where = {read.field: read.target}
        if read.field == "room":
            moved = self.broker.read_room(read.target, connection.user, read.id)
        else:
            moved = self.broker.read_conversation(connection.user, read.target, read.id)
        if moved.moved:
            self.broker.event(channels.user(connection.user), "read", {**where, "id": moved.id},
                              self.connection_id(sid))
        return {"ok": True, **where, "id": moved.id}

    # ---- credentials ---------------------------------------------------------------------------

    def on_refresh(self, connection: Connection, sid: str, payload: Any) -> Ack:
        claims = self.verify_token(validation.refresh(payload))
        if claims.user != connection.user:
            raise ServiceError("unauthorized", "that token is another user's")
        if claims.session_binding is not None and not self.signer.binds(
                claims, connection.session_id):
            raise ServiceError("unauthorized", "that token belongs to another browser session")
        self.connections.extend(sid, connection, claims.expires_at)
        connection.room_grants = claims.room_grants  # the newest token's
        return {"ok": True, "expires_in": max(0, int(claims.expires_at - time.time()))}


def stored_answer(stored: Stored) -> Ack:
    return {"ok": True, "id": stored.id, "ts": stored.ts}
