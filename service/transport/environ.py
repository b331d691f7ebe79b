"""The WSGI environ a connection keeps after its opening request: only what its handlers read.

python-socketio keeps the environ of a session's opening request for the session's life (it
hands it to the connect handler of each namespace and to `get_environ`); the project's transport
(websocket.py) and compat's wrapper of python-socketio's Engine.IO connect handler (long-polling
sessions: `compat.lean_connect_environ`) give it this one instead of the request's.

What the handlers read (measured with an environ that records reads, tests/unit/
test_lean_environ.py: the connect handler signing in by token, by cookie and refusing; nothing
reads the environ after the connect): Flask's request context and URL adapter (the method, the
path, the query, the server, the scheme, the client's address, the Host), Werkzeug's headers
(Connection, Upgrade), the cookie (Flask-Session's session, a page token's binding),
Flask-Login's session protection (User-Agent, X-Forwarded-For) and its look for an
Authorization header when the session has no user. Everything else goes, above all gunicorn's
request objects: gunicorn 27's `wsgi.early_hints` is a closure over its Request, its Response
and the connection's original socket object (about 3 KB a connection, 4.5 KB for a browser's),
and other headers (a browser's Accept-*, Origin, Sec-WebSocket-*: about 1 KB more).
"""

from __future__ import annotations

import io
from typing import Any

KEPT_KEYS = (
    # Flask's request context and its URL adapter
    "REQUEST_METHOD", "SCRIPT_NAME", "PATH_INFO", "QUERY_STRING", "SERVER_NAME", "SERVER_PORT",
    "wsgi.url_scheme", "REMOTE_ADDR", "HTTP_HOST",
    # Werkzeug's headers
    "HTTP_CONNECTION", "HTTP_UPGRADE",
    # the browser session's cookie (Flask-Session, a page token's binding)
    "HTTP_COOKIE",
    # Flask-Login: session protection, and the header it looks at when the session has no user
    "HTTP_USER_AGENT", "HTTP_X_FORWARDED_FOR", "HTTP_AUTHORIZATION",
    # Flask-SocketIO's mark of the app it serves
    "flask.app",
)
_NO_BODY = io.BytesIO(b"")  # one for every connection: the request's body is gone


def kept_environ(environ: dict[str, Any]) -> dict[str, Any]:
    """The opening request's environ as a connection keeps it: the keys of KEPT_KEYS that it
    has, and an empty body (`wsgi.input`, which a request context expects)."""
    kept = {key: environ[key] for key in KEPT_KEYS if key in environ}
    kept["wsgi.input"] = _NO_BODY
    return kept
