"""A python-socketio client that hands events to its handlers in the order they arrived.

python-engineio's threaded client (4.15) starts a new thread for every incoming message, so two
messages that arrive back to back can reach the handlers in either order. Tests that check the
service's order need the order of the wire; their handlers only record, so here they run in the
reading thread.
"""

from __future__ import annotations

import socketio

from service.transport import compat

# python-socketio's client, with python-engineio's client handing every message over in order
InOrderClient = compat.in_order_socketio_client(socketio.Client)
