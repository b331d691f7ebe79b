"""The realtime rooms service: one Flask-SocketIO node of a cluster that shares Redis.

The application (`create_app`, `socketio`, `emitter`) is in service.app and imported on first
use, so that importing a light part of the package does not import the whole application:
gunicorn's master reads the settings (service.settings) before its gevent worker monkey-patches,
and modules the application imports there (redis, urllib3) would keep the unpatched `ssl`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .app import create_app, emitter, socketio

__all__ = ["create_app", "emitter", "socketio"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from . import app

        return getattr(app, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
