"""What the HTTP side uses of the node it runs in, handed over when the app is built.

The web layer sits above the realtime, bus and store layers and below the node that wires
them: it reaches the node's parts through this context (`current()`), never the node itself.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from flask import current_app

from ..bus.broker import Broker
from ..realtime.metrics import Metrics
from ..settings import Settings
from ..store.health import RedisHealth
from ..store.store import Store
from ..tokens import TokenSigner

KEY = "rooms.web"


@dataclass(frozen=True)
class WebContext:
    name: str  # the node's
    settings: Settings
    broker: Broker
    store: Store  # accounts, sessions, the node registry, the Redis servers' figures
    health: RedisHealth
    metrics: Metrics
    signer: TokenSigner
    ready: Callable[[], tuple[bool, str]]  # whether the node serves, and why not
    refusal: Callable[[], str | None]  # why new sessions are refused now, or None
    disconnect_everywhere: Callable[[str, list[str]], None]  # (user, `node|sid`s)


def current() -> WebContext:
    return current_app.extensions[KEY]
