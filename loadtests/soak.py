"""`make soak`: the chat load for a long time against a 3-node cluster of its own, watching memory.

Starts redis-server (or, with SOAK_REDIS=cluster, a local Redis Cluster), 3 gunicorn/gevent nodes
and nginx with the launcher (scripts/cluster.py), runs the chat scenario of `make loadtest` with
locust for SOAK_DURATION, and meanwhile samples the resident memory of every process (each
node's gunicorn master and worker, nginx's master and workers, every redis-server and its own
used_memory, locust's processes) every SOAK_SAMPLE_S seconds. Prints a line each minute of the
load: the minute's deliveries and p99, every node worker's RSS and locust's.

Knobs: SOAK_DURATION (30m; seconds or locust's forms such as 90s, 5m, 1h30m:
loadtests/duration.py), USERS (100), SPAWN_RATE (50), PROCESSES (locust processes, default all
cores), SOAK_SAMPLE_S (10), SOAK_SETTLE_S (120: never judged for growth before), SOAK_REDIS
(single|cluster), SOAK_PORT_BASE (31000: front door +80, its nginx status +180, Redis +379 (a
Redis Cluster +371..+376, and Redis's cluster bus 10000 above each), nodes +1..+3), SOAK_RESULTS
(the results folder).

Writes soak-results/<time>/ (or SOAK_RESULTS): soak.json (settings, the ledger's counts, errors,
p50/p99 of delivery latency and send ack time per minute, every process's memory series and the
leak judgement of each: loadtests/soak_analysis.py), soak.png, locust's CSV files and log, the
cluster's logs; and prints the summary.

Exits 1 when a message was lost, duplicated or delivered out of order, when nothing was owed at
all, or when a process of the cluster exited during the run; with locust's own code if locust
failed. A process whose memory grows steadily is reported (POSSIBLE LEAK), not failed on.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import redis

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "scripts")]

from cluster import Cluster, setting  # noqa: E402

from loadtests.accounting import account, load_ledgers  # noqa: E402
from loadtests.duration import env_duration, readable  # noqa: E402
from loadtests.run import DRAIN_S, env_int, live_nodes, prepare_tokens  # noqa: E402
from loadtests.soak_chart import chart  # noqa: E402
from loadtests.soak_memory import MB, ProcessTable, Role, Sampler  # noqa: E402
from loadtests.soak_report import build, summary  # noqa: E402
from loadtests.soak_timeline import FLUSH_S, load, per_minute  # noqa: E402
from service.settings.table import BY_NAME  # noqa: E402
from service.store.messages import IDEMPOTENCY_S  # noqa: E402

NODES = 3


def env_seconds(name: str, default: float, low: float) -> float:
    value = os.environ.get(name) or str(default)
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if not seconds >= low:
        raise SystemExit(f"{name} must be a number of seconds of at least {low}, got {value!r}")
    return seconds


def settings_from_env() -> dict[str, Any]:
    mode = os.environ.get("SOAK_REDIS") or "single"
    if mode not in ("single", "cluster"):
        raise SystemExit(f"SOAK_REDIS must be single or cluster, got {mode!r}")
    return {"duration_s": env_duration("SOAK_DURATION", 1800), "users": env_int("USERS", 100),
            "spawn_rate": env_int("SPAWN_RATE", 50),
            "processes": env_int("PROCESSES", os.cpu_count() or 1),
            "sample_s": env_seconds("SOAK_SAMPLE_S", 10, 0.5),
            "settle_s": env_seconds("SOAK_SETTLE_S", 120, 0), "redis": mode, "nodes": NODES,
            "port_base": setting("SOAK_PORT_BASE", os.environ.get("SOAK_PORT_BASE") or 31000,
                                 1024, 65000, "a port"),
            "redis_fill_s": redis_fill_s()}


def redis_fill_s() -> float:
    """How long the chat load takes to fill Redis: every room's stream up to ROOM_HISTORY_MAX
    (each room gets ROOM_SIZE x SEND_RATE messages a second), and each send's idempotency key
    kept IDEMPOTENCY_S; Redis's data stays flat after that."""
    room_rate = (float(os.environ.get("ROOM_SIZE") or 10)
                 * float(os.environ.get("SEND_RATE") or 1))
    return max(BY_NAME["ROOM_HISTORY_MAX"].default / room_rate, IDEMPOTENCY_S)


def make_cluster(settings: dict[str, Any], folder: Path) -> Cluster:
    base, clustered = settings["port_base"], settings["redis"] == "cluster"
    return Cluster(nodes=NODES, port=base + 80, status_port=base + 180,
                   redis_port=base + (371 if clustered else 379), node_base_port=base + 1,
                   redis_mode=settings["redis"], run_dir=folder / "cluster",
                   env={"RATE_LIMIT_PER_S": "200", "RATE_LIMIT_BURST": "400"})


def roles(cluster: Cluster, locust_pid: int) -> list[Role]:
    """The cluster's processes (a node's and nginx's children are their workers) and locust's."""
    found = []
    for name, process in cluster.processes.items():
        if name.startswith(("node-", "nginx")):
            found.append(Role(f"{name} master", process.pid, f"{name} worker"))
        else:
            found.append(Role(name, process.pid))
    return [*found, Role("locust", locust_pid, "locust worker")]


def redis_memory(cluster: Cluster):
    """A probe of every redis-server's used_memory (MB), labelled as its process."""
    clients = {("redis" if not cluster.clustered else f"redis-{port}"):
               redis.Redis(port=port, password=cluster.redis_password, socket_timeout=5)
               for port in cluster.redis_ports()}
    return lambda: {label: round(client.info("memory")["used_memory"] / MB, 2)
                    for label, client in clients.items()}


def locust_argv(settings: dict[str, Any], host: str, run_s: int, folder: Path) -> list[str]:
    argv = [sys.executable, "-m", "locust", "-f", str(ROOT / "loadtests" / "soak_locustfile.py"),
            "ChatUser", "--headless", "--host", host, "--users", str(settings["users"]),
            "--spawn-rate", str(settings["spawn_rate"]), "--run-time", f"{run_s}s",
            "--csv", str(folder / "locust"), "--only-summary", "--exit-code-on-error", "0",
            "--stop-timeout", "5"]
    if settings["processes"] > 1:
        argv += ["--processes", str(settings["processes"])]
    return argv


def progress(minute: int, minutes: int, folder: Path, sampler: Sampler) -> None:
    rows = per_minute(load(folder), last=minute)
    row, rss = rows[-1], sampler.latest("rss")
    workers = "/".join(f"{rss[label]:.0f}" for label in sorted(rss) if
                       label.startswith("node-") and "worker" in label)
    loadgen = sum(mb for label, mb in rss.items() if label.startswith("locust"))
    p99 = row["delivery_p99_ms"]
    print(f"  minute {minute + 1}/{minutes}: {row['deliveries']:,} deliveries "
          f"({sum(r['deliveries'] for r in rows):,} in all), p99 "
          f"{'-' if p99 is None else f'{p99:.1f}'} ms, errors {row['errors']}; RSS node workers "
          f"{workers} MB, locust {loadgen:.0f} MB", flush=True)


def watch(locust: subprocess.Popen, t0: float, minutes: int, folder: Path,
          sampler: Sampler) -> None:
    """Until locust exits: a progress line for each of the first `minutes` minutes, once the
    timelines' last flush of it is in."""
    minute = 0
    while True:
        report_at = t0 + (minute + 1) * 60 + FLUSH_S + 1
        try:
            locust.wait(timeout=max(0.0, report_at - time.monotonic()))
            return
        except subprocess.TimeoutExpired:
            if minute < minutes:
                progress(minute, minutes, folder, sampler)
            minute += 1


def run_load(settings: dict[str, Any], cluster: Cluster, folder: Path) -> dict[str, Any]:
    """The load with its sampler and progress lines; the report's inputs."""
    tokens = prepare_tokens(cluster.url, settings["users"], folder)
    run_s = int(settings["users"] / settings["spawn_rate"] + settings["duration_s"] + DRAIN_S + 1)
    load_s = run_s - DRAIN_S  # from locust's start until its users stop sending
    t0_epoch, t0 = time.time(), time.monotonic()
    env = dict(os.environ, SCENARIO="chat", USERS=str(settings["users"]),
               LOADTEST_TOKENS=str(tokens), LOADTEST_RESULTS=str(folder),
               LOADTEST_RUN_ID=time.strftime("%H%M%S") + os.urandom(3).hex(),
               LOADTEST_STOP_SENDING_AT=str(t0_epoch + load_s), SOAK_T0=str(t0_epoch),
               PYTHONPATH=str(ROOT))
    with (folder / "locust.log").open("ab") as log:
        locust = subprocess.Popen(locust_argv(settings, cluster.url, run_s, folder), env=env,
                                  cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    table = ProcessTable(lambda: roles(cluster, locust.pid))
    sampler = Sampler({"rss": table, "redis": redis_memory(cluster)}, settings["sample_s"], t0)
    sampler.start()
    try:
        watch(locust, t0, -(-settings["duration_s"] // 60), folder, sampler)
    finally:
        if locust.poll() is None:
            locust.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                locust.wait(15)
            locust.kill()
            locust.wait()
        sampler.stop()
    tokens_list = json.loads(tokens.read_text())
    tokens.unlink()
    if locust.returncode not in (0, 1):
        tail = (folder / "locust.log").read_text(errors="replace")[-3000:]
        raise SystemExit(f"locust exited with {locust.returncode}:\n{tail}")
    return {"load_s": load_s, "elapsed_s": time.monotonic() - t0, "rss": sampler.series["rss"],
            "pids": table.pids, "redis_memory": sampler.series["redis"],
            "nodes_live": live_nodes(cluster.url, tokens_list[0])}


def main() -> int:
    settings = settings_from_env()
    folder = Path(os.environ.get("SOAK_RESULTS") or ROOT / "soak-results" /
                  time.strftime("%Y%m%d-%H%M%S")).resolve()  # nginx needs absolute paths
    folder.mkdir(parents=True, exist_ok=True)
    for stale in [*folder.glob("ledger-*.json"), *folder.glob("timeline-*.json")]:
        stale.unlink()  # a reused folder must not mix runs
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stop the cluster on the way out
    cluster = make_cluster(settings, folder)
    print(f"soak: chat, {settings['users']} users, {readable(settings['duration_s'])}, "
          f"{NODES} nodes on {'a Redis Cluster' if cluster.clustered else 'one Redis'} "
          f"({cluster.describe_ports()}); memory every {settings['sample_s']:g} s; results in "
          f"{folder}", flush=True)
    cluster.start()
    try:
        measured = run_load(settings, cluster, folder)
        exited = {name: process.returncode for name, process in cluster.processes.items()
                  if process.poll() is not None}
    finally:
        cluster.stop()
    for data in ("redis", "redis-cluster"):  # the AOF of the run's messages: nobody's to keep
        shutil.rmtree(folder / "cluster" / data, ignore_errors=True)
    report = build(settings={**settings, "nodes_live": measured.pop("nodes_live")},
                   accounting=account(load_ledgers(folder)), timeline=load(folder),
                   exited=exited, **measured)
    (folder / "soak.json").write_text(json.dumps(report, indent=1) + "\n")
    chart(report, folder / "soak.png")
    print(summary(report))
    print(f"results: {folder / 'soak.json'}, {folder / 'soak.png'}")
    if not report["clean"]:
        print("FAILED: messages were lost, duplicated or out of order, none were owed, or a "
              "process of the cluster exited")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
