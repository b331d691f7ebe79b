"""The environ a connection keeps (service/transport/environ.py): only the keys its handlers
read, so that gunicorn's request objects and the headers nobody reads go with the request.

The connect handler (realtime/namespace.py: token and cookie sign-in, Flask-Login) runs on an
environ that records what is read: a key it reads that `kept_environ` drops fails here first."""

from __future__ import annotations

import gc
import traceback
import weakref
from typing import Any

import pytest
from flask_login import UserMixin
from socketio.exceptions import ConnectionRefusedError as Refused
from werkzeug.test import EnvironBuilder

from service import create_app
from service.realtime.manager import NAMESPACE
from service.realtime.namespace import Limits
from service.settings import load_settings
from service.transport.environ import KEPT_KEYS, kept_environ
from tests.unit.test_handlers import Harness, Socket

BROWSER_HEADERS = {
    "Upgrade": "websocket", "Connection": "Upgrade", "Origin": "https://chat.example.com",
    "User-Agent": "Mozilla/5.0 (X11; Linux x86_64) Chrome/131.0.0.0",
    "X-Forwarded-For": "203.0.113.9", "X-Forwarded-Proto": "https", "X-Rooms-Front-Door": "1",
    "Accept-Language": "en-GB,en;q=0.9", "Accept-Encoding": "gzip, deflate, br",
    "Cache-Control": "no-cache", "Pragma": "no-cache", "Sec-WebSocket-Version": "13",
    "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
    "Sec-WebSocket-Extensions": "permessage-deflate; client_max_window_bits"}


class RecordingEnviron(dict):
    """A WSGI environ that records the keys read from it, and who iterated over it."""

    def __init__(self, environ: dict[str, Any]):
        super().__init__(environ)
        self.read: set[str] = set()
        self.iterated: list[str] = []

    def __getitem__(self, key: str) -> Any:
        self.read.add(key)
        return super().__getitem__(key)

    def get(self, key: str, default: Any = None) -> Any:
        self.read.add(key)
        return super().get(key, default)

    def __contains__(self, key: object) -> bool:
        self.read.add(str(key))
        return super().__contains__(key)

    def _iterated(self) -> None:
        self.iterated.append("".join(traceback.format_stack(limit=12)[:-2]))

    def __iter__(self):
        self._iterated()
        return super().__iter__()

    def items(self):
        self._iterated()
        return super().items()

    def keys(self):
        self._iterated()
        return super().keys()

    def values(self):
        self._iterated()
        return super().values()


class User(UserMixin):
    def __init__(self, name: str):
        self.id = name


@pytest.fixture
def harness() -> Harness:
    harness = Harness(Limits(max_text_chars=4000, rate_per_s=1000, burst=1000))
    harness.app.login_manager.user_loader(lambda name: User(name) if name == "carol" else None)
    return harness


def session_cookie(harness: Harness, user: str) -> str:
    """A browser's signed-in session cookie (Flask-Login's `_user_id` in the session)."""
    serializer = harness.app.session_interface.get_signing_serializer(harness.app)
    return f"{harness.app.config['SESSION_COOKIE_NAME']}=" + serializer.dumps(
        {"_user_id": user, "_fresh": True})


def opening_environ(cookie: str | None = None) -> dict[str, Any]:
    headers = dict(BROWSER_HEADERS, **({"Cookie": cookie} if cookie else {}))
    return EnvironBuilder(path="/socket.io/", query_string="EIO=4&transport=websocket",
                          headers=headers, environ_base={"REMOTE_ADDR": "10.0.0.1"}
                          ).get_environ()


def connect(harness: Harness, environ: dict[str, Any], auth: Any) -> str | None:
    """The connect handler on `environ`; the user it signed in, None if it refused."""
    harness._next += 1
    eio_sid = f"eio-{harness._next}"
    sid = harness.manager.connect(eio_sid, NAMESPACE)
    harness.server.eio.sockets[eio_sid] = Socket()
    try:
        harness.namespace.trigger_event("connect", sid, environ, auth)
    except Refused:
        return None
    return harness.connections.get(sid).user


def signing_in(harness: Harness) -> list[tuple[str, dict[str, Any], Any, str | None]]:
    """(what, environ, auth, the user it signs in): token, cookie, and a refusal."""
    return [
        ("token", opening_environ(), {"token": harness.signer.issue("alice")}, "alice"),
        ("cookie", opening_environ(session_cookie(harness, "carol")), None, "carol"),
        ("refused", opening_environ(), None, None),
    ]


def test_the_connect_handler_reads_only_keys_a_connection_keeps(harness):
    for what, environ, auth, user in signing_in(harness):
        recording = RecordingEnviron(environ)
        assert connect(harness, recording, auth) == user, what
        not_kept = recording.read - set(KEPT_KEYS) - {"wsgi.input"}
        assert not not_kept, f"{what}: the connect handler reads {sorted(not_kept)}: keep them"
        # iterating over the environ reads every key it looks for: Werkzeug's cookie parsing
        # does (request.cookies looks for HTTP_COOKIE, which is kept); anyone else, find out
        # which keys it needs and keep them
        for stack in recording.iterated:
            assert "in cookies" in stack, f"{what}: the environ is iterated by\n{stack}"


def test_a_connection_signs_in_the_same_on_the_environ_it_keeps(harness):
    for what, environ, auth, user in signing_in(harness):
        lean = kept_environ(environ)
        assert set(lean) <= {*KEPT_KEYS, "wsgi.input"}
        assert "HTTP_ORIGIN" not in lean and "HTTP_ACCEPT_LANGUAGE" not in lean
        assert connect(harness, lean, auth) == user, what


def gunicorn_request(raw: bytes) -> tuple[Any, dict[str, Any]]:
    """gunicorn's Request for `raw` and the environ its worker builds from it (a socket stands
    in for the connection's)."""
    import socket

    from gunicorn.config import Config
    from gunicorn.http import wsgi
    from gunicorn.http.message import Request
    from gunicorn.http.unreader import IterUnreader

    config = Config()
    request = Request(config, IterUnreader([raw]), ("10.0.0.1", 40001), 1)
    sock = socket.socket()
    _response, environ = wsgi.create(request, sock, ("10.0.0.1", 40001), ("10.0.0.2", 8000),
                                     config)
    sock.close()
    return request, environ


def test_a_long_polling_session_keeps_the_lean_environ_not_gunicorns_request():
    """python-engineio hands the polling handshake's environ to python-socketio, which keeps it
    for the session's life: compat's connect wrapper (wired by the node) leans it, and gunicorn's
    request (held by gunicorn 27's `wsgi.early_hints`) goes with the request."""
    settings = load_settings({"REDIS_URL": "redis://127.0.0.1:1/0", "ASYNC_MODE": "threading",
                              "NODE_NAME": "node-e", "DOTENV_PATH": "/nonexistent",
                              "ALLOWED_ORIGINS": BROWSER_HEADERS["Origin"]})
    app = create_app(settings, background=False)
    server = app.extensions["node"].server
    try:
        request, environ = gunicorn_request(
            b"GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: rooms.example.com\r\n"
            + b"".join(f"{name}: {value}\r\n".encode() for name, value in BROWSER_HEADERS.items()
                       if not name.startswith(("Sec-", "Upgrade", "Connection")))
            + b"\r\n")
        assert callable(environ.get("wsgi.early_hints"))  # what holds gunicorn's request
        statuses: list[str] = []
        body = b"".join(app(environ, lambda status, headers, *_: statuses.append(status)))
        assert statuses == ["200 OK"] and body.startswith(b"0{"), (statuses, body)
        (eio_sid,) = list(server.eio.sockets)
        assert set(server.environ[eio_sid]) <= {*KEPT_KEYS, "wsgi.input"}
        assert server.environ[eio_sid]["HTTP_USER_AGENT"] == BROWSER_HEADERS["User-Agent"]
        gone = weakref.ref(request)
        del request, environ
        gc.collect()
        assert gone() is None, gc.get_referrers(gone())
    finally:
        app.extensions["node"].bus.close()


@pytest.mark.parametrize("lean_first", [True, False])
def test_the_lean_environ_and_the_polling_watch_both_wrap_the_connect_handler(lean_first):
    """Both wrap the Engine.IO connect handler (compat.lean_connect_environ,
    compat.watch_session_opens): whichever comes first, the other keeps it."""
    import socketio

    from service.transport import compat

    server = socketio.Server(async_mode="threading")
    given: list[dict[str, Any]] = []
    server.on("connect", lambda sid, environ, auth=None: given.append(environ))
    opened: list[str] = []
    steps = [lambda: compat.lean_connect_environ(server, kept_environ),
             lambda: compat.watch_session_opens(server.eio, opened.append)]
    for step in steps if lean_first else reversed(steps):
        step()
    environ = EnvironBuilder(path="/socket.io/", headers=BROWSER_HEADERS).get_environ()
    environ["wsgi.early_hints"] = lambda headers: None
    server.eio._trigger_event("connect", "eio-1", environ, run_async=False)
    server._handle_eio_message("eio-1", "0")  # the Socket.IO CONNECT of the default namespace
    assert opened == ["eio-1"]
    assert given and "wsgi.early_hints" not in given[0]
    assert set(given[0]) <= {*KEPT_KEYS, "wsgi.input", "flask.app"}
