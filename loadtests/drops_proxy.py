"""A TCP proxy that takes the network away again and again: repeated network drops on loopback.

Clients connect to the proxy instead of the front door. For `up_s` seconds it forwards bytes both
ways; then it drops every connection at once (a TCP reset, as a broken path ends up looking to
both ends) and refuses new ones (nothing listens) for `down_s` seconds; then it listens again.
The cycle repeats until it is stopped. The anchor is the repeated 2-second drops of
anycable/nodejs-websocket-bench.

One thread serves every connection with a selector, so a probe with hundreds of clients costs
one thread, and the proxy works the same in a threaded process and in a gevent one. Run alone:

    python -m loadtests.drops_proxy --listen 30080 --target 127.0.0.1:8080 --up 3 --down 2
"""

from __future__ import annotations

import argparse
import contextlib
import selectors
import socket
import struct
import threading
import time

READ_BYTES = 65536
LINGER_RESET = struct.pack("ii", 1, 0)  # SO_LINGER on, 0 s: close() sends a reset


class DropsProxy:
    def __init__(self, target: tuple[str, int], *, up_s: float = 3.0, down_s: float = 2.0,
                 listen_port: int = 0, host: str = "127.0.0.1", dropping: bool = True):
        self.target, self.up_s, self.down_s = target, up_s, down_s
        self.host = host
        self.listener = self._listen(listen_port)
        self.port = self.listener.getsockname()[1]
        self.drops = 0  # drop cycles so far
        self.reset = 0  # client connections the drops cut
        self.refused_for_s = 0.0
        self._peers: dict[socket.socket, socket.socket] = {}
        self._clients: set[socket.socket] = set()  # the client side of each pair
        self._pending: dict[socket.socket, bytearray] = {}  # bytes waiting for a writable peer
        self._selector = selectors.DefaultSelector()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="drops-proxy", daemon=True)
        self.dropping = dropping  # False: forward only, never drop
        self._next_drop = time.monotonic() + up_s

    def start_dropping(self) -> None:
        """Drop from now on: the first drop comes `up_s` from now."""
        self._next_drop = time.monotonic() + self.up_s
        self.dropping = True

    def stop_dropping(self) -> None:
        """Forward only from now on (a drop under way still ends its refusal as set)."""
        self.dropping = False

    def _listen(self, port: int) -> socket.socket:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((self.host, port))
        listener.listen(1024)
        listener.setblocking(False)
        return listener

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> DropsProxy:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)

    def __enter__(self) -> DropsProxy:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    # ---- the loop ------------------------------------------------------------------------------

    def _serve(self) -> None:
        self._selector.register(self.listener, selectors.EVENT_READ)
        self._next_drop = time.monotonic() + self.up_s
        listening_again: float | None = None
        try:
            while not self._stop.is_set():
                now = time.monotonic()
                if listening_again is not None and now >= listening_again:
                    self.listener = self._listen(self.port)
                    self._selector.register(self.listener, selectors.EVENT_READ)
                    self.refused_for_s += now - (listening_again - self.down_s)
                    listening_again = None
                    self._next_drop = now + self.up_s
                elif listening_again is None and self.dropping and now >= self._next_drop:
                    self._drop_everything()
                    listening_again = now + self.down_s
                wake = listening_again if listening_again is not None else self._next_drop
                for key, events in self._selector.select(max(0.0, min(0.2, wake - now))):
                    if key.fileobj is self.listener:
                        self._accept()
                    else:
                        self._pump(key.fileobj, events)  # type: ignore[arg-type]
        finally:
            self._drop_everything()
            with contextlib.suppress(KeyError, ValueError):
                self._selector.unregister(self.listener)
            self.listener.close()
            self._selector.close()

    def _accept(self) -> None:
        try:
            client, _ = self.listener.accept()
        except BlockingIOError:
            return
        try:
            upstream = socket.create_connection(self.target, timeout=5)
        except OSError:
            _reset(client)
            return
        for sock in (client, upstream):
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._pending[sock] = bytearray()
            self._selector.register(sock, selectors.EVENT_READ)
        self._peers[client], self._peers[upstream] = upstream, client
        self._clients.add(client)

    def _pump(self, sock: socket.socket, events: int) -> None:
        peer = self._peers.get(sock)
        if peer is None:
            return
        if events & selectors.EVENT_WRITE and not self._flush(sock):
            return
        if events & selectors.EVENT_READ:
            try:
                data = sock.recv(READ_BYTES)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                data = b""
            if not data:
                self._close_pair(sock)
                return
            self._pending[peer] += data
            self._flush(peer)

    def _flush(self, sock: socket.socket) -> bool:
        """Write what waits for `sock`; False if the pair was closed meanwhile."""
        pending = self._pending.get(sock)
        if pending is None:
            return False
        try:
            while pending:
                sent = sock.send(pending)
                del pending[:sent]
        except (BlockingIOError, InterruptedError):
            pass
        except OSError:
            self._close_pair(sock)
            return False
        wanted = selectors.EVENT_READ | (selectors.EVENT_WRITE if pending else 0)
        with contextlib.suppress(KeyError, ValueError):
            self._selector.modify(sock, wanted)
        return True

    def _close_pair(self, sock: socket.socket, reset: bool = False) -> None:
        peer = self._peers.pop(sock, None)
        for one in (sock, peer):
            if one is None:
                continue
            self._peers.pop(one, None)
            self._pending.pop(one, None)
            self._clients.discard(one)
            with contextlib.suppress(KeyError, ValueError):
                self._selector.unregister(one)
            if reset:
                _reset(one)
            else:
                one.close()

    def _drop_everything(self) -> None:
        self.reset += len(self._clients)
        for sock in list(self._peers):
            if sock in self._peers:
                self._close_pair(sock, reset=True)
        with contextlib.suppress(KeyError, ValueError):
            self._selector.unregister(self.listener)
        self.listener.close()
        self.drops += 1


def _reset(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_RESET)
    sock.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listen", type=int, required=True, help="port on 127.0.0.1")
    parser.add_argument("--target", required=True, help="host:port to forward to")
    parser.add_argument("--up", type=float, default=3.0, help="seconds between drops")
    parser.add_argument("--down", type=float, default=2.0, help="seconds refused after a drop")
    args = parser.parse_args()
    host, _, port = args.target.rpartition(":")
    proxy = DropsProxy((host, int(port)), up_s=args.up, down_s=args.down,
                       listen_port=args.listen).start()
    print(f"forwarding 127.0.0.1:{proxy.port} -> {args.target}, dropping every {args.up:g} s "
          f"for {args.down:g} s", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        proxy.stop()


if __name__ == "__main__":
    main()
