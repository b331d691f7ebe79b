"""The realtime rooms service: one Flask-SocketIO node of a cluster that shares Redis."""

from __future__ import annotations

import logging

from flask import Flask
from flask_socketio import SocketIO

from . import api, auth, drain, fast_json, fast_websocket, health, http_errors, web
from .node import Node
from .packet_guard import PollingBodyGuard
from .realtime import register_handlers
from .sessions import StoreSessionInterface
from .settings import DEV_API_KEY, DEV_SECRET_KEY, Settings, load_settings

socketio = SocketIO()


def create_app(settings: Settings | None = None, *, background: bool = True) -> Flask:
    """Build a node: settings checked, Redis store, Socket.IO with the cluster's message queue.

    `background=False` skips the heartbeat and the queue subscription (for tests of one app).
    """
    settings = settings or load_settings()
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
    health.init_app(app)
    web.init_app(app)

    socketio.init_app(
        app,
        async_mode=settings.async_mode,
        client_manager=node.manager,
        cors_allowed_origins=list(settings.allowed_origins),
        max_http_buffer_size=settings.max_frame_bytes,
        ping_interval=settings.ping_interval_s,
        ping_timeout=settings.ping_timeout_s,
        logger=False,
        engineio_logger=False,
        json=fast_json,
    )
    register_handlers(socketio, node)
    fast_websocket.install(socketio.server)
    # Flask's documented way to wrap WSGI middleware around the app, which mypy sees as replacing
    # a method
    guarded = PollingBodyGuard(app.wsgi_app, settings.max_frame_bytes)
    app.wsgi_app = guarded  # type: ignore[method-assign]  # middleware, see above
    drain.init_app(app, node)
    if background:
        server = socketio.server
        server.manager_initialized = True
        server.manager.initialize()
        socketio.start_background_task(node.heartbeat_forever, socketio.sleep)
    log = logging.getLogger("service")
    if settings.secret_key == DEV_SECRET_KEY or settings.api_key == DEV_API_KEY:
        log.warning("node=%s uses the development SECRET_KEY/API_KEY: set your own outside "
                    "a local cluster (ENV=production refuses them)", settings.node_name)
    log.info(
        "node=%s started (async_mode=%s, redis=%s)", settings.node_name, socketio.async_mode,
        settings.redis_url.split("@")[-1],
    )
    return app
