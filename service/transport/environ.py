"""The WSGI environ a connection keeps after its opening request (python-socketio hands it to
the connect handler and keeps it for `get_environ`): its strings and the app, without gunicorn's
request objects."""

from __future__ import annotations

import io
from typing import Any

# what gunicorn's request objects are in the WSGI environ: a connection outlives its request
_REQUEST_OBJECTS = ("wsgi.input", "wsgi.errors", "wsgi.file_wrapper", "gunicorn.socket",
                    "eventlet.input")
_NO_BODY = io.BytesIO(b"")


def kept_environ(environ: dict[str, Any]) -> dict[str, Any]:
    """The opening request's environ as a connection keeps it (python-socketio hands it to every
    event's handler): its strings and the app, without gunicorn's request objects."""
    kept = {key: value for key, value in environ.items() if key not in _REQUEST_OBJECTS}
    kept["wsgi.input"] = _NO_BODY
    return kept
