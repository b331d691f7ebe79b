"""Every reliance on a library's internals, in one place, with the versions it was written for.

The service serves connections through python-socketio and python-engineio's public API. Where
it goes below that (to deliver a bus frame to many connections without building a packet per
recipient, to refuse hostile packets before python-socketio trips on them, to hand connections
over, to serve WebSockets with the project's own transport (transport/websocket.py), to read
Redis replies with hiredis on a socket redis-py opened, to make a log-out final in
Flask-Session, to hand a test client's events over in the order they came) it goes through a
function or class of this module, and no other module names an internal.

`INTERNALS` lists each reliance with a check that exercises it: the check builds the library's
object and sees it behave as relied on (a handler called in the caller's task, a packet decoded
and routed, a hook called with its arguments), never a comparison of the library's source.
`verify()` runs them all when a node starts and refuses to start, naming each one that fails and
the versions the code was written for, instead of running with a behaviour silently switched
off; the unit tests run every check too (tests/unit/test_compat.py).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from typing import Any

from engineio.exceptions import SocketIsClosedError
from engineio.socket import Socket as _EngineIOSocket
from flask_session.base import ServerSideSession, ServerSideSessionInterface

WRITTEN_FOR = {
    "python-socketio": "5.18",
    "python-engineio": "4.15",
    "gunicorn": "27.0",
    "flask-session": "0.8",
    "redis": "8.1",
    "gevent": "26.9",
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


# ---- python-socketio and python-engineio: delivering bus frames, handing connections over ------


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


# ---- python-engineio: what the project's WebSocket transport reaches (websocket.py) ------------

EngineIOSocket = _EngineIOSocket  # python-engineio's socket class, which the transport extends


def init_socket_state(socket: Any, server: Any, sid: str) -> None:
    """What python-engineio's socket sets up, without its packet queue (nothing polls it)."""
    socket.server, socket.sid = server, sid
    socket.last_ping = time.time()
    socket.connected = socket.upgrading = socket.upgraded = socket.closing = False
    socket.closed = False
    socket.session = {}


def close_socket(socket: Any, reason: Any) -> None:
    """python-engineio's own close of a socket (the disconnect event), without waiting on a
    queue or sending a CLOSE packet."""
    _EngineIOSocket.close(socket, wait=False, abort=True, reason=reason)


def become(socket: Any, cls: type) -> None:
    """Make python-engineio's socket of a long-polling session that upgrades one of `cls`."""
    socket.__class__ = cls


def queued_packets(eio: Any, socket: Any) -> list[Any]:
    """Take what a long-polling session queued for its next poll, oldest first."""
    empty = eio.get_queue_empty_exception()
    taken = []
    while True:
        try:
            taken.append(socket.queue.get(block=False))
        except empty:
            return taken
        socket.queue.task_done()


def session_of(eio: Any, eio_sid: str) -> Any:
    return eio.sockets.get(eio_sid)


def forget_session(eio: Any, eio_sid: str) -> None:
    eio.sockets.pop(eio_sid, None)


def open_session(eio: Any, socket_class: type, environ: dict[str, Any]) -> Any:
    """A new Engine.IO session of `socket_class`, announced to python-socketio in the caller's
    task (its connect event); None if the application refused it."""
    sid = eio.generate_id()
    socket = socket_class(eio, sid)
    eio.sockets[sid] = socket
    refused = eio._trigger_event("connect", sid, environ, run_async=False)
    if refused is not None and refused is not True:
        eio.sockets.pop(sid, None)
        return None
    return socket


def reasons(eio: Any) -> Any:
    """python-engineio's disconnect reasons (SERVER_DISCONNECT, CLIENT_DISCONNECT, ...)."""
    return eio.reason


def intercept(eio: Any, transport: Callable[[Callable[..., Any]], Any],
              upgrade_handler: type) -> Any:
    """Serve Engine.IO's requests through `transport(its own handler)` (python-socketio hands
    every request to `eio.handle_request`), and upgrades of long-polling sessions to WebSocket
    through `upgrade_handler` (python-engineio builds one per upgrade); the transport."""
    wrapped = transport(eio.handle_request)
    eio.handle_request = wrapped
    eio._async = {**eio._async, "websocket": upgrade_handler}
    return wrapped


def drop_queue(socket: Any) -> None:
    """Forget a session's packet queue (python-engineio makes one per session): a session that
    upgraded to the project's transport has its class's instead."""
    socket.__dict__.pop("queue", None)


# ---- gevent: the event loop's watchers, which serve connections without a task each -----------
# gevent calls its loop API "an internal, low-level interface" that may change between minor
# versions (gevent/_interfaces.py, ILoop and IWatcher).


def event_loop() -> Any:
    """The worker's event loop (gevent's hub's): `io(fd, events)` watchers, `run_callback`."""
    from gevent import get_hub

    return get_hub().loop


def spawn_task(function: Callable[[], Any]) -> None:
    """A bare greenlet running `function`, the smallest task gevent has (it catches everything)."""
    import gevent

    gevent.spawn_raw(function)


def yield_turn() -> None:
    """Let the loop and other tasks run before this task goes on."""
    import gevent

    gevent.sleep(0)


# ---- python-engineio: long-polling sessions' liveness (transport/polling_liveness.py) -----------


def watch_session_opens(eio: Any, opened: Callable[[str], None]) -> None:
    """Call `opened(sid)` after the server's connect handler (python-socketio's, if any) has
    accepted a new Engine.IO session, in the same task."""
    connect = eio.handlers.get("connect")

    def connected(sid: str, environ: dict[str, Any], *rest: Any) -> Any:
        answer = None if connect is None else connect(sid, environ, *rest)
        if answer is None or answer is True:
            opened(sid)
        return answer

    eio.on("connect", connected)  # engineio holds the handler registered at init


def wrap_requests(eio: Any, wrapper: Callable[[Callable[..., Any]], Callable[..., Any]]) -> None:
    """Serve Engine.IO's requests through `wrapper(the handler so far)` (python-socketio hands
    every request to `eio.handle_request`; the WebSocket transport may have wrapped it already)."""
    eio.handle_request = wrapper(eio.handle_request)


def is_polling(socket: Any) -> bool:
    """A long-polling session: python-engineio's own socket class, not upgraded (the project's
    transport serves WebSockets with sockets of its subclass, and an upgrade makes one)."""
    return type(socket) is _EngineIOSocket and not socket.upgraded


def unanswered_ping_at(socket: Any) -> float | None:
    """When (time.time()) python-engineio queued the long-polling session's PING that is still
    unanswered; None while the next one waits for the ping interval (a PONG clears it)."""
    return socket.last_ping or None


def close_if_ping_timed_out(eio: Any, socket: Any) -> bool:
    """python-engineio's own check (`check_ping_timeout`): a session whose PING went unanswered
    past the ping timeout is closed (the disconnect event with PING_TIMEOUT; a pending poll
    ends) and leaves the sessions table. Whether it is closed now."""
    try:
        alive = socket.check_ping_timeout()
    except SocketIsClosedError:
        alive = False
    if not alive:
        forget_closed(eio, socket)
    return not alive


def forget_closed(eio: Any, socket: Any) -> None:
    """Drop a closed session from the sessions table (python-engineio's service task did, and
    its next request would); not a newer session of the same sid."""
    if socket.closed and eio.sockets.get(socket.sid) is socket:
        eio.sockets.pop(socket.sid, None)


def participants(server: Any) -> Callable[[str], bool]:
    """Whether an Engine.IO session has joined python-socketio (any namespace)."""
    manager = server.manager

    def joined(eio_sid: str) -> bool:
        return any(manager.sid_from_eio_sid(eio_sid, namespace) is not None
                   for namespace in list(manager.get_namespaces()))

    return joined


# ---- flask-session: sessions kept by the store -------------------------------------------------


class SessionInterfaceHooks(ServerSideSessionInterface):
    """Flask-Session's server-side session interface with its storage hooks handed to three
    methods of the subclass (web/sessions.py): `load(store_id)`, `end(store_id)` and
    `keep(store_id, data, ttl_s, existing)`."""

    def load(self, store_id: str) -> dict | None:
        raise NotImplementedError

    def end(self, store_id: str) -> None:
        raise NotImplementedError

    def keep(self, store_id: str, session: ServerSideSession, ttl_s: int) -> None:
        raise NotImplementedError

    def _retrieve_session_data(self, store_id: str) -> dict | None:
        return self.load(store_id)

    def _delete_session(self, store_id: str) -> None:
        self.end(store_id)

    def _upsert_session(self, session_lifetime: Any, session: ServerSideSession,
                        store_id: str) -> None:
        self.keep(store_id, session, int(session_lifetime.total_seconds()))


# ---- redis-py: the socket of a connection it opened ------------------------------------------


def raw_socket(connection: Any) -> Any:
    """The socket of a connected redis-py Connection (its URL, TLS, password and client name are
    redis-py's; replies are then read with hiredis directly: store/resp.py)."""
    return connection._sock


def python_reply_parser() -> type:
    """redis-py's pure-Python RESP2 parser (eventlet removes the `select.poll` hiredis's needs)."""
    from redis._parsers import _RESP2Parser

    return _RESP2Parser


# ---- python-socketio's client: events in the order they came (tests/in_order_client.py) ----------


def in_order_socketio_client(base: type) -> type:
    """A python-socketio Client class (`base` or a subclass) whose Engine.IO client hands every
    message to the handlers in the reading thread, in the order of the wire (python-engineio's
    threaded client starts a thread per message)."""
    import engineio

    class InOrderEngineIOClient(engineio.Client):
        def _trigger_event(self, event: str, *args: Any, **kwargs: Any) -> Any:
            if event == "message":
                kwargs["run_async"] = False
            return super()._trigger_event(event, *args, **kwargs)

    class InOrderClient(base):
        def _engineio_client_class(self) -> type:
            return InOrderEngineIOClient

    return InOrderClient


# ---- python-socketio: the environ a session keeps (transport/environ.py) ---------------------


def lean_connect_environ(server: Any, lean: Callable[[dict[str, Any]], dict[str, Any]]) -> None:
    """python-socketio keeps the environ its Engine.IO connect handler is given for the
    session's life (each namespace's connect handler and `get_environ` read it): give it
    `lean(environ)` instead, for every session, long-polling ones too (python-engineio hands it
    the polling handshake's environ, gunicorn's request objects and all)."""
    handle_connect = server.eio.handlers.get("connect", server._handle_eio_connect)

    def lean_connect(eio_sid: str, environ: dict[str, Any], *rest: Any) -> Any:
        # whatever is registered now (python-socketio's handler, maybe wrapped already)
        return handle_connect(eio_sid, lean(environ), *rest)

    server.eio.on("connect", lean_connect)  # engineio holds the handler registered at init


# ---- the checks: each builds the library's object and sees it behave as relied on -------------


def _environ() -> dict[str, Any]:
    return {"REQUEST_METHOD": "GET", "PATH_INFO": "/socket.io/", "QUERY_STRING": "EIO=4",
            "SERVER_NAME": "check", "SERVER_PORT": "80", "wsgi.url_scheme": "http"}


def _socketio_packets() -> bool:
    """A decoded EVENT packet reaches `_handle_event(eio_sid, namespace, id, data)`, and a
    guarded server renames a server-only event and drops what it cannot decode."""
    import socketio

    server = socketio.Server(async_mode="threading")
    seen: list[Any] = []
    server._handle_event = lambda eio_sid, namespace, ack_id, data: seen.append(
        (eio_sid, namespace, ack_id, data))
    malformed: list[str] = []
    guard_incoming_packets(server, lambda eio_sid, error: malformed.append(eio_sid))
    server.eio.handlers["message"]("e1", '21["connect",5]')
    server.eio.handlers["message"]("e2", "2not json")
    return (len(seen) == 1 and seen[0][0] == "e1" and seen[0][1] in (None, "/")
            and seen[0][2:] == (1, ["reserved:connect", 5]) and malformed == ["e2"])


def _manager_table() -> bool:
    """The manager's table: a connection, its room, and the sids both ways."""
    import socketio

    manager = socketio.Manager()
    socketio.Server(client_manager=manager, async_mode="threading")
    sid = manager.connect("e1", "/")
    manager.enter_room(sid, "/", "r")
    return (list(manager.get_participants("/", "r")) == [(sid, "e1")]
            and manager.eio_sid_from_sid(sid, "/") == "e1"
            and manager.sid_from_eio_sid("e1", "/") == sid
            and "/" in list(manager.get_namespaces()))


def _engineio_socket() -> bool:
    """A socket: the state it sets up, `send` of a packet, `close(wait, abort, reason)` that
    tells the server's disconnect handler, and an upgrade that builds the server's WebSocket
    class with (its handler, the server) and serves the request with it."""
    import engineio
    from engineio import packet

    server = engineio.Server(async_mode="threading")
    ended: list[Any] = []
    server.on("disconnect", lambda sid, reason: ended.append((sid, reason)))
    socket = _EngineIOSocket(server, "s1")
    state = set(vars(socket)) >= {"server", "sid", "queue", "last_ping", "connected",
                                  "upgrading", "upgraded", "closing", "closed", "session"}
    built: list[Any] = []

    def upgrade_class(handler: Any, owner: Any) -> Callable[..., Any]:
        built.append((handler.__self__, owner))
        return lambda environ, start_response: ["upgraded"]

    server._async = {**server._async, "websocket": upgrade_class}
    served = socket._upgrade_websocket(_environ(), lambda *args: None)
    socket.close(wait=False, abort=True, reason=server.reason.SERVER_DISCONNECT)
    return (state and served == ["upgraded"] and built == [(socket, server)]
            and ended == [("s1", server.reason.SERVER_DISCONNECT)] and socket.closed
            and packet.Packet(packet.MESSAGE, "x").encode() == "4x")


def _engineio_server() -> bool:
    """The server's sessions table, its ids, its connect event run in the caller's task when
    asked (`run_async=False`), its queue's Empty, its disconnect reasons."""
    import engineio

    server = engineio.Server(async_mode="threading")
    called_in: list[int] = []

    def refuse(_sid: str, _environ: dict[str, Any]) -> bool:
        called_in.append(threading.get_ident())
        return False

    server.on("connect", refuse)
    refused = open_session(server, _EngineIOSocket, _environ())
    queue = server.create_queue()
    queue.put(1)
    queue.get()
    try:
        queue.get(block=False)
        emptied = False
    except server.get_queue_empty_exception():
        emptied = True
    return (refused is None and called_in == [threading.get_ident()] and server.sockets == {}
            and isinstance(server.generate_id(), str) and emptied
            and all(hasattr(server.reason, name) for name in (
                "SERVER_DISCONNECT", "CLIENT_DISCONNECT", "TRANSPORT_CLOSE", "TRANSPORT_ERROR",
                "PING_TIMEOUT")))


def _engineio_polling_liveness() -> bool:
    """Without the service task (`monitor_clients=False`) a long-polling handshake starts only
    the session's ping task and tells a watched connect handler; the session is python-engineio's
    own socket class; `last_ping` is None until that task queues a PING, then its time; an
    unanswered PING past the ping timeout closes the session with PING_TIMEOUT (a pending poll
    ends), and it leaves `sockets`; a wrapped request handler serves requests."""
    import engineio
    from engineio import packet

    server = engineio.Server(async_mode="threading", monitor_clients=False, ping_interval=25,
                             ping_timeout=5)
    started: list[Callable[[], Any]] = []
    server.start_background_task = lambda target, *args, **kwargs: started.append(target)
    server.sleep = lambda seconds=0: None
    ended: list[Any] = []
    server.on("connect", lambda sid, environ: True)
    server.on("disconnect", lambda sid, reason: ended.append((sid, reason)))
    opened: list[str] = []
    watch_session_opens(server, opened.append)
    seen: list[str] = []

    def wrapper(handle: Callable[..., Any]) -> Callable[..., Any]:
        def handle_request(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
            seen.append(environ["QUERY_STRING"])
            return handle(environ, start_response)
        return handle_request

    wrap_requests(server, wrapper)
    server.handle_request({**_environ(), "QUERY_STRING": "EIO=4&transport=polling"},
                          lambda *args: None)
    if len(opened) != 1 or len(started) != 1 or seen != ["EIO=4&transport=polling"]:
        return False
    socket = server.sockets[opened[0]]
    waiting = is_polling(socket) and unanswered_ping_at(socket) is None
    started[0]()  # the ping task, its sleep done: queues a PING
    sent_at = unanswered_ping_at(socket)
    pinged = sent_at is not None and abs(sent_at - time.time()) < 5
    alive = not close_if_ping_timed_out(server, socket)
    socket.last_ping = time.time() - 6
    closed = close_if_ping_timed_out(server, socket)
    queued = [getattr(socket.queue.get(block=False), "packet_type", None)
              for _ in range(socket.queue.qsize())]
    return (waiting and pinged and alive and closed and socket.closed
            and ended == [(opened[0], server.reason.PING_TIMEOUT)] and server.sockets == {}
            and queued == [packet.PING, None])


def _socketio_request_path() -> bool:
    """python-socketio hands every request to `eio.handle_request`, so wrapping it serves them."""
    import socketio

    server = socketio.Server(async_mode="threading")
    intercept(server.eio, lambda own: lambda environ, start_response: ["ours"], object)
    return server.handle_request(_environ(), lambda *args: None) == ["ours"]


def _gunicorn_socket() -> bool:
    """gunicorn puts the connection's socket in the environ (`gunicorn.socket`); its async worker
    ends a connection whose application raised StopIteration (tests/unit/test_compat.py serves one
    through a real gevent worker)."""
    import io

    from gunicorn.config import Config
    from gunicorn.http import wsgi
    from gunicorn.http.message import Request
    from gunicorn.http.unreader import IterUnreader
    from gunicorn.workers.base_async import AsyncWorker

    config = Config()
    request = Request(config, IterUnreader([b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"]),
                      ("127.0.0.1", 5), 1)
    sock = io.BytesIO()
    _response, environ = wsgi.create(request, sock, ("127.0.0.1", 5), ("127.0.0.1", 80), config)
    return environ.get("gunicorn.socket") is sock and callable(AsyncWorker.handle)


def _gevent_loop() -> bool:
    """A loop's io watcher calls its callback, in the loop, once its descriptor is readable and
    not after `stop()`; `run_callback` runs a callback on the loop's next turn; `close()` frees
    the watcher (checked on a loop of its own, without switching to the hub)."""
    import socket

    from gevent import config

    loop = config.loop(default=False)
    ours, theirs = socket.socketpair()
    calls: list[str] = []
    try:
        watcher = loop.io(ours.fileno(), 1)
        watcher.start(calls.append, "readable")
        loop.run_callback(calls.append, "callback")
        loop.run(nowait=True)
        idle = list(calls)
        theirs.send(b"x")
        loop.run(once=True)
        ready = list(calls)
        watcher.stop()
        loop.run(nowait=True)
        watcher.close()
        return (idle == ["callback"] and ready == ["callback", "readable"]
                and calls == ready and callable(loop.io(ours.fileno(), 2).start))
    finally:
        ours.close()
        theirs.close()
        loop.destroy()


def _flask_session_hooks() -> bool:
    """Flask-Session loads a session through `_retrieve_session_data(store_id)`, keeps it
    through `_upsert_session(lifetime, session, store_id)` and gives it its `sid`."""
    from flask import Flask, session
    from flask_session.redis import RedisSession

    calls: list[Any] = []

    class Hooks(SessionInterfaceHooks):
        session_class = RedisSession

        def load(self, store_id: str) -> dict | None:
            calls.append(("load", store_id))
            return {"x": 1}

        def keep(self, store_id: str, kept: ServerSideSession, ttl_s: int) -> None:
            calls.append(("keep", store_id, dict(kept), ttl_s, kept.sid))

    app = Flask("compat-check")
    app.config.update(SECRET_KEY="compat-check-" + "secret", SESSION_COOKIE_NAME="check")
    app.session_interface = Hooks(app, key_prefix="", permanent=False)

    @app.get("/")
    def touch() -> str:
        session["x"] = 1
        return "ok"

    client = app.test_client()
    client.get("/")  # a new session: kept
    client.get("/")  # its cookie back: loaded, then kept again
    kept = [call for call in calls if call[0] == "keep"]
    return (len(kept) == 2 and kept[0][2] == {"x": 1} and kept[0][3] > 0
            and kept[0][1] == kept[0][4] and ("load", kept[0][1]) in calls)


def _redis_connection() -> bool:
    """A redis-py Connection takes `protocol` and keeps its socket in `_sock` once connected."""
    import socket as sockets

    import redis

    listener = sockets.create_server(("127.0.0.1", 0))
    try:
        connection = redis.Connection(host="127.0.0.1", port=listener.getsockname()[1],
                                      protocol=2, socket_connect_timeout=1,
                                      redis_connect_func=lambda _connection: None)
        connection.connect()  # the TCP connection alone: nobody answers a handshake here
        connected = isinstance(raw_socket(connection), sockets.socket)
        connection.disconnect()
        return connected
    finally:
        listener.close()


def _redis_parser() -> bool:
    """redis-py's Python parser reads a reply off a connection's socket."""
    return hasattr(python_reply_parser(), "read_response")


def _socketio_client() -> bool:
    """python-socketio's client builds its Engine.IO client from `_engineio_client_class()`,
    whose `_trigger_event(..., run_async=False)` runs a handler in the caller's thread."""
    import socketio

    client = in_order_socketio_client(socketio.Client)()
    ran_in: list[int] = []
    client.eio.on("message", lambda data: ran_in.append(threading.get_ident()))
    client.eio._trigger_event("message", "x")
    return ran_in == [threading.get_ident()]


def _socketio_connect_environ() -> bool:
    """python-socketio's Engine.IO connect handler is `_handle_eio_connect(eio_sid, environ)`,
    registered with python-engineio, and what it is given is what it keeps and what a
    namespace's connect handler gets."""
    import socketio

    server = socketio.Server(async_mode="threading")
    got: list[Any] = []
    server.on("connect", lambda sid, environ, auth=None: got.append(environ))
    lean_connect_environ(server, lambda environ: {"lean": environ["QUERY_STRING"]})
    server.eio.sockets["e1"] = type("Stub", (), {"send": lambda self, pkt: None,
                                                 "closed": False})()
    server.eio._trigger_event("connect", "e1", {**_environ(), "big": "x" * 1000},
                              run_async=False)
    server.eio.handlers["message"]("e1", "0")  # the Socket.IO CONNECT of namespace "/"
    return server.environ.get("e1") == {"lean": "EIO=4"} and got == [{"lean": "EIO=4"}]


def _manager_sid_rooms() -> bool:
    """What realtime/manager.py's leaner table relies on: the Manager enters a connection into
    its own room and the None room through `basic_enter_room(sid, namespace, room, eio_sid=)`
    and leaves through `basic_leave_room`; `disconnect` goes through `basic_disconnect`, which
    also clears `callbacks[sid]` and the sid from `pending_connect`/`pending_disconnect`
    [namespace]; `emit(to=sid)` finds its recipients with `get_participants(namespace, sid)`,
    `rooms()` with `get_rooms`; the None room maps every sid to its eio_sid; a sid room is one
    that is in the None room (`close_room` refuses it)."""
    import socketio

    calls: list[tuple[Any, ...]] = []

    class Recording(socketio.Manager):
        def basic_enter_room(self, sid: str, namespace: str, room: Any,
                             eio_sid: Any = None) -> Any:
            calls.append(("enter", sid, room, eio_sid))
            return super().basic_enter_room(sid, namespace, room, eio_sid=eio_sid)

        def basic_leave_room(self, sid: str, namespace: str, room: Any) -> Any:
            calls.append(("leave", sid, room))
            return super().basic_leave_room(sid, namespace, room)

        def basic_disconnect(self, sid: str, namespace: str, **kwargs: Any) -> Any:
            calls.append(("disconnect", sid))
            return super().basic_disconnect(sid, namespace, **kwargs)

        def get_participants(self, namespace: str, room: Any) -> Any:
            calls.append(("participants", room))
            return super().get_participants(namespace, room)

        def get_rooms(self, sid: str, namespace: str) -> Any:
            calls.append(("rooms", sid))
            return super().get_rooms(sid, namespace)

    manager = Recording()
    server = socketio.Server(client_manager=manager, async_mode="threading")
    sent: list[Any] = []
    server._send_eio_packet = lambda eio_sid, pkt: sent.append(eio_sid)
    sid = manager.pre_connect("e1", "/")
    entered = calls[:2] == [("enter", sid, None, "e1"), ("enter", sid, sid, "e1")]
    pending = manager.pending_connect == {"/": [sid]}
    manager.connect(sid, "/")
    manager.enter_room(sid, "/", "r")
    manager._generate_ack_id(sid, lambda *args: None)
    table = dict(manager.rooms["/"][None]) == {sid: "e1"} and sid in manager.callbacks
    del calls[:]
    server.emit("x", to=sid)
    in_rooms = server.rooms(sid) == [sid, "r"]
    try:
        manager.close_room(sid, "/")
        refused = False
    except ValueError:
        refused = True
    routed = calls[:2] == [("participants", sid), ("rooms", sid)] and sent == ["e1"]
    manager.pre_disconnect(sid, "/")
    del calls[:]
    manager.disconnect(sid, "/")
    return (entered and pending and table and routed and in_rooms and refused
            and calls[0] == ("disconnect", sid) and ("leave", sid, "r") in calls
            and manager.rooms == {} and manager.callbacks == {}
            and manager.pending_disconnect == {} and manager.pending_connect == {})


INTERNALS = [
    Internal("python-socketio", "Server._handle_event(eio_sid, namespace, id, data) called by "
             "its Engine.IO message handler", "guard_incoming_packets: hostile packets refused "
             "with one log line", _socketio_packets),
    Internal("python-socketio", "Manager: connect, enter_room, get_participants, "
             "eio_sid_from_sid, sid_from_eio_sid, get_namespaces",
             "realtime/manager.py: local membership and delivery; end_transport_of; "
             "participants", _manager_table),
    Internal("python-engineio", "Socket(server, sid): its state, send, close(wait, abort, "
             "reason), _upgrade_websocket building _async['websocket'](handler, server); "
             "packet.Packet", "write_packet, end_transports; transport/websocket.py: its socket "
             "class, taking over a long-polling session that upgrades", _engineio_socket),
    Internal("python-engineio", "Server.sockets, generate_id, _trigger_event(run_async=False), "
             "get_queue_empty_exception, reason.*", "open_session, queued_packets, reasons: "
             "transport/websocket.py opens WebSocket sessions itself", _engineio_server),
    Internal("python-engineio", "Server(monitor_clients=False) starts no service task; "
             "handlers['connect']; Socket.last_ping, check_ping_timeout; Socket is the "
             "long-polling class", "watch_session_opens, is_polling, unanswered_ping_at, "
             "close_if_ping_timed_out, wrap_requests: transport/polling_liveness.py keeps "
             "long-polling sessions' liveness", _engineio_polling_liveness),
    Internal("python-socketio", "Server.handle_request calls eio.handle_request",
             "intercept: transport/websocket.py wraps Engine.IO's request handler",
             _socketio_request_path),
    Internal("gunicorn", "environ['gunicorn.socket']; StopIteration from the app ends the "
             "connection", "transport/websocket.py: the connection's socket, served to its end",
             _gunicorn_socket),
    Internal("gevent", "the hub's loop: io(fd, events) watchers with start(callback, *args), "
             "stop() and close(); run_callback(callback, *args)", "transport/websocket.py: "
             "connections read on readiness, written without a task", _gevent_loop),
    Internal("flask-session", "ServerSideSessionInterface._retrieve_session_data, "
             "_delete_session, _upsert_session(session_lifetime, session, store_id); "
             "ServerSideSession.sid", "SessionInterfaceHooks: web/sessions.py keeps sessions in "
             "the store, a log-out is final", _flask_session_hooks),
    Internal("redis", "Connection._sock, Connection(protocol=)",
             "raw_socket: store/resp.py reads replies with hiredis", _redis_connection),
    Internal("redis", "redis._parsers._RESP2Parser", "store/topology.py: eventlet mode",
             _redis_parser),
    Internal("python-socketio", "Client._engineio_client_class; python-engineio "
             "Client._trigger_event(run_async=)", "in_order_socketio_client: "
             "tests/in_order_client.py", _socketio_client),
    Internal("python-socketio", "Server._handle_eio_connect(eio_sid, environ) registered as "
             "the Engine.IO connect handler; Server.environ keeps what it is given",
             "lean_connect_environ: a session keeps only the environ keys its handlers read "
             "(transport/environ.py)", _socketio_connect_environ),
    Internal("python-socketio", "Manager: basic_enter_room(sid, namespace, room, eio_sid) "
             "for the None and sid rooms, basic_leave_room, basic_disconnect (callbacks, "
             "pending_connect, pending_disconnect), get_participants for emit(to=sid), "
             "get_rooms for rooms()", "realtime/manager.py: no room per connection, an index "
             "from each connection to its rooms", _manager_sid_rooms),
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
        except Exception:  # an import or attribute that is gone, a behaviour that broke
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
