"""The store's Lua scripts, run on the master that holds their keys.

Every script gets all the keys and channels it touches as KEYS, all in one hash slot (keys.py),
and everything else as ARGV. It runs through one pipelined connection per master (pipeline.py),
by EVALSHA; a Redis that forgot the script (restarted, flushed, a new master) gets it again.

On a Redis Cluster a script may reach a master that no longer holds its slot:
- MOVED: the slot moved for good; the slot map is read again and the script sent to the new
  master (it did not run on the old one);
- ASK: the slot is migrating and these keys already left; the script goes to the target once,
  after ASKING;
- TRYAGAIN: the keys are split across a migration for a moment; it is sent again shortly.

Replicated writes (`run(..., replicated=True)`) with `replicas` (ACK_REPLICAS) > 0 wait for
the master's replicas that are in sync, as the Redis health probe last saw them (health.py), up
to `replicas`: the write is followed on the same connection by `WAIT n timeout`, and `run`
returns once n replicas have it. Fewer in time: the master is asked at once how many are in sync
now; if fewer than were waited for (one went away meanwhile), those that confirmed are enough;
otherwise it raises NotReplicated: the write is on the master (and was published), but a
failover now could lose it, and the caller must not call it acknowledged. A master with no
replica in sync takes writes alone (`degraded`, logged and shown by the probe).

`min_replicas` (ACK_MIN_REPLICAS) is the floor, Kafka's `min.insync.replicas`: when fewer
replicas than that are in sync, a replicated write is refused before it is written
(TooFewReplicas), and one that fewer confirmed raises NotReplicated. Set it to `replicas` to
refuse writes rather than take them with fewer copies.
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path
from typing import Any

import redis

from .health import RedisHealth
from .pipeline import Pipeline
from .topology import Address, Topology

LUA = Path(__file__).with_name("lua")
NAMES = ("append", "after", "join", "leave", "reap_room", "read", "room_unread", "bookkeeping",
         "conversations", "rules", "access", "member_add", "member_remove", "member_leave",
         "webhook_event", "webhook_take", "webhook_advance", "webhook_failed", "webhook_index")
PRELUDE = (LUA / "prelude.lua").read_text()
REDIRECTS = 5
TRYAGAIN_PAUSE_S = 0.05


class NotReplicated(redis.RedisError):
    """The write is on the master but not on enough replicas within the timeout."""


class TooFewReplicas(redis.RedisError):
    """Fewer replicas are in sync than ACK_MIN_REPLICAS: nothing was written."""


class Script:
    def __init__(self, name: str):
        self.name = name
        shebang, _, body = (LUA / f"{name}.lua").read_text().partition("\n")
        self.source = f"{shebang}\n{PRELUDE}{body}"
        self.sha = hashlib.sha1(self.source.encode(), usedforsecurity=False).hexdigest()


class Scripts:
    def __init__(self, topology: Topology, timeout_s: float = 5, replicas: int = 0,
                 replica_timeout_ms: int = 500, *, min_replicas: int = 0,
                 health: RedisHealth | None = None):
        self.topology = topology
        self.timeout_s = timeout_s
        self.replicas = replicas
        self.min_replicas = min_replicas
        self.replica_timeout_ms = replica_timeout_ms
        self.health = health
        self.scripts = {name: Script(name) for name in NAMES}
        self._pipelines: dict[Address, Pipeline] = {}

    def pipeline(self, address: Address) -> Pipeline:
        pipeline = self._pipelines.get(address)
        if pipeline is None:
            pipeline = self._pipelines[address] = Pipeline(
                lambda: self._connect(address), self.timeout_s)
        return pipeline

    def _connect(self, address: Address) -> redis.Connection:
        """A new connection for the pipeline; refused at once while the probe finds the master
        unreachable (callers get `unavailable` now, not after a connect timeout)."""
        if self.health is not None and not self.health.reachable(address):
            raise redis.ConnectionError(f"redis at {address[0]}:{address[1]} is unreachable "
                                        "from this node")
        return self.topology.connect(address, "scripts")

    def _replicas_to_wait_for(self, address: Address) -> int:
        """min(replicas, those in sync), at least min_replicas; TooFewReplicas when fewer than
        min_replicas are in sync."""
        in_sync = None if self.health is None else self.health.in_sync(address)
        if in_sync is None:
            return self.replicas
        if in_sync < self.min_replicas:
            raise TooFewReplicas(f"{in_sync} replicas in sync, ACK_MIN_REPLICAS is "
                                 f"{self.min_replicas}")
        return max(self.min_replicas, min(self.replicas, in_sync))

    def _confirmed(self, address: Address, asked: int, confirmed: int) -> None:
        """Raise NotReplicated unless `confirmed` replicas are enough (see the docstring)."""
        if confirmed >= asked:
            return
        in_sync_now = asked
        if self.health is not None:
            info = self.pipeline(address).execute("INFO", "replication")
            in_sync_now = self.health.measured_in_sync(address, info)
        needed = max(self.min_replicas, min(asked, in_sync_now))
        if confirmed < needed:
            raise NotReplicated(f"{confirmed} of {needed} replicas confirmed the write within "
                                f"{self.replica_timeout_ms} ms")

    def run(self, name: str, keys: list[str], args: list[Any], *,
            replicated: bool = False) -> Any:
        """Run script `name` on the master of `keys[0]`'s slot and return its reply."""
        script = self.scripts[name]
        command = ("EVALSHA", script.sha, len(keys), *keys, *args)
        replicate = replicated and self.replicas > 0
        address = self.topology.address_of(keys[0])
        asking = False
        for _ in range(REDIRECTS):
            asked = self._replicas_to_wait_for(address) if replicate else 0
            commands: list[tuple[Any, ...]] = [command]
            if asking:
                commands.insert(0, ("ASKING",))
            if asked:
                commands.append(("WAIT", asked, self.replica_timeout_ms))
            replies = self.pipeline(address).execute_all(commands)
            reply = replies[1] if asking else replies[0]
            asking = False
            if isinstance(reply, redis.ResponseError):
                message = str(reply)
                if message.startswith("NOSCRIPT"):
                    self.pipeline(address).execute("SCRIPT", "LOAD", script.source)
                    continue
                if message.startswith("MOVED"):
                    self.topology.refresh()
                    address = self.topology.address_of(keys[0])
                    continue
                if message.startswith("ASK"):
                    host, _, port = message.split()[2].rpartition(":")
                    address, asking = (host, int(port)), True
                    continue
                if message.startswith("TRYAGAIN"):
                    time.sleep(TRYAGAIN_PAUSE_S)
                    continue
                if message.startswith("OOM") and self.health is not None:
                    self.health.refused_for_memory(address)
            if isinstance(reply, BaseException):
                if isinstance(reply, redis.ConnectionError | redis.TimeoutError):
                    self.topology.refresh_later()
                raise reply
            if asked:
                waited = replies[-1]
                if isinstance(waited, BaseException):
                    raise waited
                self._confirmed(address, asked, int(waited))
            return reply
        raise redis.ConnectionError(f"script {name} was redirected {REDIRECTS} times")

    def bookkeeping(self, command: str, key: str, *args: Any) -> Any:
        """One write of the service's own bookkeeping (lua/bookkeeping.lua: SADD, ZADD, HSET,
        PEXPIRE), which Redis takes even when it refuses writes for want of memory."""
        return self.run("bookkeeping", [key], [command, *args])

    def close(self) -> None:
        for pipeline in self._pipelines.values():
            pipeline.close()
