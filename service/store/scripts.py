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

Replicated writes: with `replicas` > 0, a write is followed on the same connection by
`WAIT replicas timeout`, and `run(..., replicated=True)` returns only when that many replicas
have it. Otherwise it raises NotReplicated: the write is on the master (and was published), but
a failover now could lose it; the caller must not call it acknowledged.
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path
from typing import Any

import redis

from .pipeline import Pipeline
from .topology import Address, Topology

LUA = Path(__file__).with_name("lua")
NAMES = ("append", "after", "join", "leave", "reap_room", "read", "room_unread",
         "conversations")
PRELUDE = (LUA / "prelude.lua").read_text()
REDIRECTS = 5
TRYAGAIN_PAUSE_S = 0.05


class NotReplicated(redis.RedisError):
    """The write is on the master but not on enough replicas within the timeout."""


class Script:
    def __init__(self, name: str):
        self.name = name
        shebang, _, body = (LUA / f"{name}.lua").read_text().partition("\n")
        self.source = f"{shebang}\n{PRELUDE}{body}"
        self.sha = hashlib.sha1(self.source.encode(), usedforsecurity=False).hexdigest()


class Scripts:
    def __init__(self, topology: Topology, timeout_s: float = 5, replicas: int = 0,
                 replica_timeout_ms: int = 500):
        self.topology = topology
        self.timeout_s = timeout_s
        self.replicas = replicas
        self.replica_timeout_ms = replica_timeout_ms
        self.scripts = {name: Script(name) for name in NAMES}
        self._pipelines: dict[Address, Pipeline] = {}

    def pipeline(self, address: Address) -> Pipeline:
        pipeline = self._pipelines.get(address)
        if pipeline is None:
            pipeline = self._pipelines[address] = Pipeline(
                lambda: self.topology.connect(address, "scripts"), self.timeout_s)
        return pipeline

    def run(self, name: str, keys: list[str], args: list[Any], *,
            replicated: bool = False) -> Any:
        """Run script `name` on the master of `keys[0]`'s slot and return its reply."""
        script = self.scripts[name]
        command = ("EVALSHA", script.sha, len(keys), *keys, *args)
        wait = replicated and self.replicas > 0
        address = self.topology.address_of(keys[0])
        asking = False
        for _ in range(REDIRECTS):
            commands: list[tuple[Any, ...]] = [command]
            if asking:
                commands.insert(0, ("ASKING",))
            if wait:
                commands.append(("WAIT", self.replicas, self.replica_timeout_ms))
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
            if isinstance(reply, BaseException):
                if isinstance(reply, redis.ConnectionError | redis.TimeoutError):
                    self.topology.refresh_later()
                raise reply
            if wait:
                waited = replies[-1]
                if isinstance(waited, BaseException):
                    raise waited
                if int(waited) < self.replicas:
                    raise NotReplicated(
                        f"{waited} of {self.replicas} replicas confirmed the write within "
                        f"{self.replica_timeout_ms} ms")
            return reply
        raise redis.ConnectionError(f"script {name} was redirected {REDIRECTS} times")

    def close(self) -> None:
        for pipeline in self._pipelines.values():
            pipeline.close()
