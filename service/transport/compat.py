"""Every reliance on a library's internals, in one place, with the versions it was written for.

The service serves connections through python-socketio and python-engineio's public API. Where
it goes below that (to deliver a bus frame to many connections without building a packet per
recipient, to refuse hostile packets before python-socketio trips on them, to hand connections
over when draining, to serve WebSockets with the project's own transport, to read Redis replies
with hiredis on a socket redis-py opened, to make a log-out final in Flask-Session) it does so
here, or in a module named below, and nowhere else.

`INTERNALS` lists each reliance with a check that it is still there. `verify()` runs them all
when a node starts and refuses to start, naming each one that is gone and the versions the code
was written for, instead of running with a behaviour silently switched off. The unit tests run
every check (tests/unit/test_compat.py), so upgrading a library that changed one fails there.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from typing import Any

from engineio.exceptions import SocketIsClosedError

WRITTEN_FOR = {
    "python-socketio": "5.18",
    "python-engineio": "4.15",
    "gunicorn": "27.0",
    "flask-session": "0.8",
    "redis": "8.1",
}
log = logging.getLogger("service")


class CompatError(RuntimeError):
    """A library internal the service relies on is gone; the message names each one."""


@dataclass(frozen=True)
class Internal:
    library: str
    name: str  # what is relied on
    used_by: str  # where, and what it is for
    present: Callable[[], bool]


def _has(obj: Any, *attributes: str) -> bool:
    return all(hasattr(obj, attribute) for attribute in attributes)


def _parameters(function: Any) -> list[str]:
    return list(inspect.signature(function).parameters)


# ---- python-socketio and python-engineio: delivering bus frames --------------------------------


def write_packet(server: Any, eio_sid: str, packet: Any) -> bool:
    """Hand an Engine.IO packet to one connection's socket, which writes it at once
    (websocket.py); False if it is gone or closing. A packet built once (its WebSocket frame
    kept on it) goes to every recipient of a broadcast as it is."""
    eio_socket = server.eio.sockets.get(eio_sid)
    if eio_socket is None or eio_socket.closed:
        return False
    try:
        eio_socket.send(packet)
    except SocketIsClosedError:  # closing meanwhile: skip it only
        return False
    return True


def connections_by_transport(server: Any) -> dict[str, int]:
    """Connections by transport: WebSocket (from the start or upgraded) or long-polling."""
    counts = {"websocket": 0, "polling": 0}
    if server is None:
        return counts
    for eio_socket in list(server.eio.sockets.values()):
        counts["websocket" if eio_socket.upgraded else "polling"] += 1
    return counts


def end_transports(server: Any) -> int:
    """End every connection's transport without an Engine.IO CLOSE packet (which clients take as
    "do not come back"), as when a node dies: clients reconnect elsewhere. How many ended."""
    eio = server.eio
    return sum(_end(eio, eio_sid) for eio_sid in list(eio.sockets))


def end_transport_of(server: Any, sid: str) -> int:
    """End the transport of Socket.IO connection `sid` as `end_transports` does; 1 if it had
    one, else 0."""
    eio_sid = server.manager.eio_sid_from_sid(sid, "/")
    return 0 if eio_sid is None else _end(server.eio, eio_sid)


def _end(eio: Any, eio_sid: str) -> int:
    eio_socket = eio.sockets.get(eio_sid)
    if eio_socket is None:
        return 0
    eio_socket.close(wait=False, abort=True, reason=eio.reason.SERVER_DISCONNECT)
    eio.sockets.pop(eio_sid, None)
    return 1


# ---- python-socketio: refusing hostile packets -------------------------------------------------

# Names of the server's own handlers that no client may call: python-socketio would run the
# lifecycle handlers for a client event of that name (a client "disconnect" event would drop its
# presence) and call the catch-all with its arguments shifted for an event named "*".
SERVER_ONLY_EVENTS = frozenset({"connect", "disconnect", "connect_error", "disconnecting",
                                "__disconnect_final", "*"})


def guard_incoming_packets(server: Any, on_malformed: Callable[[str, Exception], None]) -> None:
    """Harden python-socketio's entry points against what hostile clients send.

    - A client event named like a server-only handler goes to the catch-all (`bad_request`).
    - An event packet without an event name is dropped.
    - A packet python-socketio cannot decode is dropped and reported once (`on_malformed`), not
      a traceback per packet (which a client could use to flood the logs).
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
            on_malformed(eio_sid, error)
            return None

    server._handle_event = guarded_event
    server.eio.on("message", guarded_message)  # engineio holds the handler registered at init


# ---- redis-py: the socket of a connection it opened ------------------------------------------


def raw_socket(connection: Any) -> Any:
    """The socket of a connected redis-py Connection (its URL, TLS, password and client name are
    redis-py's; replies are then read with hiredis directly: store/pipeline.py, bus/link.py)."""
    return connection._sock


def python_reply_parser() -> type:
    """redis-py's pure-Python RESP2 parser (eventlet removes the `select.poll` hiredis's needs)."""
    from redis._parsers import _RESP2Parser

    return _RESP2Parser


# ---- the checks --------------------------------------------------------------------------------


def _socketio_server() -> bool:
    import socketio

    return (_has(socketio.Server, "_handle_event", "_handle_eio_message")
            and _parameters(socketio.Server._handle_event)[1:] == ["eio_sid", "namespace", "id",
                                                                   "data"])


def _manager() -> bool:
    import socketio

    return (_has(socketio.Manager, "get_participants", "eio_sid_from_sid")
            and _parameters(socketio.Manager.get_participants)[1:] == ["namespace", "room"])


def _engineio_socket() -> bool:
    from engineio import packet
    from engineio.socket import Socket

    return (_has(Socket, "send", "poll", "close", "check_ping_timeout", "schedule_ping",
                 "receive", "_upgrade_websocket")
            and _parameters(Socket.__init__)[1:] == ["server", "sid"]
            and _parameters(Socket.close)[1:] == ["wait", "abort", "reason"]
            and _has(packet.Packet, "encode") and packet.MESSAGE == 4)


def _engineio_socket_state() -> bool:
    import engineio
    from engineio.socket import Socket

    socket = Socket(engineio.Server(async_mode="threading"), "sid")
    return (set(vars(socket)) == {"server", "sid", "queue", "last_ping", "connected", "upgrading",
                                  "upgraded", "closing", "closed", "session"}
            and "self.server._async['websocket'](\n            self._websocket_handler, "
                "self.server)" in inspect.getsource(Socket._upgrade_websocket))


def _engineio_server() -> bool:
    import engineio

    server = engineio.Server(async_mode="threading")
    return (isinstance(getattr(server, "sockets", None), dict)
            and isinstance(getattr(server, "_async", None), dict)
            and _has(server, "generate_id", "get_queue_empty_exception", "_trigger_event")
            and "run_async = kwargs.pop('run_async'" in inspect.getsource(server._trigger_event)
            and all(_has(server.reason, name) for name in (
                "SERVER_DISCONNECT", "CLIENT_DISCONNECT", "TRANSPORT_CLOSE", "TRANSPORT_ERROR",
                "PING_TIMEOUT")))


def _socketio_request_path() -> bool:
    import socketio

    return "return self.eio.handle_request(environ, start_response)" in inspect.getsource(
        socketio.Server.handle_request)


def _socketio_sids() -> bool:
    import socketio

    return (_has(socketio.Manager, "sid_from_eio_sid", "get_namespaces")
            and _parameters(socketio.Manager.sid_from_eio_sid)[1:] == ["eio_sid", "namespace"])


def _gunicorn_socket() -> bool:
    from gunicorn.http import wsgi
    from gunicorn.workers import base_async

    return ('"gunicorn.socket": sock' in inspect.getsource(wsgi)
            and "except StopIteration" in inspect.getsource(base_async.AsyncWorker.handle))


def _sets(cls: type, *attributes: str) -> bool:
    """Whether the class's own source assigns these instance attributes."""
    source = inspect.getsource(cls)
    return all(f"self.{attribute} =" in source for attribute in attributes)


def _flask_session() -> bool:
    from flask_session.base import ServerSideSession, ServerSideSessionInterface

    hooks = ("_retrieve_session_data", "_delete_session", "_upsert_session")
    return (_has(ServerSideSessionInterface, *hooks, "open_session", "save_session")
            and _parameters(ServerSideSessionInterface._upsert_session)[1:] == [
                "session_lifetime", "session", "store_id"]
            and _sets(ServerSideSession, "sid"))


def _redis_connection() -> bool:
    import redis
    from redis.connection import AbstractConnection

    return (hasattr(redis.Connection(), "_sock")
            and "protocol" in _parameters(AbstractConnection.__init__))


def _redis_parser() -> bool:
    try:
        python_reply_parser()
    except ImportError:
        return False
    return True


INTERNALS = [
    Internal("python-socketio", "Server._handle_event, Server._handle_eio_message",
             "guard_incoming_packets: hostile packets refused with one log line", _socketio_server),
    Internal("python-socketio", "Manager.get_participants, Manager.eio_sid_from_sid",
             "realtime/manager.py: local membership and delivery; end_transport_of",
             _manager),
    Internal("python-engineio", "Socket(server, sid): send, receive, close(wait, abort, reason), "
             "schedule_ping, check_ping_timeout, _upgrade_websocket; packet.Packet",
             "write_packet; transport/websocket.py: its socket class; end_transports, "
             "end_transport_of (handing connections over)",
             _engineio_socket),
    Internal("python-engineio", "Socket's state: exactly server, sid, queue, last_ping, connected, "
             "upgrading, upgraded, closing, closed, session; "
             "an upgrade calls _async['websocket'](handler, server)",
             "transport/websocket.py: taking over a long-polling session that upgrades; its "
             "socket class sets that state without a queue",
             _engineio_socket_state),
    Internal("python-engineio", "Server.sockets, _async, generate_id, _trigger_event(run_async=), "
             "get_queue_empty_exception, reason.*",
             "write_packet; transport/websocket.py opens WebSocket sessions itself",
             _engineio_server),
    Internal("python-socketio", "Manager.sid_from_eio_sid(eio_sid, namespace), get_namespaces",
             "transport/websocket.py: a connection that never joins is cut off", _socketio_sids),
    Internal("python-socketio", "Server.handle_request calls self.eio.handle_request",
             "transport/websocket.py wraps Engine.IO's request handler", _socketio_request_path),
    Internal("gunicorn", "environ['gunicorn.socket']; StopIteration from the app ends the "
             "connection", "transport/websocket.py: the connection's socket, served to its end",
             _gunicorn_socket),
    Internal("flask-session", "ServerSideSessionInterface._retrieve_session_data, "
             "_delete_session, _upsert_session(session_lifetime, session, store_id)",
             "web/sessions.py: sessions in the store, a log-out is final", _flask_session),
    Internal("redis", "Connection._sock, Connection(protocol=)",
             "store/pipeline.py, bus/link.py: replies read with hiredis", _redis_connection),
    Internal("redis", "redis._parsers._RESP2Parser", "store/topology.py: eventlet mode",
             _redis_parser),
]


def installed_versions() -> dict[str, str]:
    versions = {}
    for library in WRITTEN_FOR:
        try:
            versions[library] = metadata.version(library)
        except metadata.PackageNotFoundError:
            versions[library] = "not installed"
    return versions


def missing() -> list[Internal]:
    gone = []
    for internal in INTERNALS:
        try:
            present = internal.present()
        except Exception:  # an import or attribute that is gone
            present = False
        if not present:
            gone.append(internal)
    return gone


def verify() -> None:
    """Refuse to start when a relied-on internal is gone (see the module's docstring)."""
    gone = missing()
    if gone:
        versions = installed_versions()
        names = "; ".join(f"{i.library} {i.name} (for {i.used_by})" for i in gone)
        written = ", ".join(f"{lib} {WRITTEN_FOR[lib]} (installed {versions[lib]})"
                            for lib in sorted({i.library for i in gone}))
        raise CompatError(f"library internals this service relies on are gone: {names}. "
                          f"It was written for {written}: install those versions "
                          f"(requirements.lock)")
