"""What an idle connection costs a node, by owner: `python loadtests/connection_memory.py`.

One gevent process runs the stack as `create_app` wires it (RoomsManager, RoomsNamespace, the
project's WebSocket transport, compat's wrappers), with the unit tests' MemoryBroker instead of
Redis. A connection is a socketpair: its server end goes into the environ gunicorn's own
`wsgi.create` makes from the handshake as nginx forwards it (`lean`) or as a browser's comes
through nginx (`browser`: User-Agent, Origin, cookies, Accept-*), and the app is called with it as
gunicorn's gevent worker calls it (in a task of its own, which ends). The client end then sends
`40{token}`, waits for `welcome`, joins a room of ROOM_SIZE (30) and stays idle; only its file
descriptor is kept.

Two measurements, each in a fresh child process (tracing costs memory and time of its own):

- `traced`: `tracemalloc` from after WARM connections to after WARM + N, by allocation site; each
  site's traceback is read from the innermost frame out, and the first frame of a known file
  names the owner (OWNERS). Live bytes per connection by owner. What is not traced (greenlets'
  stack pages, allocator overhead) is only in the RSS figure.
- `rss`: resident memory (`/proc/self/smaps_rollup`, after `gc.collect()` and `malloc_trim(0)`)
  after WARM and after WARM + N connections; the slope per connection.

Writes JSON (`--json PATH`, or the last line of stdout with `--json -`) and prints a table.
tests/unit/test_connection_memory.py runs it with a budget on live bytes per lean connection.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import linecache
import os
import subprocess
import sys
import time
import weakref
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
ROOM_SIZE = 30
USERS = 50  # connections share accounts, as `make capacity PROBES=memory`
ORIGIN = "https://chat.example.com"

# Owners, by the first frame of an allocation's traceback (innermost first) that is in one of
# these files (a path fragment) and, where given, in that function (or on a line that says so).
# gevent's and greenlet's own frames are looked through: what they allocate belongs to their
# caller (a socket's watchers to whoever made the socket, a task's saved stack to the frame it
# waits in), and to "tasks" when no frame of the project or a library is found.
OWNERS: list[tuple[str, str, str | None]] = [
    ("reader", "service/transport/websocket.py", "FrameReader("),  # the line that makes it
    ("harness", "loadtests/connection_memory.py", "client"),
    ("harness", "loadtests/connection_memory.py", "settle"),
    ("harness", "loadtests/connection_memory.py", "fill"),
    # the request's task as gunicorn runs it: what survives it is held by the environ (gunicorn
    # 27's `wsgi.early_hints` holds its Request, Response and socket)
    ("environ", "loadtests/connection_memory.py", "serve"),
    ("environ", "loadtests/connection_memory.py", "handshake"),
    ("broker stand-in", "tests/unit/memory_broker.py", None),
    # a connection's name for the store (`node|sid`): only the stand-in keeps it (a node's Redis
    # broker sends it to Redis)
    ("broker stand-in", "service/realtime/namespace.py", "connection_id"),
    ("environ", "service/transport/environ.py", None),
    ("environ", "gunicorn/http/", None),
    ("environ", "werkzeug/", None),  # the request context's marks on the environ
    ("environ", "flask/ctx.py", None),
    ("tasks", "service/transport/websocket.py", "spawn_raw"),
    ("socket", "service/transport/websocket.py", "adopt"),
    ("transport session", "service/transport/websocket.py", "__init__"),
    ("transport session", "service/transport/websocket.py", "session"),
    ("transport session", "service/transport/websocket.py", "start"),
    ("transport session", "service/transport/websocket.py", "write"),
    ("transport session", "service/transport/websocket.py", "flush"),
    # the rest of websocket.py runs in the connection's task: its frames' leftovers
    ("tasks", "service/transport/websocket.py", None),
    ("reader", "service/transport/frames.py", None),
    ("heartbeat", "service/transport/heartbeat.py", None),
    ("engineio socket", "service/transport/compat.py", "init_socket_state"),
    ("engineio socket", "service/transport/compat.py", "open_session"),
    # what is left of a finished background task (the welcome's emit)
    ("tasks", "engineio/async_drivers/", None),
    ("tasks", "socketio/server.py", "start_background_task"),
    ("heartbeat", "engineio/server.py", "sleep"),
    ("engineio socket", "engineio/", None),
    ("socketio tables", "service/realtime/manager.py", None),
    ("socketio tables", "socketio/", None),
    ("socketio tables", "bidict/", None),
    ("handlers' Connection", "service/realtime/", None),
]
LOOKED_THROUGH = ("/gevent/", "/greenlet/")
NOT_THE_NODES = ("harness", "broker stand-in")


def owner_of(frames: list[tuple[str, str | None, str]]) -> str:
    """The owner of an allocation whose traceback is `frames` (filename, function, source
    line), innermost first."""
    in_gevent = False
    for filename, function, line in frames:
        name = filename.replace(os.sep, "/")
        if any(fragment in name for fragment in LOOKED_THROUGH):
            in_gevent = True
            continue
        for owner, fragment, wanted in OWNERS:
            if fragment in name and (wanted is None or wanted == function or wanted in line):
                return owner
    return "tasks" if in_gevent else "other"


# ---- the child: a node and its connections in this process --------------------------------------

def handshake(kind: str, n: int) -> bytes:
    key = base64.b64encode(os.urandom(16)).decode()
    lines = ["GET /socket.io/?EIO=4&transport=websocket HTTP/1.1",
             "Host: rooms.example.com", "Upgrade: websocket", "Connection: upgrade",
             f"X-Forwarded-For: 10.1.{n // 250 % 250}.{n % 250 + 1}",
             "X-Forwarded-Proto: https", "X-Rooms-Front-Door: 1",
             f"Sec-WebSocket-Key: {key}", "Sec-WebSocket-Version: 13"]
    if kind == "browser":
        lines += ["Pragma: no-cache", "Cache-Control: no-cache",
                  "User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like "
                  "Gecko) Chrome/131.0.0.0 Safari/537.36", f"Origin: {ORIGIN}",
                  "Accept-Encoding: gzip, deflate, br, zstd",
                  "Accept-Language: en-GB,en-US;q=0.9,en;q=0.8",
                  f"Cookie: _ga=GA1.1.{1000000 + n}.1733000000; theme=dark; "
                  "consent=analytics%3D0%26ads%3D0",
                  "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


class Node:
    """create_app's node, its Redis broker replaced by the unit tests' MemoryBroker."""

    def __init__(self) -> None:
        sys.path[:0] = [str(ROOT)]
        import service.node.node as node_module
        from service import create_app
        from service.settings import load_settings
        from tests.unit.memory_broker import MemoryBroker

        users = {f"u{n}" for n in range(USERS)}
        brokers: list[Any] = []
        node_module.RedisBroker = lambda *args: brokers.append(  # type: ignore[assignment]
            MemoryBroker("node-mem", users)) or brokers[-1]
        settings = load_settings({
            "REDIS_URL": "redis://127.0.0.1:1/0", "ASYNC_MODE": "gevent",
            "NODE_NAME": "node-mem", "DOTENV_PATH": "/nonexistent", "ALLOWED_ORIGINS": ORIGIN,
            "PING_INTERVAL_S": "600", "PING_TIMEOUT_S": "600", "CONNECT_TIMEOUT_S": "600"})
        import logging

        self.app = create_app(settings, background=False)
        logging.getLogger().setLevel(logging.WARNING)
        node = self.app.extensions["node"]
        broker = self.broker = brokers[0]
        node.manager.subscribe, node.manager.unsubscribe = broker.subscribe, broker.unsubscribe
        broker.deliver = node.manager.deliver
        broker.on_control = node.namespace.on_control
        self.node = node
        from gunicorn.config import Config

        self.config = Config()
        self.fds: list[int] = []  # the client ends, kept open
        self.requests: list[Any] = []  # weak references to some of gunicorn's requests

    def serve(self, kind: str, n: int) -> Any:
        """What gunicorn's gevent worker does with a request: its socket, the request parsed,
        its environ built, the app called in the request's task, which then ends. The client's
        end of the socket."""
        import socket

        from gunicorn.http import wsgi
        from gunicorn.http.message import Request
        from gunicorn.http.unreader import IterUnreader

        ours, sock = socket.socketpair()
        peer = ("10.0.0.1", 40000 + n)
        config = self.config
        request = Request(config, IterUnreader([handshake(kind, n)]), peer, 1)
        response, environ = wsgi.create(request, sock, peer, ("10.0.0.2", 8000), config)
        if n % 10 == 0:  # whether gunicorn's request outlives its task
            self.requests.append(weakref.ref(request))
        try:
            result = self.app(environ, response.start_response)
            for _chunk in result:
                pass
        except StopIteration:
            pass
        finally:
            sock.close()  # gunicorn closes what is left of its socket object
        return ours

    def client(self, kind: str, n: int) -> None:
        """One connection: handshake, `40{token}`, welcome, join; then only its fd is kept."""
        import gevent
        import orjson

        from loadtests.lean_client import client_frame

        ours = gevent.spawn(self.serve, kind, n).get()
        reader = FrameStream(ours)
        head = reader.until(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101"), head
        assert reader.packet().startswith("0")
        user = f"u{n % USERS}"
        token = self.node.signer.issue(user)
        ours.sendall(client_frame("40" + orjson.dumps({"token": token}).decode()))
        while not reader.packet().startswith('42["welcome"'):
            pass
        room = f"room-{n // ROOM_SIZE}"
        ours.sendall(client_frame("421" + orjson.dumps(["join", {"room": room}]).decode()))
        while True:
            packet = reader.packet()
            if packet.startswith("431"):
                assert orjson.loads(packet[3:])[0]["ok"], packet
                break
        self.fds.append(ours.detach())

    def connect(self, kind: str, count: int) -> None:
        start = len(self.fds)
        for n in range(start, start + count):
            self.client(kind, n)


class FrameStream:
    """The client end's reading: the 101 answer, then the server's (unmasked) text frames."""

    def __init__(self, sock: Any):
        self.sock, self.buffer = sock, b""

    def fill(self) -> None:
        data = self.sock.recv(65536)
        if not data:
            raise ConnectionError("the server closed the connection")
        self.buffer += data

    def until(self, end: bytes) -> bytes:
        while end not in self.buffer:
            self.fill()
        head, _, self.buffer = self.buffer.partition(end)
        return head

    def packet(self) -> str:
        while True:
            if len(self.buffer) >= 2:
                length, offset = self.buffer[1] & 0x7F, 2
                if length == 126:
                    length, offset = int.from_bytes(self.buffer[2:4], "big"), 4
                elif length == 127:
                    length, offset = int.from_bytes(self.buffer[2:10], "big"), 10
                if len(self.buffer) >= offset + length:
                    payload = self.buffer[offset:offset + length]
                    self.buffer = self.buffer[offset + length:]
                    return payload.decode()
            self.fill()


def settle() -> None:
    import ctypes
    import gc

    import gevent

    gevent.idle()  # every task that can run has run: the welcome emits' tasks ended
    gc.collect()
    with contextlib.suppress(OSError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def rss_bytes() -> int:
    with open("/proc/self/smaps_rollup") as rollup:
        for line in rollup:
            if line.startswith("Rss:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no Rss in smaps_rollup")


def child(mode: str, kind: str, warm: int, count: int) -> dict[str, Any]:
    node = Node()
    node.connect(kind, warm)
    settle()
    if mode == "rss":
        before = rss_bytes()
        node.connect(kind, count)
        settle()
        after = rss_bytes()
        return {"rss_per_connection": (after - before) / count, "rss_before": before,
                "rss_after": after}
    import tracemalloc

    tracemalloc.start(40)
    first = tracemalloc.take_snapshot()
    node.connect(kind, count)
    settle()
    second = tracemalloc.take_snapshot()
    tracemalloc.stop()
    owners: dict[str, float] = {}
    sites: dict[str, list[Any]] = {}
    for stat in second.compare_to(first, "traceback"):
        if not stat.size_diff:
            continue
        frames = [(frame.filename, _function(frame),
                   linecache.getline(frame.filename, frame.lineno))
                  for frame in reversed(stat.traceback)]
        owner = owner_of(frames)
        owners[owner] = owners.get(owner, 0) + stat.size_diff
        site = next((f"{f}:{line}" for f, line in _lines(stat.traceback)), "?")
        entry = sites.setdefault(owner, [])
        entry.append((stat.size_diff, site))
    per = {owner: size / count for owner, size in sorted(owners.items(), key=lambda i: -i[1])}
    live = sum(size for owner, size in per.items() if owner not in NOT_THE_NODES)
    top = {owner: [{"bytes_per_connection": round(size / count, 1), "site": site}
                   for size, site in sorted(entries, key=lambda e: -abs(e[0]))[:6]]
           for owner, entries in sites.items()}
    return {"live_per_connection": live, "by_owner": per, "top_sites": top,
            "gunicorn_requests_alive": sum(ref() is not None for ref in node.requests),
            "gunicorn_requests_watched": len(node.requests)}


_FUNCTIONS: dict[tuple[str, int], str | None] = {}


def _function(frame: Any) -> str | None:
    """The function a traceback frame is in (tracemalloc keeps file and line only)."""
    key = (frame.filename, frame.lineno)
    if key not in _FUNCTIONS:
        _FUNCTIONS[key] = _enclosing(frame.filename, frame.lineno)
    return _FUNCTIONS[key]


_DEFS: dict[str, list[tuple[int, int, str]]] = {}


def _enclosing(filename: str, lineno: int) -> str | None:
    import ast

    if filename not in _DEFS:
        spans = []
        try:
            tree = ast.parse(Path(filename).read_text())
            for node in ast.walk(tree):
                if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                    spans.append((node.lineno, node.end_lineno or node.lineno, node.name))
        except (OSError, SyntaxError, ValueError):
            pass
        _DEFS[filename] = spans
    inner = [span for span in _DEFS[filename] if span[0] <= lineno <= span[1]]
    return min(inner, key=lambda span: span[1] - span[0])[2] if inner else None


def _lines(traceback: Any) -> list[tuple[str, int]]:
    """The traceback's frames in the project or a library, innermost first, paths shortened."""
    found = []
    for frame in reversed(traceback):
        name = frame.filename
        for marker in ("site-packages/", str(ROOT) + "/"):
            if marker in name:
                found.append((name.split(marker, 1)[1], frame.lineno))
                break
    return found or [(frame.filename, frame.lineno) for frame in reversed(traceback)]


# ---- the parent: children, and the report --------------------------------------------------------

def run_child(mode: str, kind: str, warm: int, count: int) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, __file__, "--child", mode, "--kinds", kind, "--warm", str(warm),
         "--connections", str(count)], capture_output=True, text=True, check=False,
        cwd=ROOT)
    if done.returncode != 0:
        raise RuntimeError(f"the {mode} child ({kind}) failed:\n{done.stdout}\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def measure(kinds: list[str], warm: int, count: int, rss: bool = True) -> dict[str, Any]:
    results: dict[str, Any] = {"warm": warm, "connections": count, "room_size": ROOM_SIZE,
                               "python": sys.version.split()[0], "versions": versions(),
                               "kinds": {}}
    for kind in kinds:
        result = run_child("traced", kind, warm, count)
        if rss:
            result.update(run_child("rss", kind, warm, count))
        results["kinds"][kind] = result
    return results


def versions() -> dict[str, str]:
    from importlib import metadata

    found = {}
    for name in ("gevent", "greenlet", "python-engineio", "python-socketio", "flask-socketio",
                 "gunicorn"):
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "not installed"
    return found


def table(results: dict[str, Any]) -> str:
    kinds = list(results["kinds"])
    owners: list[str] = []
    for kind in kinds:
        owners += [o for o in results["kinds"][kind]["by_owner"] if o not in owners]
    lines = [f"bytes per idle connection ({results['connections']} connections after "
             f"{results['warm']}, rooms of {results['room_size']})",
             f"{'owner':<26}" + "".join(f"{kind:>12}" for kind in kinds)]
    for owner in owners:
        lines.append(f"{owner:<26}" + "".join(
            f"{results['kinds'][k]['by_owner'].get(owner, 0):>12,.0f}" for k in kinds))
    lines.append(f"{'live, the node (traced)':<26}" + "".join(
        f"{results['kinds'][k]['live_per_connection']:>12,.0f}" for k in kinds))
    if all("rss_per_connection" in results["kinds"][k] for k in kinds):
        lines.append(f"{'RSS slope':<26}" + "".join(
            f"{results['kinds'][k]['rss_per_connection']:>12,.0f}" for k in kinds))
    lines.append(f"(not the node's: {', '.join(NOT_THE_NODES)}; untraced: stack pages, "
                 "allocator overhead: in the RSS slope only)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--connections", type=int, default=600)
    parser.add_argument("--warm", type=int, default=150)
    parser.add_argument("--kinds", default="lean,browser", help="lean, browser, comma-separated")
    parser.add_argument("--json", help="write the results here ('-': last line of stdout)")
    parser.add_argument("--no-rss", action="store_true", help="only the traced measurement")
    parser.add_argument("--child", choices=("traced", "rss"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        from gevent import monkey

        monkey.patch_all()
        started = time.monotonic()
        result = child(args.child, args.kinds, args.warm, args.connections)
        result["seconds"] = round(time.monotonic() - started, 2)
        print(json.dumps(result))
        return
    results = measure(args.kinds.split(","), args.warm, args.connections, rss=not args.no_rss)
    if args.json == "-":
        print(table(results), file=sys.stderr)
        print(json.dumps(results))
        return
    print(table(results))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
