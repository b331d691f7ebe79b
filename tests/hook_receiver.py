"""A real HTTP receiver of the service's hooks, inside the test process: a threaded http.server
(HTTP/1.1, keep-alive) that answers each request as the test says, and records every request,
with whether its signature verifies (service/hooks/signing.py) and which client connection
carried it."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from service.hooks import signing


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        return None  # a client that gave up (a timeout, an answer too large) is no news


@dataclass
class Answer:
    status: int = 200
    body: Any = field(default_factory=lambda: {"allow": True})  # JSON, or bytes as they are
    headers: dict[str, str] = field(default_factory=dict)
    hold: threading.Event | None = None  # nothing is sent until it is set (or the receiver ends)
    hold_body: threading.Event | None = None  # the headers go out, the body waits for it
    close_delimited: bool = False  # no Content-Length: the body ends when the connection does
    trickle_s: float = 0  # the body goes out a byte at a time, this far apart (a slow backend)


@dataclass
class Received:
    path: str
    body: Any  # the JSON the service sent
    raw: bytes
    verified: bool  # its signature verifies with the receiver's secret, within five minutes
    client: tuple[str, int]  # the connection it came on


class HookReceiver:
    def __init__(self, port: int, secret: str,
                 answer: Callable[[str, Any], Answer] = lambda path, body: Answer()):
        self.secret = secret
        self.answer = answer
        self.requests: list[Received] = []
        self.closed = False
        self._lock = threading.Lock()
        self._holds: list[threading.Event] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = None
                verified = signing.verify(receiver.secret,
                                          self.headers.get(signing.TIMESTAMP_HEADER),
                                          self.headers.get(signing.SIGNATURE_HEADER), raw)
                with receiver._lock:
                    receiver.requests.append(Received(self.path, body, raw, verified,
                                                      self.client_address))
                reply = receiver.answer(self.path, body)
                receiver._wait(reply.hold)
                data = reply.body if isinstance(reply.body, bytes) else json.dumps(
                    reply.body).encode()
                self.send_response(reply.status)
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                if reply.close_delimited:
                    self.send_header("Connection", "close")
                    self.close_connection = True
                else:
                    self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.flush()
                receiver._wait(reply.hold_body)
                if not reply.trickle_s:
                    self.wfile.write(data)
                    return
                paced = threading.Event()  # never set: the pause between bytes
                for byte in data:
                    self.wfile.write(bytes([byte]))
                    self.wfile.flush()
                    if paced.wait(reply.trickle_s) or receiver.closed:
                        return

            def log_message(self, *_args: Any) -> None:
                return None

        self.server = _Server(("127.0.0.1", port), Handler)
        self.url = f"http://127.0.0.1:{port}"
        self._thread = threading.Thread(target=self.server.serve_forever, args=(0.05,),
                                        daemon=True)
        self._thread.start()

    def _wait(self, event: threading.Event | None) -> None:
        if event is not None:
            with self._lock:
                self._holds.append(event)
            event.wait(60)

    def calls(self, path: str) -> list[Any]:
        """The bodies of the requests made to `path`, in the order they came."""
        with self._lock:
            return [request.body for request in self.requests if request.path == path]

    def close(self) -> None:
        self.closed = True
        with self._lock:
            for event in self._holds:
                event.set()
        self.server.shutdown()
        self.server.server_close()
