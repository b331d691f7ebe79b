"""A python-socketio client that hands events to its handlers in the order they arrived.

python-engineio's threaded client (4.15) starts a new thread for every incoming message, so two
messages that arrive back to back can reach the handlers in either order. Tests that check the
service's order need the order of the wire; their handlers only record, so here they run in the
reading thread.
"""

from __future__ import annotations

from typing import Any

import engineio
import socketio


class _InOrderEngineIOClient(engineio.Client):
    def _trigger_event(self, event: str, *args: Any, **kwargs: Any) -> Any:
        if event == "message":
            kwargs["run_async"] = False
        return super()._trigger_event(event, *args, **kwargs)


class InOrderClient(socketio.Client):
    def _engineio_client_class(self) -> type[engineio.Client]:
        return _InOrderEngineIOClient
