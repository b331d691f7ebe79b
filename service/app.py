"""A node's application: settings checked, library internals checked, Redis store and bus,
Socket.IO, the HTTP endpoints (`create_app`); `emitter()` for application code on a node."""

from __future__ import annotations

import logging

from flask import Flask, current_app
from flask_socketio import SocketIO

from .bus.emitter import Emitter
from .node.gate import SessionGate
from .node.node import Node
from .primitives import codec
from .settings import DEV_API_KEY, DEV_SECRET_KEY, Settings, load_settings
from .transport import compat, polling_liveness, websocket
from .transport.packet_guard import PollingBodyGuard
from .web import admin, api, app_api, auth, health, http_errors, metrics, pages
from .web.sessions import StoreSessionInterface

socketio = SocketIO()


def emitter() -> Emitter:
    """In application code running on a node (inside its app or request context): the node's
    emitter, already connected (bus/emitter.py: events to a room, a user or everyone)."""
    return current_app.extensions["node"].emitter


def create_app(settings: Settings | None = None, *, background: bool = True) -> Flask:
    """Build a node: settings checked, library internals checked, Redis store and bus, Socket.IO.

    Raises SettingsError (a setting is wrong, naming it) or CompatError (a library internal the
    service relies on is gone). `background=False` skips the heartbeat and the bus's
    subscriptions (for tests of one app).
    """
    settings = settings or load_settings()
    compat.verify()
    logging.basicConfig(
        level=logging.INFO, format=f"%(asctime)s {settings.node_name} %(levelname)s %(message)s"
    )
    app = Flask(__name__)
    app.config.update(
        SECRET_KEY=settings.secret_key,
        NODE_NAME=settings.node_name,
        MAX_CONTENT_LENGTH=settings.max_frame_bytes,
        SESSION_COOKIE_NAME="rooms_session",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.session_cookie_secure,
        JSON_SORT_KEYS=False,
    )
    node = Node(settings)
    node.init_app(app)
    app.session_interface = StoreSessionInterface(app, node.store)
    http_errors.init_app(app)
    auth.init_app(app)
    api.init_app(app)
    app_api.init_app(app)
    health.init_app(app)
    pages.init_app(app)
    metrics.init_app(app)
    admin.init_app(app)

    socketio.init_app(
        app,
        async_mode=settings.async_mode,
        client_manager=node.manager,  # local rooms only: the bus links the nodes
        cors_allowed_origins=list(settings.allowed_origins),
        max_http_buffer_size=settings.max_frame_bytes,
        ping_interval=settings.ping_interval_s,
        ping_timeout=settings.ping_timeout_s,
        logger=False,
        engineio_logger=False,
        json=codec,
        # each event is handled in its connection's own task, in the order it came, instead of
        # a new task per event (no server-to-client `call` is used)
        async_handlers=False,
        # python-engineio's service task visits every session: WebSockets have the transport's
        # heartbeat, long-polling sessions polling_liveness (gevent mode; others keep the task)
        **polling_liveness.server_options(settings.async_mode),
    )
    websocket.install(socketio.server.eio, send_buffer_bytes=settings.send_buffer_bytes,
                      connect_timeout_s=settings.connect_timeout_s,
                      max_sessions=settings.worker_connections,
                      allowed_origins=list(settings.allowed_origins),
                      spawn=socketio.server.start_background_task,
                      is_joined=compat.participants(socketio.server))
    polling_liveness.install(socketio.server.eio, spawn=socketio.server.start_background_task)
    # Flask's documented way to wrap WSGI middleware around the app, which mypy sees as replacing
    # a method
    guarded = PollingBodyGuard(app.wsgi_app, settings.max_frame_bytes)
    app.wsgi_app = guarded  # type: ignore[method-assign]  # middleware, see above
    # outermost: a refused session is a plain 503 before anything else reads the request
    gate = SessionGate(app.wsgi_app, node.refusal, lambda: node.draining)
    app.wsgi_app = gate  # type: ignore[method-assign]  # middleware, as above
    node.serve(app, socketio.server, background=background)
    log = logging.getLogger("service")
    if settings.secret_key == DEV_SECRET_KEY or settings.api_key == DEV_API_KEY:
        log.warning("node=%s uses the development SECRET_KEY/API_KEY: set your own outside "
                    "a local cluster (ENV=production refuses them)", settings.node_name)
    log.info(
        "node=%s started (async_mode=%s, redis=%s)", settings.node_name, socketio.async_mode,
        settings.redis_target.describe(),
    )
    return app
