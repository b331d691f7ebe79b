"""One hook of the app's backend, asked over HTTP: a signed JSON `POST`, answered in time.

Guarantees
- The body is compact JSON, signed (signing.py): `X-Rooms-Timestamp` and `X-Rooms-Signature`.
- Connections are kept alive: the node has one pool (`pool()`, a urllib3 PoolManager that both
  hooks share, a set of idle connections per backend), and a call takes an idle connection when
  there is one and gives it back once the answer was read whole.
- A call takes at most `timeout_s` from sending to the last byte of the answer: urllib3's total
  timeout bounds connecting and the answer's headers, and each read of the body waits at most
  what is left of it.
- Anything but a `200` whose body is a JSON object with a boolean `allow`, at most `max_bytes`
  long, is a failure (`HookFailed`, outcome `error` or `timeout`): redirects are not followed,
  a larger body is not read past the bound, a compressed one is refused. Its reason names what
  went wrong, never the secret or the URL.
- Under gevent (a node's mode) the call yields while it waits: a slow hook delays only the event
  that asked it, never other connections' events.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import urllib3

from ..primitives import codec
from . import signing

MAX_ANSWER_BYTES = 64 * 1024
POOL_CONNECTIONS = 64  # idle connections kept per backend; more are opened when busier
READ_CHUNK = 8192


class HookFailed(Exception):
    """The hook gave no usable answer in time."""

    def __init__(self, outcome: str, reason: str):
        super().__init__(reason)
        self.outcome = outcome  # "error" or "timeout"
        self.reason = reason


def pool() -> urllib3.PoolManager:
    """The node's pool of connections to its hooks' backends."""
    return urllib3.PoolManager(num_pools=4, maxsize=POOL_CONNECTIONS, block=False,
                               retries=False)


class HookClient:
    def __init__(self, name: str, url: str, secret: str, timeout_s: float,
                 http: urllib3.PoolManager, max_bytes: int = MAX_ANSWER_BYTES,
                 clock: Callable[[], float] = time.monotonic):
        self.name, self.url, self.secret = name, url, secret
        self.timeout_s, self.http, self.max_bytes, self.clock = timeout_s, http, max_bytes, clock

    def ask(self, body: dict[str, Any]) -> dict[str, Any]:
        """POST `body` and return the hook's answer: a JSON object whose `allow` is a boolean.
        Raises HookFailed otherwise."""
        payload = codec.dumps(body).encode()
        headers = {**signing.headers(self.secret, payload), "Accept-Encoding": "identity",
                   "User-Agent": "rooms-hooks/1"}
        started = self.clock()
        try:
            response = self.http.request(
                "POST", self.url, body=payload, headers=headers, redirect=False, retries=False,
                preload_content=False, decode_content=False,
                timeout=urllib3.Timeout(total=self.timeout_s))
        except urllib3.exceptions.NewConnectionError as error:  # a ConnectTimeoutError too
            raise HookFailed("error", f"could not be reached ({error.__class__.__name__})"
                             ) from None
        except (urllib3.exceptions.TimeoutError, TimeoutError):
            raise self._timed_out() from None
        except (urllib3.exceptions.HTTPError, OSError) as error:
            raise HookFailed("error", f"could not be reached ({error.__class__.__name__})"
                             ) from None
        complete = False
        try:
            data = self._answer(response, started)
            complete = True
        finally:
            if not complete:
                response.close()  # not read to its end: the connection cannot be reused
            response.release_conn()
        return self._parse(data)

    def _answer(self, response: Any, started: float) -> bytes:
        status = response.status
        if 300 <= status < 400:
            raise HookFailed("error", f"answered a redirect ({status}), which is not followed")
        if status != 200:
            raise HookFailed("error", f"answered {status}")
        if response.headers.get("Content-Encoding", "identity").lower() != "identity":
            raise HookFailed("error", "answered a compressed body")
        length = response.headers.get("Content-Length")
        if length is not None and length.isdigit() and int(length) > self.max_bytes:
            raise self._too_large()
        chunks: list[bytes] = []
        size = 0
        while True:
            left = self.timeout_s - (self.clock() - started)
            if left <= 0:
                raise self._timed_out()
            connection = response.connection
            if connection is not None and connection.sock is not None:
                connection.sock.settimeout(left)
            try:
                chunk = response.read1(READ_CHUNK, decode_content=False)
            except (urllib3.exceptions.TimeoutError, TimeoutError):
                raise self._timed_out() from None
            except (urllib3.exceptions.HTTPError, OSError) as error:
                raise HookFailed("error", f"its answer broke off ({error.__class__.__name__})"
                                 ) from None
            if not chunk:
                return b"".join(chunks)
            size += len(chunk)
            if size > self.max_bytes:
                raise self._too_large()
            chunks.append(chunk)

    def _parse(self, data: bytes) -> dict[str, Any]:
        try:
            answer = codec.loads(data)
        except ValueError:
            raise HookFailed("error", "answered something that is not JSON") from None
        if not isinstance(answer, dict):
            raise HookFailed("error", "answered JSON that is not an object")
        if not isinstance(answer.get("allow"), bool):
            raise HookFailed("error", "answered without a boolean `allow`")
        return answer

    def _timed_out(self) -> HookFailed:
        return HookFailed("timeout", f"did not answer within {self.timeout_s:g} s")

    def _too_large(self) -> HookFailed:
        return HookFailed("error", f"answered more than {self.max_bytes} bytes")
