"""What every Redis master looks like from this node: reachable, replicas in sync, memory full.

A background task (`watch_forever`) asks each master `INFO replication memory` every
PROBE_EVERY_S on a connection of its own, with PROBE_TIMEOUT_S to answer. Everything else reads
the last answers, so nothing that asks (readiness, the session gate, the metrics, the write path)
ever waits on Redis.

Guarantees
- `reachable(address)` is False once a probe of that master failed with a connection error
  (refused, reset, closed) or two probes in a row got no answer in time; True again at the first
  answer. `up()` is True while every master of the slot map is reachable; `down_for()` is how
  long it has been False (0 while it is True).
- `in_sync(address)`: the master's replicas that are online and acknowledged its stream within
  REPLICA_LAG_S (Redis replicas acknowledge every second), or None before the first answer. A
  write waits for min(ACK_REPLICAS, in_sync) of them (scripts.py): `degraded()` names the masters
  where that is fewer than ACK_REPLICAS.
- `full(address)`: the master refuses writes for want of memory (maxmemory reached under
  `noeviction`, or a write was refused with OOM since the last probe).
- Every change of these is logged once, when it starts and when it ends, tagged with the node.
- On a Redis Cluster a failed probe makes the slot map be read again, so a replica promoted in a
  failover is probed (and written to) as the master it became.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import redis

from .topology import Address, Topology

PROBE_EVERY_S = 0.5
PROBE_TIMEOUT_S = 1.5
REPLICA_LAG_S = 3
log = logging.getLogger("service.redis")


@dataclass
class MasterState:
    reachable: bool = True
    in_sync: int | None = None  # replicas online and acknowledging; None: not known yet
    is_master: bool = True
    used_memory: int = 0
    maxmemory: int = 0
    policy: str = ""
    full: bool = False
    timeouts: int = 0  # probes in a row that got no answer in time
    error: str = ""


def parse_info(text: str) -> dict[str, str]:
    """INFO's `field:value` lines as a dict (section headers and blank lines skipped)."""
    fields = {}
    for line in text.splitlines():
        name, sep, value = line.partition(":")
        if sep and not line.startswith("#"):
            fields[name.strip()] = value.strip()
    return fields


def replicas_in_sync(info: dict[str, str], max_lag_s: int = REPLICA_LAG_S) -> int:
    """How many `slaveN:ip=...,state=online,...,lag=L` lines are online with lag <= max_lag_s."""
    count = 0
    for name, value in info.items():
        if not (name.startswith("slave") and name[5:].isdigit()):
            continue
        entry = dict(part.split("=", 1) for part in value.split(",") if "=" in part)
        lag = entry.get("lag", "")
        if entry.get("state") == "online" and lag.isdigit() and int(lag) <= max_lag_s:
            count += 1
    return count


def memory_full(info: dict[str, str]) -> bool:
    maxmemory = int(info.get("maxmemory", "0") or 0)
    return (maxmemory > 0 and info.get("maxmemory_policy") == "noeviction"
            and int(info.get("used_memory", "0") or 0) >= maxmemory)


class RedisHealth:
    def __init__(self, topology: Topology, node: str, wanted_replicas: int,
                 monotonic: Callable[[], float] = time.monotonic):
        self.topology = topology
        self.node = node
        self.wanted_replicas = wanted_replicas
        self.monotonic = monotonic
        self.masters: dict[Address, MasterState] = {}
        self.probes = 0  # rounds completed
        self.oom_refusals = 0  # writes Redis refused for want of memory
        self._connections: dict[Address, Any] = {}
        self._down_at: float | None = None  # since when a master has been unreachable
        self._lock = threading.Lock()

    # ---- what others ask -----------------------------------------------------------------------

    def reachable(self, address: Address) -> bool:
        state = self.masters.get(address)
        return state is None or state.reachable

    def up(self) -> bool:
        return all(state.reachable for state in list(self.masters.values()))

    def unreachable(self) -> list[str]:
        return [_name(address) for address, state in sorted(list(self.masters.items()))
                if not state.reachable]

    def down_for(self) -> float:
        """Seconds since a master has been unreachable (0 while every one is reachable)."""
        down_at = self._down_at
        return 0.0 if down_at is None else self.monotonic() - down_at

    def in_sync(self, address: Address) -> int | None:
        state = self.masters.get(address)
        return None if state is None else state.in_sync

    def degraded(self) -> list[dict[str, Any]]:
        """The masters whose writes wait for fewer replicas than ACK_REPLICAS (fewer in sync)."""
        return [{"master": _name(address), "in_sync": state.in_sync,
                 "wanted": self.wanted_replicas}
                for address, state in sorted(list(self.masters.items()))
                if state.reachable and state.in_sync is not None
                and state.in_sync < self.wanted_replicas]

    def full(self, address: Address | None = None) -> bool:
        if address is not None:
            state = self.masters.get(address)
            return state is not None and state.full
        return any(state.full for state in list(self.masters.values()))

    def full_masters(self) -> list[str]:
        return [_name(address) for address, state in sorted(list(self.masters.items()))
                if state.full]

    def summary(self) -> dict[str, Any]:
        """For /readyz's body and the cluster page."""
        return {"up": self.up(), "unreachable": self.unreachable(), "degraded": self.degraded(),
                "full": self.full_masters()}

    # ---- what the write path reports -----------------------------------------------------------

    def refused_for_memory(self, address: Address) -> None:
        """A write to `address` was refused with OOM: full until a probe finds room again."""
        self.oom_refusals += 1
        state = self.masters.setdefault(address, MasterState())
        if not state.full:
            state.full = True
            log.error("node=%s redis master %s refuses writes: its memory is full (maxmemory); "
                      "sends answer `unavailable` until memory is freed", self.node,
                      _name(address))

    def measured_in_sync(self, address: Address, info_text: str) -> int:
        """Record what an `INFO replication` answer (asked on the write path) says; the count."""
        info = parse_info(info_text)
        state = self.masters.setdefault(address, MasterState())
        self._replicas_now(address, state, replicas_in_sync(info))
        return state.in_sync or 0

    # ---- probing -------------------------------------------------------------------------------

    def watch_forever(self, closed: Callable[[], bool], sleep: Callable[[float], None]) -> None:
        while not closed():
            try:
                self.probe_once()
            except Exception:
                log.exception("node=%s could not probe redis", self.node)
            sleep(PROBE_EVERY_S)
        self.close()

    def close(self) -> None:
        for address in list(self._connections):
            self._drop_connection(address)

    def probe_once(self) -> None:
        """Probe every master once (see the guarantees)."""
        masters = self.topology.masters()
        failed = False
        for address in masters:
            failed |= not self._probe(address)
        if failed and self.topology.target.cluster:
            with contextlib.suppress(redis.RedisError, OSError):
                self.topology.refresh()  # a failover promotes a replica elsewhere
        current = set(self.topology.masters())
        with self._lock:
            for gone in set(self.masters) - current:
                del self.masters[gone]
                connection = self._connections.pop(gone, None)
                if connection is not None:
                    with contextlib.suppress(Exception):
                        connection.disconnect()
            if all(state.reachable for state in self.masters.values()):
                self._down_at = None
            elif self._down_at is None:
                self._down_at = self.monotonic()
        self.probes += 1

    def _probe(self, address: Address) -> bool:
        state = self.masters.setdefault(address, MasterState())
        try:
            text = self._info(address)
        except redis.TimeoutError as error:
            self._drop_connection(address)
            state.timeouts += 1
            if state.timeouts >= 2:
                self._unreachable(address, state, f"no answer within {PROBE_TIMEOUT_S:g} s "
                                                  f"({error.__class__.__name__})")
            return False
        except (redis.RedisError, OSError) as error:
            self._drop_connection(address)
            self._unreachable(address, state, f"{error.__class__.__name__}: {error}")
            return False
        state.timeouts = 0
        info = parse_info(text)
        if not state.reachable:
            state.reachable = True
            log.info("node=%s redis master %s answers again", self.node, _name(address))
        state.error = ""
        state.is_master = info.get("role", "master") == "master"
        state.used_memory = int(info.get("used_memory", "0") or 0)
        state.maxmemory = int(info.get("maxmemory", "0") or 0)
        state.policy = info.get("maxmemory_policy", "")
        full = memory_full(info)
        if state.full and not full:
            log.info("node=%s redis master %s takes writes again: memory was freed", self.node,
                     _name(address))
        elif full and not state.full:
            log.error("node=%s redis master %s is full (%d of %d bytes, noeviction): writes "
                      "are refused until memory is freed", self.node, _name(address),
                      state.used_memory, state.maxmemory)
        state.full = full
        self._replicas_now(address, state, replicas_in_sync(info) if state.is_master else None)
        return True

    def _info(self, address: Address) -> str:
        connection = self._connections.get(address)
        if connection is None:
            connection = self.topology.connect(address, "health", timeout_s=PROBE_TIMEOUT_S)
            self._connections[address] = connection
        connection.send_command("INFO", "replication", "memory")
        reply = connection.read_response()
        return reply.decode() if isinstance(reply, bytes) else str(reply)

    def _drop_connection(self, address: Address) -> None:
        connection = self._connections.pop(address, None)
        if connection is not None:
            with contextlib.suppress(Exception):
                connection.disconnect()

    def _unreachable(self, address: Address, state: MasterState, why: str) -> None:
        state.error = why
        if state.reachable:
            state.reachable = False
            log.error("node=%s cannot reach redis master %s (%s)", self.node, _name(address),
                      why)
        self.topology.refresh_later()

    def _replicas_now(self, address: Address, state: MasterState, in_sync: int | None) -> None:
        wanted = self.wanted_replicas
        if wanted and in_sync is not None:
            before = state.in_sync
            if in_sync < wanted and (before is None or before >= wanted):
                log.warning("node=%s redis master %s has %d of %d replicas in sync: writes are "
                            "acknowledged after those there are (degraded) until one is back",
                            self.node, _name(address), in_sync, wanted)
            elif in_sync >= wanted and before is not None and before < wanted:
                log.info("node=%s redis master %s has %d replicas in sync again: writes wait "
                         "for %d", self.node, _name(address), in_sync, wanted)
        state.in_sync = in_sync


def _name(address: Address) -> str:
    return f"{address[0]}:{address[1]}"
