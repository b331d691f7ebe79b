"""A node's transport in the shape the official protocol test suites expect (conformance mode).

The Engine.IO v4 and Socket.IO v5 test suites (tests/conformance/, run by
tests/integration/test_conformance.py) talk to a server with a 300 ms ping interval, a 200 ms
ping timeout and a 1,000,000-byte payload limit:

- `engineio_app` (path /engine.io/): plain Engine.IO that echoes every message;
- `socketio_app` (path /socket.io/): Socket.IO with the main and a `/custom` namespace; on
  connect it emits `auth` with the handshake's auth payload, `message` is answered with
  `message-back` and the same arguments, `message-with-ack` is acknowledged with its arguments.

Both serve WebSockets with the project's transport (transport/websocket.py), as a node does;
long-polling is python-engineio's, as on a node. Run with gunicorn's gevent worker, e.g.
`gunicorn -k gevent -b 127.0.0.1:3000 service.node.conformance:socketio_app`.
"""

from __future__ import annotations

from typing import Any

import engineio
import socketio

from ..transport import compat, polling_liveness, websocket

SUITE_OPTIONS = {"async_mode": "gevent", "ping_interval": 0.3, "ping_timeout": 0.2,
                 "max_http_buffer_size": 1_000_000, "cors_allowed_origins": "*",
                 **polling_liveness.server_options("gevent")}
SEND_BUFFER_BYTES, CONNECT_TIMEOUT_S = 4 << 20, 10.0


def any_engineio_packet(packet: str) -> bool:
    return bool(packet) and packet[0] in "0123456"


def build_engineio() -> engineio.WSGIApp:
    server = engineio.Server(**SUITE_OPTIONS)

    @server.on("message")
    def echo(sid: str, data: Any) -> None:
        server.send(sid, data)

    websocket.install(server, send_buffer_bytes=SEND_BUFFER_BYTES,
                      connect_timeout_s=CONNECT_TIMEOUT_S, max_sessions=1000,
                      allowed_origins=["*"],
                      spawn=server.start_background_task, is_joined=lambda sid: True,
                      accepts=any_engineio_packet)
    polling_liveness.install(server, spawn=server.start_background_task)
    return engineio.WSGIApp(server, engineio_path="engine.io")


def build_socketio() -> socketio.WSGIApp:
    server = socketio.Server(**SUITE_OPTIONS)

    def on_connect(sid: str, environ: dict[str, Any], auth: Any, namespace: str) -> None:
        # python-socketio sends the CONNECT answer after this handler returns; the suite expects
        # `auth` after it, as from a Node server's connection handler
        server.start_background_task(server.emit, "auth", auth if auth is not None else {},
                                     to=sid, namespace=namespace)

    def on_message(sid: str, *args: Any, namespace: str) -> None:
        server.emit("message-back", args, to=sid, namespace=namespace)

    def on_message_with_ack(sid: str, *args: Any) -> Any:
        return args

    for namespace in ("/", "/custom"):
        server.on("connect", lambda sid, environ, auth=None, ns=namespace:
                  on_connect(sid, environ, auth, ns), namespace=namespace)
        server.on("message", lambda sid, *args, ns=namespace: on_message(sid, *args,
                                                                         namespace=ns),
                  namespace=namespace)
        server.on("message-with-ack", on_message_with_ack, namespace=namespace)
    websocket.install(server.eio, send_buffer_bytes=SEND_BUFFER_BYTES,
                      connect_timeout_s=CONNECT_TIMEOUT_S, max_sessions=1000,
                      allowed_origins=["*"],
                      spawn=server.start_background_task,
                      is_joined=compat.participants(server))
    polling_liveness.install(server.eio, spawn=server.start_background_task)
    return socketio.WSGIApp(server)


engineio_app = build_engineio()
socketio_app = build_socketio()
