"""A real webhook receiver for the cluster tests: a threaded http.server that records every batch,
checks its signature, and can be told to answer 500, to hang, or to be down.

It also watches what the service promises about concurrency: a request's outboxes (each event's
room, or a direct message's recipient inbox) are in flight from its arrival to its answer, and a
second request for one of them meanwhile is recorded in `overlaps`.
"""

from __future__ import annotations

import contextlib
import json
import select
import socket
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from service.hooks import signing
from service.primitives.ids import parse_id

OK, FAIL, HANG = "ok", "fail", "hang"


def outbox_of(event: dict[str, Any]) -> str:
    """The room or inbox an event comes from (what one sender holds at a time)."""
    if event["type"] == "direct":
        return "inbox:" + event["message"]["to"]
    return "room:" + event["room"]


def stream_id(event: dict[str, Any]) -> str:
    """The stored id an event's id ends with."""
    return event["id"].rsplit(":", 1)[1]


@dataclass
class Request:
    arrived: float
    events: list[dict[str, Any]]
    signed: bool
    sender: str  # its User-Agent, which names the node
    status: int = 0  # what the receiver answered (0: not yet, or the sender was gone)
    done: bool = False  # answered, or found its sender gone


@dataclass
class Receiver:
    port: int
    secret: str
    mode: str = OK
    delay_s: float = 0.0  # every answer waits this long (so that overlaps would show)
    hang_s: float = 3.0
    requests: list[Request] = field(default_factory=list)
    accepted: list[list[dict[str, Any]]] = field(default_factory=list)  # 2xx batches, in order
    overlaps: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._in_flight: dict[str, int] = {}
        self._server: ThreadingHTTPServer | None = None
        self._connections: set[socket.socket] = set()

    @property
    def up(self) -> bool:
        return self._server is not None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    # ---- up and down -----------------------------------------------------------------------

    def start(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as the service's pool expects

            def setup(self) -> None:
                super().setup()
                with receiver._lock:
                    receiver._connections.add(self.connection)

            def finish(self) -> None:
                with receiver._lock:
                    receiver._connections.discard(self.connection)
                super().finish()

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                request, status = receiver.handle(self.headers, body)
                try:
                    if peer_gone(self.connection):
                        return  # the sender gave up waiting, or died: it never hears the answer
                    self.send_response(status)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    self.wfile.flush()
                    receiver.answered(request, status)
                except OSError:
                    return
                finally:
                    request.done = True

            def log_message(self, *args: object) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
        self._server = server

    def stop(self) -> None:
        """Down: nothing listens on the port (connections are refused), and the kept-alive
        connections are cut."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        with self._lock:
            connections, self._connections = list(self._connections), set()
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)

    # ---- one request ---------------------------------------------------------------------

    def handle(self, headers: Any, body: bytes) -> tuple[Request, int]:
        """Record a request and decide its answer (after `delay_s`, or `hang_s` when hanging)."""
        signed = signing.verify(self.secret, headers.get(signing.TIMESTAMP_HEADER),
                                headers.get(signing.SIGNATURE_HEADER), body)
        events = json.loads(body)["events"]
        request = Request(time.monotonic(), events, signed, headers.get("User-Agent", ""))
        outboxes = {outbox_of(event) for event in events}
        with self._lock:
            self.requests.append(request)
            for outbox in outboxes:
                if self._in_flight.get(outbox):
                    self.overlaps.append(outbox)
                self._in_flight[outbox] = self._in_flight.get(outbox, 0) + 1
        try:
            mode = self.mode
            time.sleep(self.hang_s if mode == HANG else self.delay_s)
            return request, 500 if mode == FAIL else 200
        finally:
            with self._lock:
                for outbox in outboxes:
                    self._in_flight[outbox] -= 1

    def answered(self, request: Request, status: int) -> None:
        """The sender got `status` (as far as this side can tell): a 2xx batch is delivered."""
        request.status = status
        if 200 <= status < 300:
            with self._lock:
                self.accepted.append(request.events)

    def in_flight_from(self, node: str) -> Request | None:
        """A request of `node`'s that has not been answered yet."""
        with self._lock:
            return next((r for r in self.requests if not r.done and f"({node})" in r.sender),
                        None)

    # ---- what arrived ----------------------------------------------------------------------

    def delivered(self) -> list[dict[str, Any]]:
        """Every event of a batch answered 2xx, once (the first time), in the order accepted:
        what a receiver that de-duplicates by id keeps."""
        seen: set[str] = set()
        events = []
        with self._lock:
            batches = list(self.accepted)
        for batch in batches:
            for event in batch:
                if event["id"] not in seen:
                    seen.add(event["id"])
                    events.append(event)
        return events

    def delivered_ids(self) -> set[str]:
        return {event["id"] for event in self.delivered()}

    def has(self, ids: Iterable[str]) -> bool:
        return set(ids) <= self.delivered_ids()

    def attempts_with(self, event_id: str) -> list[Request]:
        with self._lock:
            return [r for r in self.requests if any(e["id"] == event_id for e in r.events)]

    def unsigned(self) -> int:
        with self._lock:
            return sum(1 for request in self.requests if not request.signed)


def peer_gone(connection: socket.socket) -> bool:
    """Whether the other end closed the connection (a sender that timed out, or died)."""
    readable, _, _ = select.select([connection], [], [], 0)
    if not readable:
        return False
    try:
        return connection.recv(1, socket.MSG_PEEK) == b""
    except OSError:
        return True


def in_stored_order(events: list[dict[str, Any]]) -> bool:
    """Whether each outbox's messages and directs come in increasing stored id."""
    last: dict[str, tuple[int, int]] = {}
    for event in events:
        if event["type"] not in ("message", "direct"):
            continue
        outbox, position = outbox_of(event), parse_id(stream_id(event))
        if outbox in last and position <= last[outbox]:
            return False
        last[outbox] = position
    return True


def free_port_in(low: int, high: int) -> int:
    for port in range(low, high + 1):
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {low}-{high}")
