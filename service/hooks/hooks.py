"""The app's join and send hooks as the handlers ask them (PROTOCOL.md, "Hooks: your backend
decides").

Guarantees
- Fail closed: a hook that gives no usable answer in time (client.py) fails the event with
  `unavailable`; the caller stores and joins nothing. One log line per failure names the hook
  and what went wrong, never the secret or the URL.
- `allow: false` is `forbidden`, with the hook's `reason` as the message (or a sentence of ours).
- The send hook's `text`, when given, replaces the message's text; it must be a message text (a
  string, not empty, at most `max_text_chars`), else the answer counts as a failure.
- Every call is counted by hook and outcome, with its duration (metrics.py).
"""

from __future__ import annotations

import logging
import time
from typing import Any

import urllib3

from ..errors import ServiceError
from ..settings import Settings
from .client import HookClient, HookFailed, pool
from .metrics import HookMetrics

log = logging.getLogger("service")
MAX_REASON_CHARS = 500
UNAVAILABLE = "the app's backend could not be asked ({hook} hook); nothing was {done}, try again"


class Hooks:
    def __init__(self, *, join: HookClient | None, send: HookClient | None, metrics: HookMetrics,
                 max_text_chars: int, node: str):
        self.join_hook, self.send_hook = join, send
        self.metrics, self.max_text_chars, self.node = metrics, max_text_chars, node

    @classmethod
    def from_settings(cls, settings: Settings, metrics: HookMetrics,
                      http: urllib3.PoolManager | None = None) -> Hooks:
        """The hooks the settings name (none: neither is asked), sharing one connection pool."""
        http = http or pool()
        secret = settings.hook_secret or ""

        def client(name: str, url: str | None) -> HookClient | None:
            return None if url is None else HookClient(name, url, secret,
                                                       settings.hook_timeout_s, http)

        return cls(join=client("join", settings.join_hook_url),
                   send=client("send", settings.send_hook_url), metrics=metrics,
                   max_text_chars=settings.max_text_chars, node=settings.node_name)

    @property
    def asks_joins(self) -> bool:
        return self.join_hook is not None

    @property
    def asks_sends(self) -> bool:
        return self.send_hook is not None

    def join(self, user: str, room: str) -> None:
        """Ask the join hook whether `user` may join private room `room`; returns if allowed.
        ServiceError('forbidden') when refused, ('unavailable') when it could not be asked."""
        assert self.join_hook is not None
        self._ask(self.join_hook, {"event": "join", "user": user, "room": room},
                  f"the app does not let you join room {room}", "joined")

    def send(self, user: str, room: str, text: str, client_id: str | None) -> str:
        """Ask the send hook about a `send`: the text to store (the hook's replacement, or
        `text`). ServiceError('forbidden') when refused, ('unavailable') when it could not be
        asked."""
        return self._ask_send({"event": "send", "user": user, "room": room, "text": text},
                              client_id, text)

    def direct(self, user: str, to: str, text: str, client_id: str | None) -> str:
        """As `send`, for a `direct` from `user` to `to`."""
        return self._ask_send({"event": "direct", "user": user, "to": to, "text": text},
                              client_id, text)

    def _ask_send(self, body: dict[str, Any], client_id: str | None, text: str) -> str:
        assert self.send_hook is not None
        if client_id is not None:
            body["client_id"] = client_id
        answer = self._ask(self.send_hook, body, "the app refused this message", "stored")
        return answer.get("text", text)

    def _ask(self, client: HookClient, body: dict[str, Any], refused: str,
             done: str) -> dict[str, Any]:
        started = time.monotonic()
        try:
            answer = client.ask(body)
            if answer["allow"] and "text" in answer:
                self._check_text(answer["text"])
        except HookFailed as failure:
            self.metrics.observe(client.name, failure.outcome, time.monotonic() - started)
            log.warning("node=%s %s hook failed: %s", self.node, client.name, failure.reason)
            raise ServiceError("unavailable", UNAVAILABLE.format(hook=client.name, done=done)
                               ) from None
        allowed = answer["allow"]
        self.metrics.observe(client.name, "allow" if allowed else "deny",
                             time.monotonic() - started)
        if not allowed:
            reason = answer.get("reason")
            if isinstance(reason, str) and reason.strip():
                refused = reason.strip()[:MAX_REASON_CHARS]
            raise ServiceError("forbidden", refused)
        return answer

    def _check_text(self, text: Any) -> None:
        if not isinstance(text, str) or not text or len(text) > self.max_text_chars:
            raise HookFailed("error", f"answered a `text` that is not a message text (a "
                             f"string of 1-{self.max_text_chars} characters)")
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise HookFailed("error", "answered a `text` that is not valid Unicode") from None
