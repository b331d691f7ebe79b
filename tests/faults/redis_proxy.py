"""A TCP proxy in front of Redis for one node, to break that node's path to Redis in two ways:

- `deafen(name)`: what Redis sends to the connections whose client named itself `name` is read
  and dropped while both TCP connections stay open, so Redis still lists their subscriptions
  (the failure of python-socketio's #1581 and the Socket.IO Redis adapter's #446);
- `cut()`: a network partition between the node and Redis: nothing goes through in either
  direction on the open connections, and new ones are accepted but never reach Redis, so the
  node sees silence, not refusals (as when packets are dropped on the way). `heal()` ends the
  connections that were open during the cut (their bytes are lost: both ends would have to
  find out) and lets new ones through again.
"""

from __future__ import annotations

import contextlib
import socket
import threading


class _Pair:
    def __init__(self, client: socket.socket, upstream: socket.socket | None):
        self.client = client
        self.upstream = upstream  # None: accepted during a cut, never connected to Redis
        self.seen = b""  # the first bytes the client sent (its CLIENT SETNAME)
        self.deaf = False
        self.cut = False

    def close(self) -> None:
        for sock in (self.client, self.upstream):
            if sock is None:
                continue
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()


class RedisProxy:
    def __init__(self, target_port: int):
        self.target_port = target_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.pairs: list[_Pair] = []
        self.lock = threading.Lock()
        self.closed = False
        self.partitioned = False
        threading.Thread(target=self._accept, daemon=True).start()

    def deafen(self, client_name: str) -> int:
        """Deafen the open connections whose client named itself `client_name`; how many."""
        marker = client_name.encode()
        with self.lock:
            chosen = [pair for pair in self.pairs if marker in pair.seen]
            for pair in chosen:
                pair.deaf = True
        return len(chosen)

    def cut(self) -> None:
        with self.lock:
            self.partitioned = True
            for pair in self.pairs:
                pair.cut = True

    def heal(self) -> None:
        with self.lock:
            self.partitioned = False
            stale = [pair for pair in self.pairs if pair.cut]
        for pair in stale:
            self._drop(pair)

    def close(self) -> None:
        self.closed = True
        self.listener.close()
        with self.lock:
            pairs, self.pairs = self.pairs, []
        for pair in pairs:
            pair.close()

    def _accept(self) -> None:
        while not self.closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            with self.lock:
                partitioned = self.partitioned
            if partitioned:
                pair = _Pair(client, None)
                pair.cut = True
                with self.lock:
                    self.pairs.append(pair)
                threading.Thread(target=self._to_redis, args=(pair,), daemon=True).start()
                continue
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            pair = _Pair(client, upstream)
            with self.lock:
                self.pairs.append(pair)
            threading.Thread(target=self._to_redis, args=(pair,), daemon=True).start()
            threading.Thread(target=self._to_client, args=(pair,), daemon=True).start()

    def _to_redis(self, pair: _Pair) -> None:
        try:
            while chunk := pair.client.recv(65536):
                if len(pair.seen) < 4096:
                    pair.seen += chunk[:4096]
                if not pair.cut and pair.upstream is not None:
                    pair.upstream.sendall(chunk)
        except OSError:
            pass
        self._drop(pair)

    def _to_client(self, pair: _Pair) -> None:
        assert pair.upstream is not None
        try:
            while chunk := pair.upstream.recv(65536):
                if not pair.deaf and not pair.cut:
                    pair.client.sendall(chunk)
        except OSError:
            pass
        self._drop(pair)

    def _drop(self, pair: _Pair) -> None:
        with self.lock:
            if pair in self.pairs:
                self.pairs.remove(pair)
        pair.close()
