"""Engine.IO over WebSocket, served by the project: no task while a connection is idle (gevent).

python-engineio serves a WebSocket with three tasks per connection (simple-websocket's reader, a
writer draining a queue, and a ping timer), each with a saved stack, and writes every packet with
its own system call. Here an idle connection is an object and a watcher on the event loop:

- When bytes arrive the loop calls the connection back (in its own task, without switching):
  the project's RFC 6455 reader (frames.py) parses at most FRAMES_PER_CALL frames per call, so a
  flood of tiny frames from one connection takes turns with the others. Control frames and
  Engine.IO's PONG and NOOP are answered there; every other packet goes to the connection's
  inbox, and a task is started only while the inbox has events: it hands them to
  python-engineio's socket, which python-socketio serves as before, one at a time in the order
  they came. Past INBOX_PAUSE queued events reading pauses until the task catches up.
- Writes never block: a packet's frame (built once per broadcast) is appended to the
  connection's buffer, and everything buffered in one turn of the event loop goes out in one
  `send` at the end of that turn, in order. What the kernel does not take waits for the socket to
  be writable; a connection whose buffer passes `send_buffer_bytes` (a client that stopped
  reading) is cut off, so one slow client costs a bounded amount of memory. One frame larger
  than the limit is sent when nothing else waits.
- One timer for the whole node (heartbeat.py) sends the pings, cuts off a connection that leaves
  one unanswered past the ping timeout, one that has not joined Socket.IO within the connect
  timeout (a half-open or idle handshake, or half a frame and then silence), and one whose close
  handshake does not finish.
- A connection starts either as a WebSocket (`transport=websocket`, taken before python-engineio:
  `WebSocketTransport`) or as long-polling that upgrades (python-engineio hands the upgrade
  request to `UpgradeHandler`, whose probe runs in the request's task within the connect
  timeout). Long-polling itself stays python-engineio's.
- A protocol violation ends that connection with the close code RFC 6455 prescribes (1002, 1007,
  1009; 1008 for a text frame that is not an Engine.IO packet, or a packet that is the server's
  to send), logged in one line; nothing of it reaches another connection.

python-engineio's and gevent's internals this relies on are reached through compat.py, which
checks them.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import logging
import os
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

from engineio import packet as eio_packet

from . import compat, frames
from .environ import kept_environ
from .frames import Control, FrameReader, ProtocolError, server_frame
from .heartbeat import Heartbeat
from .memory import BurstTrimmer
from .packet_guard import acceptable

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
READ_BYTES = 65536
# Every connection of a node reads into this one buffer and keeps a copy of what arrived: the
# loop's callbacks never interleave, and a read into a fresh
# 64 KiB bytes, shrunk to what arrived, leaves the process's heap fragmented.
_READ_BUFFER = bytearray(READ_BYTES)
_READ_VIEW = memoryview(_READ_BUFFER)
_READ_BUFFERS = [_READ_BUFFER]
CLOSE_HANDSHAKE_S = 5.0
log = logging.getLogger("service.transport")


def packet_frame(pkt: Any) -> bytes:
    """The WebSocket frame of an Engine.IO packet, built once and kept on the packet (the
    recipients of a broadcast share one packet object)."""
    data = pkt.__dict__.get("_frame")
    if data is None:
        encoded = pkt.encode()
        data = (server_frame(frames.BINARY, encoded) if isinstance(encoded, bytes)
                else server_frame(frames.TEXT, encoded.encode()))
        pkt._frame = data
    return data


def message_packet(payload: bytes) -> Any:
    """An Engine.IO MESSAGE packet of a Socket.IO packet (`payload`, e.g. b'2["message",{...}]')
    with its WebSocket frame built now, straight from the bytes: a bus frame's body becomes the
    frame every recipient on this node gets, without encoding it again."""
    pkt = eio_packet.Packet(eio_packet.MESSAGE, payload.decode())
    pkt._frame = server_frame(frames.TEXT, b"4" + payload)
    return pkt


PING_FRAME = server_frame(frames.TEXT, b"2")
PROBE_ANSWER = server_frame(frames.TEXT, b"3probe")


@dataclass(frozen=True)
class Limits:
    ping_interval_s: float
    ping_timeout_s: float
    max_message: int
    send_buffer_bytes: int
    connect_timeout_s: float
    max_sessions: int
    accepts: Callable[[str], bool] = acceptable  # which text packets are served


def take_descriptor(sock: Any) -> int:
    """The connection's descriptor, taken from gunicorn's socket object: gunicorn's task for
    the request ends (and frees the request and its socket object) while the connection lives
    on as a descriptor and a watcher on the loop."""
    fd = sock.detach()
    os.set_blocking(fd, False)
    return fd


def handshake_error(environ: dict[str, Any]) -> tuple[str, str] | None:
    """Why this request is not a WebSocket opening handshake (RFC 6455 4.2.1), or None."""
    if environ.get("REQUEST_METHOD") != "GET":
        return "400 Bad Request", "a WebSocket handshake is a GET"
    if environ.get("HTTP_UPGRADE", "").lower() != "websocket":
        return "400 Bad Request", "Upgrade: websocket is missing"
    if "upgrade" not in [t.strip() for t in environ.get("HTTP_CONNECTION", "").lower().split(",")]:
        return "400 Bad Request", "Connection: Upgrade is missing"
    if environ.get("HTTP_SEC_WEBSOCKET_VERSION") != "13":
        return "426 Upgrade Required", "only WebSocket version 13 is spoken here"
    try:
        key = base64.b64decode(environ.get("HTTP_SEC_WEBSOCKET_KEY", ""), validate=True)
    except ValueError:
        key = b""
    if len(key) != 16:
        return "400 Bad Request", "Sec-WebSocket-Key must be 16 bytes in base64"
    return None


def handshake_response(environ: dict[str, Any]) -> bytes:
    accept = base64.b64encode(hashlib.sha1(  # noqa: S324 - RFC 6455 prescribes SHA-1 here
        environ["HTTP_SEC_WEBSOCKET_KEY"].encode() + GUID).digest()).decode()
    return ("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Accept: {accept}\r\n\r\n").encode()


def http_error(start_response: Callable[..., Any], status: str, message: str,
               extra: list[tuple[str, str]] | None = None) -> list[bytes]:
    body = json.dumps({"error": {"code": "bad_request", "message": message}}).encode()
    start_response(status, [("Content-Type", "application/json"),
                            ("Content-Length", str(len(body))), *(extra or [])])
    return [body]


class _NoQueue:
    """The packet queue of a session that started as a WebSocket: nothing polls it."""

    def put(self, item: Any) -> None:
        return None

    def join(self) -> None:
        return None


class WebSocketEngineIOSocket(compat.EngineIOSocket):
    """python-engineio's socket of a connection whose transport is a WebSocketSession: packets
    go to the session, the node's heartbeat pings, and closing ends the session."""

    websocket: WebSocketSession  # not `session`: python-engineio keeps a dict there
    queue: Any = _NoQueue()  # a long-polling session that upgraded keeps its own

    def __init__(self, server: Any, sid: str):
        compat.init_socket_state(self, server, sid)

    def send(self, pkt: Any) -> None:
        self.websocket.send_packet(pkt)

    def check_ping_timeout(self) -> bool:
        return not self.closed  # liveness is the heartbeat's

    def schedule_ping(self) -> None:
        return None  # the heartbeat pings

    def close(self, wait: bool = True, abort: bool = False, reason: Any = None) -> None:
        # never wait on python-engineio's queue: nothing drains it once the session has the
        # connection
        first = not self.closed and not self.closing
        if first and not abort:
            self.websocket.send_packet(eio_packet.Packet(eio_packet.CLOSE))
        compat.close_socket(self, reason)
        if first:
            self.websocket.end(graceful=not abort)


class _End:
    """The last item of a connection's inbox: the connection is over."""


END = _End()
INBOX_PAUSE = 32  # queued events at which a connection's reading pauses
INBOX_RESUME = 16  # and below which it resumes
FRAMES_PER_CALL = 64  # frames parsed per read callback: a flood of tiny frames takes turns
EVENTS_PER_TURN = 16  # events a connection's task handles before it lets others run


class WebSocketSession:
    """One connection: its socket's descriptor, its reader, its send buffer, its timer state and
    the events waiting for its task.

    Nothing waits on the connection while it is idle: the loop calls `on_readable` when bytes
    arrive, in the event loop's own task (so it never blocks and never raises). Frames are
    parsed there; control frames and Engine.IO's PONG and NOOP are answered there, and the
    other packets go to the connection's inbox, which one task (`drain`), started when the
    first item arrives and ended when the inbox is empty, hands to python-engineio in order.
    So a connection has at most one task, and only while it has events to handle. The end of
    the connection is an item too: it runs after the events before it, in that task."""

    __slots__ = ("allowance", "closing_since", "eio", "eio_socket", "end_reason", "ended",
                 "fd", "finished", "flush_scheduled", "heartbeat", "inbox", "is_joined",
                 "limits", "next_ping", "opened_at", "out", "out_bytes", "owner", "parse_scheduled",
                 "paused", "ping_sent_at", "probing", "reader", "running", "watcher",
                 "writable")

    def __init__(self, owner: WebSocketTransport, eio_socket: Any, fd: int):
        self.owner, self.eio_socket, self.fd = owner, eio_socket, fd
        self.eio, self.limits, self.heartbeat = owner.eio, owner.limits, owner.heartbeat
        self.is_joined = owner.is_joined
        limits, eio = self.limits, self.eio
        self.reader = FrameReader(limits.max_message)
        self.out: list[bytes] = []
        self.out_bytes = 0
        self.allowance = 0  # bytes over the limit a frame larger than it may take
        self.flush_scheduled = self.parse_scheduled = False
        self.watcher: Any = None  # the loop's read watcher, while the connection is read
        self.writable: Any = None  # the loop's write watcher, while the kernel's buffer is full
        self.inbox: deque[Any] | None = None  # events for the connection's task
        self.running = self.paused = False
        self.ended = self.finished = False
        self.probing = False  # an upgrade's probe, served by its request's task
        self.end_reason: Any = compat.reasons(eio).TRANSPORT_CLOSE
        self.closing_since: float | None = None
        now = time.monotonic()
        self.opened_at = now
        self.next_ping = now + limits.ping_interval_s
        self.ping_sent_at: float | None = None

    # ---- writing: never blocks, one send per connection per turn of the loop -----------------

    def send_packet(self, pkt: Any) -> None:
        if not self.ended:
            self.write(packet_frame(pkt))

    def write(self, data: bytes) -> None:
        size = len(data)
        if self.out_bytes + size > self.limits.send_buffer_bytes + self.allowance:
            if self.out_bytes:
                log.info("sid=%s cut off: it stopped reading (%d bytes waiting)",
                         self.eio_socket.sid, self.out_bytes)
                self.out, self.out_bytes = [], 0
                self.end_reason = compat.reasons(self.eio).TRANSPORT_ERROR
                self.abort()
                return
            self.allowance = size  # one frame larger than the limit goes out on its own
        self.out.append(data)
        self.out_bytes += size
        if not self.flush_scheduled and self.writable is None:
            self.flush_scheduled = True
            # a callback per connection, not one for the node: measured, one callback that
            # flushes every connection put fan-out p99 at 43-45 ms against 28
            self.owner.loop.run_callback(self.flush)

    def flush(self) -> None:
        self.flush_scheduled = False
        if not self.out or self.fd < 0:
            return
        data = self.out[0] if len(self.out) == 1 else b"".join(self.out)
        try:
            sent = os.write(self.fd, data)
        except BlockingIOError:
            sent = 0
        except OSError:
            self.out, self.out_bytes = [], 0
            self.abort()
            return
        if sent == len(data):
            self.out, self.out_bytes, self.allowance = [], 0, 0
            if self.writable is not None:
                self.writable.stop()
                self.writable = None
            return
        rest = data[sent:]
        self.out, self.out_bytes = [rest], len(rest)
        if self.writable is None:
            self.writable = self.owner.loop.io(self.fd, 2)  # 2: writable
            self.writable.start(self.flush)

    def take_over(self) -> None:
        """Serve python-engineio's socket of the polling session from now on: its packets come
        here, what it had queued for the next poll goes out first, and its queue is dropped."""
        self.probing = False
        eio_socket = self.eio_socket
        compat.become(eio_socket, WebSocketEngineIOSocket)
        eio_socket.websocket = self
        eio_socket.upgraded, eio_socket.upgrading = True, False
        for pkt in compat.queued_packets(self.eio, eio_socket):
            if pkt is not None and pkt.packet_type != eio_packet.NOOP:
                self.send_packet(pkt)
        compat.drop_queue(eio_socket)  # the class's _NoQueue answers from now on
        self.heartbeat.schedule(self, self.next_ping)

    # ---- reading: in the loop's callback, no task ----------------------------------------------

    def start(self, handshake: bytes, first: bytes = b"") -> None:
        self.write(handshake + first)
        self.heartbeat.schedule(self, min(self.next_ping,
                                          self.opened_at + self.limits.connect_timeout_s))

    def listen(self, events: Sequence[Any] = ()) -> None:
        """Serve the connection from now on: `events` (already read) first, then whatever
        arrives."""
        self.handle_events(events)
        if not self.ended:
            self.watcher = self.owner.loop.io(self.fd, 1)  # 1: readable
            self.watcher.start(self.on_readable)
            if self.reader.has_more:
                self.schedule_parse()

    def on_readable(self) -> None:
        """The loop's callback: read once (at most READ_BYTES), parse at most FRAMES_PER_CALL
        frames, handle them. Runs in the loop's own task: never blocks, never raises."""
        self.parse_scheduled = False
        if self.ended or self.paused:
            return
        try:
            if self.reader.has_more:  # frames of an earlier read first, without reading
                events = self.reader.feed(b"", FRAMES_PER_CALL)
            else:
                try:
                    count = os.readv(self.fd, _READ_BUFFERS)
                except BlockingIOError:
                    return  # a readiness the kernel took back
                if not count:
                    self.abort()
                    return
                events = self.reader.feed(_READ_VIEW[:count].tobytes(), FRAMES_PER_CALL)
            self.handle_events(events)
            if self.reader.has_more and not self.ended and not self.paused:
                self.schedule_parse()
        except ProtocolError as error:
            log.info("sid=%s broke the WebSocket protocol: %s (closing with %d)",
                     self.eio_socket.sid, error.reason, error.code)
            self.close_with(error.code, error.reason)
        except OSError:
            self.abort()
        except Exception:
            log.exception("sid=%s: reading the connection failed", self.eio_socket.sid)
            self.close_with(frames.INTERNAL_ERROR, "internal error")

    def schedule_parse(self) -> None:
        if not self.parse_scheduled:
            self.parse_scheduled = True
            self.owner.loop.run_callback(self.on_readable)

    def handle_events(self, events: Sequence[Any]) -> None:
        """Answer what needs no task; queue the rest for the connection's task."""
        for event in events:
            if self.ended:
                return
            if isinstance(event, Control):
                self.on_control(event)
            elif not event.text:
                self.enqueue(event.data)
            else:
                data = event.data.decode()
                if self.answered_here(data):
                    continue
                self.enqueue(data)

    def answered_here(self, data: str) -> bool:
        """Engine.IO packets handled without a task: PONG, NOOP, and the ones that end the
        connection."""
        if not self.limits.accepts(data):
            self.close_with(frames.POLICY_VIOLATION, "not a packet this server takes")
            return True
        kind = data[0]
        if kind == "3":  # PONG: the client is alive
            self.ping_sent_at = None
            return True
        if kind == "6":  # NOOP
            return True
        if kind == "0":  # OPEN is the server's to send
            self.close_with(frames.POLICY_VIOLATION, "a client does not send OPEN")
            return True
        if kind == "2":  # PING is the server's to send (Engine.IO v4)
            log.info("sid=%s sent an Engine.IO PING on an open WebSocket (closing with 1008)",
                     self.eio_socket.sid)
            self.close_with(frames.POLICY_VIOLATION, "a client does not send PING")
            return True
        return False

    def on_control(self, event: Control) -> None:
        if event.opcode == frames.PING:
            self.write(server_frame(frames.PONG, event.data))
        elif event.opcode == frames.CLOSE:
            self.end_reason = compat.reasons(self.eio).CLIENT_DISCONNECT
            if self.closing_since is not None:  # the answer to our close frame
                self.abort()
                return
            code = frames.NORMAL if event.code == frames.NO_STATUS else event.code
            self.close_with(code or frames.NORMAL, "")

    # ---- the connection's task: only while events wait -----------------------------------------

    def enqueue(self, item: Any) -> None:
        inbox = self.inbox
        if inbox is None:
            inbox = self.inbox = deque()
        inbox.append(item)
        if not self.running:
            self.running = True
            owner = self.owner
            owner.tasks += 1
            owner.trimmer.saw(owner.tasks)
            compat.spawn_task(self.drain)
        elif len(inbox) >= INBOX_PAUSE and not self.paused and item is not END:
            self.paused = True  # a client faster than its handlers waits in the kernel
            self.owner.paused += 1
            if self.watcher is not None:
                self.watcher.stop()

    def drain(self) -> None:
        """Hand the inbox's events to python-engineio in order; ends when it is empty."""
        inbox = self.inbox
        handled = 0
        try:
            while inbox:
                item = inbox.popleft()
                if item is END:
                    try:
                        self.finish()
                    except Exception:
                        log.exception("sid=%s: ending the connection failed",
                                      self.eio_socket.sid)
                    return
                try:
                    self.eio_socket.receive(eio_packet.Packet(encoded_packet=item))
                except Exception:
                    log.exception("sid=%s: serving the connection failed", self.eio_socket.sid)
                    self.close_with(frames.INTERNAL_ERROR, "internal error")
                handled += 1
                if self.paused and len(inbox) < INBOX_RESUME:
                    self.resume()
                if handled % EVENTS_PER_TURN == 0:
                    compat.yield_turn()
        finally:
            self.running = False  # no switch between the inbox found empty and this
            self.owner.tasks -= 1
            if inbox is self.inbox and not inbox:
                self.inbox = None

    def resume(self) -> None:
        self.paused = False
        self.owner.paused -= 1
        if not self.ended and self.watcher is not None:
            self.watcher.start(self.on_readable)
            if self.reader.has_more:
                self.schedule_parse()

    # ---- ending ---------------------------------------------------------------------------------

    def close_with(self, code: int, reason: str) -> None:
        """Send a close frame, flush, and end the connection."""
        if self.fd >= 0 and not self.ended:
            self.out.append(frames.close_frame(code, reason))
            self.flush()
        self.abort()

    def end(self, graceful: bool) -> None:
        """python-engineio closed the socket: close the WebSocket too (with the close handshake
        if `graceful`, leaving the client CLOSE_HANDSHAKE_S to answer)."""
        if self.ended:
            return
        if not graceful:
            self.abort()
            return
        self.write(frames.close_frame(frames.NORMAL))
        self.closing_since = time.monotonic()
        self.heartbeat.schedule(self, self.closing_since + CLOSE_HANDSHAKE_S)

    def abort(self) -> None:
        """End the connection (from any task or callback): reading stops now, and the end is
        handled in the connection's task after the events before it."""
        if self.ended:
            return
        self.ended = True
        if self.probing:
            return  # the probe's task sees it and the polling session goes on
        if self.watcher is not None:
            self.watcher.stop()
        if self.paused:
            self.paused = False
            self.owner.paused -= 1
        self.enqueue(END)

    def finish(self) -> None:
        """The end: python-engineio's close (the disconnect handlers), then the descriptor."""
        if self.finished:
            return
        self.finished = self.ended = True
        self.owner.held -= 1
        self.heartbeat.forget(self)
        if self.out:
            self.flush()  # what is still owed, if the kernel takes it now
        for watcher in (self.watcher, self.writable):
            if watcher is not None:
                watcher.stop()
                watcher.close()  # before the descriptor: its number may be reused at once
        self.watcher = self.writable = None
        fd, self.fd = self.fd, -1
        if fd >= 0:
            with contextlib.suppress(OSError):
                os.close(fd)
        self.out, self.out_bytes = [], 0
        if not self.eio_socket.closed:
            self.eio_socket.close(wait=False, abort=True, reason=self.end_reason)
        compat.forget_session(self.eio, self.eio_socket.sid)

    # ---- the heartbeat's visits ----------------------------------------------------------------

    def on_timer(self, now: float) -> float | None:
        if self.ended:
            return None
        if self.closing_since is not None:
            if now - self.closing_since >= CLOSE_HANDSHAKE_S:
                self.abort()
                return None
            return self.closing_since + CLOSE_HANDSHAKE_S
        connect_deadline = self.opened_at + self.limits.connect_timeout_s
        if connect_deadline <= now and not self.is_joined(self.eio_socket.sid):
            log.info("sid=%s cut off: no Socket.IO connect within %.0f s", self.eio_socket.sid,
                     self.limits.connect_timeout_s)
            self.close_with(frames.POLICY_VIOLATION, "no Socket.IO connect in time")
            return None
        if self.ping_sent_at is not None:
            deadline = self.ping_sent_at + self.limits.ping_timeout_s
            if now >= deadline:
                self.end_reason = compat.reasons(self.eio).PING_TIMEOUT
                self.abort()
                return None
            return deadline
        if now >= self.next_ping:
            self.ping_sent_at = now
            self.next_ping = now + self.limits.ping_interval_s
            self.write(PING_FRAME)
            return now + self.limits.ping_timeout_s
        upcoming = self.next_ping
        if not self.is_joined(self.eio_socket.sid):
            upcoming = min(upcoming, connect_deadline)
        return upcoming


class WebSocketTransport:
    """python-engineio's request handler, wrapped: Engine.IO connections that start as a
    WebSocket are served here; the rest (long-polling, and its upgrades, which python-engineio
    hands to UpgradeHandler) passes on."""

    def __init__(self, app: Callable[..., Any], eio: Any, limits: Limits,
                 heartbeat: Heartbeat, allowed_origins: list[str],
                 start_heartbeat: Callable[[], Any], is_joined: Callable[[str], bool]):
        self.app, self.eio, self.limits = app, eio, limits
        self.heartbeat, self.is_joined = heartbeat, is_joined
        self.held = 0  # sessions open
        self.tasks = 0  # connections whose task is handling events now
        self.paused = 0  # connections whose reading waits for their task to catch up
        self.trimmer = BurstTrimmer()
        heartbeat.after_tick = self.after_tick
        self.loop: Any = None  # gevent's event loop, from the first session on
        self.allowed_origins = set(allowed_origins)
        self._start_heartbeat: Callable[[], Any] | None = start_heartbeat

    def session(self, eio_socket: Any, fd: int) -> WebSocketSession:
        """A new session; the node's heartbeat starts with its first one."""
        if self._start_heartbeat is not None:
            self.loop = compat.event_loop()  # the worker's, once it serves
            start, self._start_heartbeat = self._start_heartbeat, None
            start()
        self.held += 1
        return WebSocketSession(self, eio_socket, fd)

    def after_tick(self) -> None:
        self.trimmer.tick(self.tasks)

    def full(self, start_response: Callable[..., Any]) -> list[bytes] | None:
        """The answer to a connection past `max_sessions`, or None while there is room."""
        if self.held < self.limits.max_sessions:
            return None
        return http_error(start_response, "503 Service Unavailable",
                          "this node holds all the connections it may (WORKER_CONNECTIONS)",
                          [("Retry-After", "1")])

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        query = parse_qs(environ.get("QUERY_STRING", ""))
        if query.get("transport") != ["websocket"]:
            return self.app(environ, start_response)
        if "sid" in query:
            existing = compat.session_of(self.eio, query["sid"][0])
            if existing is None or not (existing.upgraded or existing.upgrading):
                return self.app(environ, start_response)  # python-engineio: an upgrade
            return self.refuse_second_upgrade(environ, start_response)
        if query.get("EIO") != ["4"]:
            return http_error(start_response, "400 Bad Request", "only Engine.IO 4 is spoken")
        origin = environ.get("HTTP_ORIGIN")
        if origin and "*" not in self.allowed_origins and origin not in self.allowed_origins:
            return http_error(start_response, "400 Bad Request", "not an accepted origin")
        problem = handshake_error(environ)
        if problem is not None:
            extra = [("Sec-WebSocket-Version", "13")] if problem[0].startswith("426") else None
            return http_error(start_response, problem[0], problem[1], extra)
        sock = environ.get("gunicorn.socket")
        if sock is None:
            return http_error(start_response, "400 Bad Request", "WebSocket needs gunicorn")
        full = self.full(start_response)
        if full is not None:
            return full
        eio_socket = compat.open_session(self.eio, WebSocketEngineIOSocket,
                                         kept_environ(environ))
        if eio_socket is None:
            return http_error(start_response, "401 Unauthorized", "connection refused")
        sid = eio_socket.sid
        eio_socket.connected = eio_socket.upgraded = True
        session = self.session(eio_socket, take_descriptor(sock))
        eio_socket.websocket = session
        opening = eio_packet.Packet(eio_packet.OPEN, {
            "sid": sid, "upgrades": [],
            "pingInterval": int(self.limits.ping_interval_s * 1000),
            "pingTimeout": int(self.limits.ping_timeout_s * 1000),
            "maxPayload": self.limits.max_message,
        })
        session.start(handshake_response(environ), packet_frame(opening))
        session.listen()
        raise StopIteration  # gunicorn: the connection is the session's; write nothing more


    def refuse_second_upgrade(self, environ: dict[str, Any],
                              start_response: Callable[..., Any]) -> Any:
        """A WebSocket for a session that has one already: opened, then closed at once (1008),
        as Engine.IO servers do; the session keeps its WebSocket."""
        problem = handshake_error(environ)
        sock = environ.get("gunicorn.socket")
        if problem is not None or sock is None:
            return http_error(start_response, *(problem or ("400 Bad Request",
                                                            "WebSocket needs gunicorn")))
        with contextlib.suppress(OSError):
            sock.sendall(handshake_response(environ)
                         + frames.close_frame(frames.POLICY_VIOLATION, "already upgraded"))
        raise StopIteration


class UpgradeHandler:
    """python-engineio's WebSocket class for a long-polling session that upgrades: the probe
    (in the upgrade request's task, within the connect timeout), then the connection is served
    by a WebSocketSession like any other (installed by `install`)."""

    transport: WebSocketTransport  # set by install()

    def __init__(self, handler: Any, server: Any):
        self.eio_socket = handler.__self__  # python-engineio's Socket of the polling session

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        problem = handshake_error(environ)
        if problem is not None:
            return http_error(start_response, problem[0], problem[1])
        sock = environ.get("gunicorn.socket")
        if sock is None:
            return http_error(start_response, "400 Bad Request", "WebSocket needs gunicorn")
        transport = self.transport
        full = transport.full(start_response)
        if full is not None:
            return full
        eio_socket = self.eio_socket
        session = transport.session(eio_socket, sock.fileno())
        session.probing = True
        session.write(handshake_response(environ))
        eio_socket.upgrading = True  # python-engineio's polling answers NOOP from now on
        rest = probe(session, sock, time.monotonic() + transport.limits.connect_timeout_s)
        if rest is None:
            eio_socket.upgrading = False
            transport.held -= 1
            session.fd = -1  # gunicorn closes its socket
            raise StopIteration
        session.fd = take_descriptor(sock)
        session.take_over()
        session.listen(rest)
        raise StopIteration


def probe(session: WebSocketSession, sock: Any, deadline: float) -> list[Any] | None:
    """A long-polling session's move to this WebSocket (Engine.IO v4): `2probe`, answered
    `3probe`, then `5`. What the client sent after `5` (to be served), or None if it did not
    get there by `deadline`: it sent something else, closed, broke the protocol or took too
    long."""
    expected = "2probe"
    try:
        while not session.ended:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            sock.settimeout(left)
            count = sock.recv_into(_READ_BUFFER)
            if not count:
                return None
            events = session.reader.feed(_READ_VIEW[:count].tobytes())
            for index, event in enumerate(events):
                if isinstance(event, Control):
                    session.on_control(event)
                    continue
                if not event.text or event.data.decode() != expected:
                    return None
                if expected == "5":
                    return events[index + 1 :]
                session.write(PROBE_ANSWER)
                session.eio_socket.queue.put(eio_packet.Packet(eio_packet.NOOP))  # ends a poll
                expected = "5"
    except (ProtocolError, OSError):
        return None
    return None


def transport_of(eio: Any) -> WebSocketTransport | None:
    """The transport `install` put in front of this Engine.IO server, if any (gevent mode)."""
    handler = getattr(eio, "handle_request", None)
    return handler if isinstance(handler, WebSocketTransport) else None


def install(eio: Any, *, send_buffer_bytes: int, connect_timeout_s: float, max_sessions: int,
            allowed_origins: list[str], spawn: Callable[..., Any],
            is_joined: Callable[[str], bool],
            accepts: Callable[[str], bool] = acceptable) -> bool:
    """Serve this Engine.IO server's WebSockets here (gevent mode): its requests pass through
    WebSocketTransport, and upgrades use UpgradeHandler. A connection for which `is_joined` stays
    false past `connect_timeout_s` is cut off; text packets `accepts` refuses end their
    connection; past `max_sessions` open sessions a new one is answered 503. Whether it was
    installed: eventlet mode keeps python-engineio's own WebSocket
    path (README: eventlet)."""
    if eio.async_mode != "gevent":
        return False
    limits = Limits(ping_interval_s=float(eio.ping_interval),
                    ping_timeout_s=float(eio.ping_timeout),
                    max_message=eio.max_http_buffer_size,
                    send_buffer_bytes=send_buffer_bytes, connect_timeout_s=connect_timeout_s,
                    max_sessions=max_sessions, accepts=accepts)
    tick = min(1.0, limits.ping_interval_s / 4, limits.ping_timeout_s / 4)
    heartbeat = Heartbeat(tick, sleep=eio.sleep)
    upgrade: Any = type("NodeUpgradeHandler", (UpgradeHandler,), {})
    transport = compat.intercept(
        eio, lambda own: WebSocketTransport(own, eio, limits, heartbeat, allowed_origins,
                                            start_heartbeat=lambda: spawn(heartbeat.run_forever),
                                            is_joined=is_joined), upgrade)
    upgrade.transport = transport
    return True
