"""`make bench PARTS=drops`: repeated network drops against this service and the Node reference.

Each system starts with the launcher (3 nodes, its own Redis and nginx), a DropsProxy in front of
its front door, and the drops probe (loadtests/drops_probe.js) through the proxy: senders and
receivers in a few rooms for DURATION while the proxy drops every connection every DROPS_UP_S
seconds and refuses new ones for DROPS_DOWN_S. When the probe stops sending, the proxy stops
dropping and the probe waits until everything settled. The systems, each with what its users
would do after a reconnect:
- rooms-3: this service (gevent); receivers join {room, since} (mode resume), senders resend with
  the same client_id;
- node-reference-3-streams: Node.js Socket.IO 4.8 on @socket.io/redis-streams-adapter with
  connection state recovery (server.js with ADAPTER=streams); receivers rely on
  `socket.recovered` and join {room, since} only when it is false (mode recovery).

Knobs: DURATION (the bench's), DROPS_UP_S (3), DROPS_DOWN_S (2), DROPS_ROOMS (4),
DROPS_SENDERS (per room, 2), DROPS_RECEIVERS (per room, 10), DROPS_RATE (messages per second per
sender, 5), DROPS_SETTLE_S (at most, 60), DROPS_SYSTEMS (names, comma-separated), DROPS_PORT_BASE
(30000: nodes +1.., front doors +80.., nginx status +90.., proxies +100.., Redis +110..).
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from cluster import ROOT, Cluster

from loadtests.drops_accounting import account
from loadtests.drops_proxy import DropsProxy
from loadtests.duration import env_duration

PROBE = ROOT / "loadtests" / "drops_probe.js"
SETUP_S = 180  # the most the probe may take to make its accounts and connect everyone


@dataclass(frozen=True)
class DropsSystem:
    name: str
    command: str | list[str]
    mode: str  # the probe's: resume or recovery
    description: str
    env: dict[str, str] = field(default_factory=dict)
    nodes: int = 3


SYSTEMS = [
    DropsSystem("rooms-3", "gunicorn", "resume",
                "this service, 3 nodes (gevent): join {room, since} after each reconnect",
                {"RATE_LIMIT_PER_S": "1000", "RATE_LIMIT_BURST": "2000"}),
    DropsSystem("node-reference-3-streams",
                ["node", str(ROOT / "loadtests/reference/node/server.js")], "recovery",
                "Node.js Socket.IO 4.8 + @socket.io/redis-streams-adapter 0.3 with connection "
                "state recovery, 3 nodes", {"ADAPTER": "streams"}),
]
THIS_SERVICE = "rooms-3"


@dataclass(frozen=True)
class Settings:
    duration_s: float
    up_s: float
    down_s: float
    rooms: int
    senders: int
    receivers: int
    rate: float
    settle_s: float
    port_base: int

    @classmethod
    def from_env(cls) -> Settings:
        def number(name: str, default: float) -> float:
            value = os.environ.get(name) or str(default)
            try:
                parsed = float(value)
            except ValueError:
                parsed = -1
            if parsed <= 0:
                raise SystemExit(f"{name} must be a positive number, got {value!r}")
            return parsed

        return cls(duration_s=env_duration("DURATION", 30), up_s=number("DROPS_UP_S", 3),
                   down_s=number("DROPS_DOWN_S", 2), rooms=int(number("DROPS_ROOMS", 4)),
                   senders=int(number("DROPS_SENDERS", 2)),
                   receivers=int(number("DROPS_RECEIVERS", 10)),
                   rate=number("DROPS_RATE", 5), settle_s=number("DROPS_SETTLE_S", 60),
                   port_base=int(number("DROPS_PORT_BASE", 30000)))


def choose(names: str | None) -> list[DropsSystem]:
    if not names:
        return list(SYSTEMS)
    wanted = [name.strip() for name in names.split(",")]
    unknown = set(wanted) - {system.name for system in SYSTEMS}
    if unknown:
        raise SystemExit(f"DROPS_SYSTEMS: unknown {sorted(unknown)}; choose from "
                         f"{[system.name for system in SYSTEMS]}")
    return [system for system in SYSTEMS if system.name in wanted]


def probe_argv(system: DropsSystem, settings: Settings, url: str, http: str,
               out: Path) -> list[str]:
    return ["node", str(PROBE), "--url", url, "--http", http, "--mode", system.mode,
            "--out", str(out), "--rooms", str(settings.rooms), "--senders", str(settings.senders),
            "--receivers", str(settings.receivers), "--duration", str(settings.duration_s),
            "--rate", str(settings.rate), "--settle", str(settings.settle_s)]


def run_probe(argv: list[str], proxy: DropsProxy, limit_s: float, log: Path) -> dict:
    """Runs the probe; stops the proxy's drops when the probe stops sending. Returns the drops
    and the connections they cut while the probe was sending."""
    counted = {"drops": 0, "connections_cut": 0}
    at_start = (0, 0)
    with log.open("w") as stderr:
        probe = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=stderr, text=True, cwd=ROOT)
    watchdog = threading.Timer(limit_s, probe.kill)
    watchdog.start()
    try:
        for line in probe.stdout or ():
            phase = json.loads(line).get("phase") if line.startswith("{") else None
            if phase == "sending":
                at_start = (proxy.drops, proxy.reset)
            elif phase == "settling":
                proxy.dropping = False
                counted.update(drops=proxy.drops - at_start[0],
                               connections_cut=proxy.reset - at_start[1])
        probe.wait()
    finally:
        watchdog.cancel()
    if probe.returncode != 0:
        raise SystemExit(f"the drops probe failed (exit {probe.returncode}); see {log}:\n"
                         f"{log.read_text()[-2000:]}")
    return counted


def run_system(system: DropsSystem, index: int, settings: Settings, folder: Path) -> dict:
    base = settings.port_base
    cluster = Cluster(nodes=system.nodes, port=base + 80 + index, status_port=base + 90 + index,
                      redis_port=base + 110 + index, node_base_port=base + 1 + 10 * index,
                      run_dir=folder / "systems" / f"drops-{system.name}", env=dict(system.env),
                      node_command=system.command)
    cluster.start()
    try:
        try:
            proxy = DropsProxy(("127.0.0.1", cluster.port), up_s=settings.up_s,
                               down_s=settings.down_s, listen_port=base + 100 + index)
        except OSError as error:
            raise SystemExit(f"the drops proxy cannot listen on {base + 100 + index} ({error}); "
                             "move it with DROPS_PORT_BASE") from None
        out = folder / f"drops-{system.name}.record.json"
        argv = probe_argv(system, settings, proxy.url, cluster.url, out)
        with proxy:
            counted = run_probe(argv, proxy, SETUP_S + settings.duration_s + settings.settle_s,
                                folder / f"drops-{system.name}.probe.log")
    finally:
        cluster.stop()
    row = {"system": system.name, "description": system.description, **counted,
           "up_s": settings.up_s, "down_s": settings.down_s}
    row.update(account(json.loads(out.read_text())))
    return row


def run(folder: Path) -> list[dict]:
    """Every chosen system through the drops, one after the other; a row each."""
    settings = Settings.from_env()
    systems = choose(os.environ.get("DROPS_SYSTEMS"))
    print(f"drops: {[system.name for system in systems]}, {settings.rooms} rooms x "
          f"({settings.senders} senders, {settings.receivers} receivers), "
          f"{settings.rate:g} messages/s per sender for {settings.duration_s:g} s, dropping every "
          f"{settings.up_s:g} s for {settings.down_s:g} s; results in {folder}", flush=True)
    rows = []
    for index, system in enumerate(systems):
        started = time.monotonic()
        row = run_system(system, index, settings, folder)
        rows.append(row)
        print(f"  {system.name:26} delivered {row['delivered_percent']}%  missing "
              f"{row['missing']}  duplicates {row['duplicates']}  out of order "
              f"{row['out_of_order']}  drops {row['drops']}  "
              f"({time.monotonic() - started:.0f} s)", flush=True)
    return rows


def failures(rows: list[dict]) -> list[str]:
    """What this service must never do under drops: lose, repeat or reorder an acknowledged
    message, or leave a send unacknowledged once the network is back."""
    problems = []
    for row in rows:
        if row["system"] != THIS_SERVICE:
            continue
        if row["delivered_percent"] != 100.0:
            problems.append(f"{row['system']} delivered {row['delivered_percent']}%")
        for key in ("duplicates", "out_of_order", "unacknowledged_sends"):
            if row[key]:
                problems.append(f"{row['system']}: {row[key]} {key.replace('_', ' ')}")
    return problems
