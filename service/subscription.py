"""The node's subscription to the message queue channel, read with hiredis directly.

Every message published in the cluster reaches every node, so this read loop runs once per
message per node. redis-py's PubSub spends most of a node's pub/sub time in its own layers (a
retry wrapper, a health check, push-notification dispatch and a dict per message); here the
connection is opened by redis-py (URL, TLS, password, client name: readiness finds it by that
name) and then read by one hiredis Reader, which yields only the payloads of `message` replies.

Guarantees: payloads come in the order Redis sent them; anything that ends the connection (Redis
gone, CLIENT KILL, a protocol error) raises, and the caller subscribes again.
"""

from __future__ import annotations

from collections.abc import Iterator

import hiredis
import redis

READ_BYTES = 65536


class Subscription:
    def __init__(self, client: redis.Redis, channel: str):
        pool = client.connection_pool
        self.connection = pool.connection_class(**pool.connection_kwargs)
        self.channel = channel.encode()
        self.reader = hiredis.Reader()
        self.connection.connect()
        self.connection.send_command("SUBSCRIBE", channel)
        # a quiet channel is not a failure: wait for messages without redis-py's read timeout
        # (5 s by default); a dead peer is found by redis-py's TCP keepalive (30 s idle, then 3
        # probes 5 s apart), a restarted Redis by its close
        self.connection._sock.settimeout(None)

    def payloads(self) -> Iterator[bytes]:
        """The data of each message published to the channel, until the connection ends."""
        sock = self.connection._sock
        reader = self.reader
        channel = self.channel
        while True:
            reply = reader.gets()
            if reply is False:
                chunk = sock.recv(READ_BYTES)
                if not chunk:
                    raise ConnectionError("Redis closed the subscription")
                reader.feed(chunk)
                continue
            if isinstance(reply, hiredis.ReplyError):
                raise ConnectionError(f"Redis refused the subscription: {reply}")
            if (isinstance(reply, list) and len(reply) == 3 and reply[0] == b"message"
                    and reply[1] == channel):
                yield reply[2]

    def close(self) -> None:
        self.connection.disconnect()
