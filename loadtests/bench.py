"""`make bench`: the same locust scenarios, the same load, against every system, in one run.

Systems: this service with 1, 2 and 3 nodes (gevent), with 3 nodes in eventlet mode, the Node.js
Socket.IO + @socket.io/redis-adapter reference with 3 nodes (loadtests/reference/node), and the
naive single Flask-SocketIO process without a message queue (loadtests/reference/naive_app.py).
Each runs behind the same nginx template with its own Redis, started and stopped by the launcher.

Writes bench-results/<time>/ (or BENCH_RESULTS): summary.json (a row per system and scenario),
bench.png, and each run's own load-test folder; prints a table with each row's ratio to the Node
reference. Exits non-zero if any run lost a message or had a send refused.

Then the scale series: the same small-room load (SCENARIO=smallrooms: rooms of 4, direct
messages too, SCALE_USERS users) against this service with 3, 6 and 9 nodes, on one Redis and on
a local Redis Cluster (3 masters, a replica each). Each run also starts one more node that the
front door does not know: it serves no room, and its CPU shows what a node pays for rooms it does
not serve. Writes scale.json and scale.png, prints the table, and the ratio of server CPU per
delivery at 9 nodes to 3 (the target: at most 1.15).

BASELINE_REV=<git revision> runs that revision of this service as well, with 3 nodes in the
comparison and in the scale series (checked out in a git worktree under the results folder, one
Redis only), for before and after figures in the same run.

REPEAT=N runs each configuration of the scale series N times and keeps the median (by server CPU
per delivery; every run's figure is in scale.json): single runs on a small shared machine vary
by several percent.

Every finished run of the series is appended to scale-runs.jsonl in the results folder; running
again with the same BENCH_RESULTS reuses those runs and does only the missing ones, so an
interrupted series resumes where it stopped.

Then the drops (loadtests/drops_bench.py): repeated network drops, a TCP proxy in front of the
front door that drops every connection every DROPS_UP_S (3) seconds and refuses new ones for
DROPS_DOWN_S (2), while senders send in several rooms with client_id and receivers resume: this
service (3 nodes, receivers join with `since`) against the Node reference on
@socket.io/redis-streams-adapter with connection state recovery (3 nodes). Writes drops.json and
drops.png, prints delivered % side by side with where each one's losses came from. Exits non-zero
if this service left any acknowledged message undelivered to a receiver, delivered one twice or
out of order, or left a send unacknowledged once the drops stopped. Sizes: DROPS_ROOMS (4),
DROPS_SENDERS (2 per room), DROPS_RECEIVERS (10 per room), DROPS_RATE (5 messages/s per sender).

Then the app on top (loadtests/app_bench.py): the chat scenario on 3 nodes as it is, with a send
hook and with webhooks on, against one lean backend (loadtests/app_receiver.py), in the same run:
sends per second, p99 and server CPU per delivery side by side, the backend's CPU beside them,
and whether webhook delivery kept up (every acknowledged send arrived as an event, with a lag
that does not grow). Writes app.json and app.png. Exits non-zero if webhooks fell behind.

Knobs: PARTS (compare,scale,drops,app), SCENARIOS (chat,fanout), SYSTEMS (names, comma-separated),
USERS (100), SCALE_USERS (300), SCALE_NODES (3,6,9), SCALE_REDIS (single,cluster), DURATION (30 s;
seconds or locust's forms such as 30s, 2m: loadtests/duration.py; the drops' sending time too),
SPAWN_RATE (50), PROCESSES (load-generating processes, default all cores), the DROPS_* knobs of
loadtests/drops_bench.py; `make bench` passes the same defaults as `make loadtest` (100 users,
45 s).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import matplotlib
import psutil

matplotlib.use("Agg")
import matplotlib.pyplot as plt

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "scripts")]

from cluster import VENV_BIN, Cluster  # noqa: E402

from loadtests import app_bench, drops_bench, drops_report  # noqa: E402
from loadtests.duration import env_duration, readable  # noqa: E402

REFERENCE = "node-reference-3"
NAIVE_COMMAND = ["sh", "-c", f'exec "{VENV_BIN / "gunicorn"}" -k gevent -w 1 -b "$BIND" '
                 "loadtests.reference.naive_app:app"]


@dataclass(frozen=True)
class System:
    name: str
    nodes: int
    command: str | list[str]
    description: str


SYSTEMS = [
    System("rooms-1", 1, "gunicorn", "this service, 1 node (gevent)"),
    System("rooms-2", 2, "gunicorn", "this service, 2 nodes (gevent)"),
    System("rooms-3", 3, "gunicorn", "this service, 3 nodes (gevent)"),
    System("rooms-eventlet-3", 3, "eventlet", "this service, 3 nodes, eventlet mode"),
    System(REFERENCE, 3, ["node", str(ROOT / "loadtests/reference/node/server.js")],
           "Node.js Socket.IO 4.8 + @socket.io/redis-adapter 8.3, 3 nodes"),
    System("naive-1", 1, NAIVE_COMMAND, "one Flask-SocketIO process, no message queue"),
]


def choose(names: str | None) -> list[System]:
    if not names:
        return list(SYSTEMS)
    wanted = [name.strip() for name in names.split(",")]
    unknown = set(wanted) - {system.name for system in SYSTEMS}
    if unknown:
        raise SystemExit(f"SYSTEMS: unknown {sorted(unknown)}; choose from "
                         f"{[system.name for system in SYSTEMS]}")
    return [system for system in SYSTEMS if system.name in wanted]


def cluster_pids(cluster: Cluster) -> list[int]:
    return [process.pid for process in cluster.processes.values()]


def run_scenario(system: System, cluster: Cluster, scenario: str, folder: Path,
                 users: str | None = None) -> dict:
    env = dict(os.environ, SCENARIO=scenario, HOST=cluster.url, RESULTS_DIR=str(folder),
               SERVER_PIDS=",".join(map(str, cluster_pids(cluster))),
               USERS=users or os.environ.get("USERS") or "100",
               DURATION=str(env_duration("DURATION", 30)),
               SPAWN_RATE=os.environ.get("SPAWN_RATE") or "50")
    run = subprocess.run([sys.executable, str(ROOT / "loadtests" / "run.py")], env=env, cwd=ROOT,
                         capture_output=True, text=True)
    path = folder / "summary.json"
    if not path.exists():
        print(run.stdout[-3000:], run.stderr[-3000:], sep="\n")
        raise SystemExit(f"{system.name} {scenario}: no summary (exit {run.returncode})")
    summary = json.loads(path.read_text())
    latency = summary["latency_ms"]["cross_node"]
    if latency["p50"] is None:  # one node: every delivery is same-node
        latency = summary["latency_ms"]["same_node"]
    delivered = max(summary["delivered"], 1)
    return {
        "system": system.name,
        "description": system.description,
        "nodes": system.nodes,
        "scenario": scenario,
        "users": summary["users"],
        "deliveries_per_s": summary["deliveries_per_s"],
        "p50_ms": latency["p50"],
        "p99_ms": latency["p99"],
        "lost": summary["lost"],
        "duplicates": summary["duplicates"],
        "retries": summary.get("retries", 0),
        "out_of_order": summary["out_of_order"],
        "server_cpu_s_per_1000": round(summary["server_cpu_s"] / delivered * 1000, 3),
        "delivered": summary["delivered"],
        "directs_received": summary.get("directs_received", 0),
        "send_failures": summary.get("send_failures") or {},
        "server_cpu_s": summary["server_cpu_s"],
        "server_cpu_s_by_program": summary["server_cpu_s_by_program"],
        "deliveries_per_server_cpu_s": round(delivered / max(summary["server_cpu_s"], 0.001)),
        "rss_kb_per_connection": round((summary["server_rss_mb_peak"]
                                        - summary["server_rss_mb_idle"]) * 1024
                                       / summary["users"], 1),
        "load_generator_busiest_process_cores": summary["load_generator_busiest_process_cores"],
    }


def bench_cluster(system: System, index: int, folder: Path,
                  env: dict[str, str] | None = None) -> Cluster:
    """`system`'s cluster, started, on the compare part's ports for `index`."""
    cluster = Cluster(nodes=system.nodes, port=18400 + index, redis_port=16400 + index,
                      node_base_port=15400 + 10 * index, run_dir=folder / "systems" / system.name,
                      env={"RATE_LIMIT_PER_S": "1000", "RATE_LIMIT_BURST": "2000", **(env or {})},
                      node_command=system.command)
    cluster.start()
    return cluster


def bench_system(system: System, index: int, scenarios: list[str], folder: Path) -> list[dict]:
    cluster = bench_cluster(system, index, folder)
    rows = []
    try:
        for scenario in scenarios:
            started = time.monotonic()
            row = run_scenario(system, cluster, scenario, folder / f"{system.name}-{scenario}")
            rows.append(row)
            print(f"  {system.name:18} {scenario:7} {row['deliveries_per_s']:9.1f} deliveries/s  "
                  f"p50 {row['p50_ms']} ms  p99 {row['p99_ms']} ms  lost {row['lost']}  "
                  f"out of order {row['out_of_order']}  ({time.monotonic() - started:.0f} s)",
                  flush=True)
    finally:
        cluster.stop()
    return rows


def with_ratios(rows: list[dict]) -> list[dict]:
    """Each row's ratio to the Node reference in the same scenario (higher is better)."""
    reference = {row["scenario"]: row for row in rows if row["system"] == REFERENCE}
    for row in rows:
        ref = reference.get(row["scenario"])
        if ref is None:
            continue
        row["ratio_deliveries_per_s"] = round(row["deliveries_per_s"] / ref["deliveries_per_s"], 2)
        row["ratio_deliveries_per_cpu"] = round(row["deliveries_per_server_cpu_s"]
                                                / max(ref["deliveries_per_server_cpu_s"], 1), 2)
        row["ratio_p99"] = round(ref["p99_ms"] / row["p99_ms"], 2) if row["p99_ms"] else None
    return rows


def print_table(rows: list[dict]) -> None:
    header = (f"{'system':18} {'scenario':8} {'deliv/s':>8} {'p50 ms':>7} {'p99 ms':>7} "
              f"{'lost':>4} {'disorder':>8} {'cpu s/1k':>8} {'KB/conn':>7} {'x deliv/s':>9} "
              f"{'x per cpu':>9} {'x p99':>6}")
    print(header)
    print("-" * len(header))
    for row in rows:
        print(f"{row['system']:18} {row['scenario']:8} {row['deliveries_per_s']:8.0f} "
              f"{row['p50_ms']:7.1f} {row['p99_ms']:7.1f} {row['lost']:4d} "
              f"{row['out_of_order']:8d} {row['server_cpu_s_per_1000']:8.3f} "
              f"{row['rss_kb_per_connection']:7.1f} {row.get('ratio_deliveries_per_s', '-'):>9} "
              f"{row.get('ratio_deliveries_per_cpu', '-'):>9} {row.get('ratio_p99', '-'):>6}")


def chart(rows: list[dict], scenarios: list[str], path: Path) -> None:
    figure, axes = plt.subplots(len(scenarios), 3, figsize=(15, 4 * len(scenarios)),
                                squeeze=False)
    for line, scenario in zip(axes, scenarios, strict=True):
        subset = [row for row in rows if row["scenario"] == scenario]
        names = [row["system"] for row in subset]
        colors = ["tab:gray" if name == REFERENCE else "tab:blue" for name in names]
        for axis, key, label in zip(line, ("deliveries_per_s", "deliveries_per_server_cpu_s",
                                           "p99_ms"),
                                    ("deliveries / s", "deliveries per server CPU second",
                                     "cross-node p99 (ms)"), strict=True):
            axis.bar(names, [row[key] for row in subset], color=colors)
            axis.set_title(f"{scenario}: {label}")
            axis.tick_params(axis="x", rotation=30, labelsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)


def cpu_seconds(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        try:
            for process in (psutil.Process(pid), *psutil.Process(pid).children(recursive=True)):
                times = process.cpu_times()
                total += times.user + times.system
        except psutil.Error:
            pass
    return total


def baseline_command(revision: str, folder: Path) -> list[str]:
    """A node command that serves an earlier revision of this service from a git worktree."""
    tree = folder / f"baseline-{revision}"
    if not tree.exists():
        subprocess.run(["git", "worktree", "add", "--detach", str(tree), revision], cwd=ROOT,
                       check=True, capture_output=True)
    conf = next(path for path in (tree / "service/node/gunicorn_conf.py",
                                  tree / "service/gunicorn_conf.py") if path.exists())
    app = "service.node.wsgi:app" if (tree / "service/node/wsgi.py").exists() else \
        "service.wsgi:app"
    return ["sh", "-c", f'cd "{tree}" && exec "{VENV_BIN / "gunicorn"}" -c "{conf}" {app}']


def scale_run(nodes: int, redis_mode: str, index: int, folder: Path,
              baseline: str | None = None) -> dict:
    """One run of the scale series: `nodes` serve the small-room load, one more serves nothing."""
    name = (f"rooms-{nodes}" + ("-cluster" if redis_mode == "cluster" else "")
            + (f"@{baseline}" if baseline else ""))
    system = System(name, nodes, "gunicorn", f"this service, {nodes} nodes, "
                    + ("a Redis Cluster (3 masters, 3 replicas)" if redis_mode == "cluster"
                       else "one Redis") + (f", revision {baseline}" if baseline else ""))
    cluster = Cluster(nodes=nodes, port=18500 + index, redis_port=16500 + 10 * index,
                      node_base_port=15500 + 20 * index, redis_mode=redis_mode,
                      run_dir=folder / "systems" / name,
                      node_command=baseline_command(baseline, folder) if baseline else "gunicorn",
                      env={"RATE_LIMIT_PER_S": "1000", "RATE_LIMIT_BURST": "2000"})
    cluster.start()
    try:
        idle = nodes + 1  # started after the front door: it gets no client
        cluster.start_node(idle, wait=False)
        cluster.wait_node_ready(idle)
        idle_pid = cluster.processes[cluster.node_name(idle)].pid
        idle_before, started = cpu_seconds([idle_pid]), time.monotonic()
        row = run_scenario(system, cluster, "smallrooms", folder / f"scale-{name}",
                           users=os.environ.get("SCALE_USERS") or "300")
        idle_cpu_s, elapsed = cpu_seconds([idle_pid]) - idle_before, time.monotonic() - started
    finally:
        cluster.stop()
    row.update(redis=redis_mode, revision=baseline or "this",
               node_cpu_s=round(row["server_cpu_s_by_program"].get("python", 0.0), 1),
               idle_node_cpu_percent=round(idle_cpu_s / elapsed * 100, 2))
    row["node_cpu_s_per_node_per_minute"] = round(
        row["node_cpu_s"] / nodes / max(elapsed, 1) * 60, 2)
    return row


def scale_series(folder: Path) -> list[dict]:
    sizes = [int(n) for n in (os.environ.get("SCALE_NODES") or "3,6,9").split(",")]
    modes = (os.environ.get("SCALE_REDIS") or "single,cluster").split(",")
    baseline = os.environ.get("BASELINE_REV")
    series = [(mode, None) for mode in modes] + ([("single", baseline)] if baseline else [])
    repeat = int(os.environ.get("REPEAT") or "1")
    users = int(os.environ.get("SCALE_USERS") or "300")
    journal = folder / "scale-runs.jsonl"
    done = [json.loads(line) for line in journal.read_text().splitlines()] \
        if journal.exists() else []
    rows = []
    runs = len(done)
    for mode, revision in series:
        for nodes in sizes:
            tries = [row for row in done if (row["redis"], row["revision"], row["nodes"],
                                             row["users"], "send_failures" in row)
                     == (mode, revision or "this", nodes, users, True)][:repeat]
            for _ in range(repeat - len(tries)):
                started = time.monotonic()
                row = scale_run(nodes, mode, runs, folder, revision)
                runs += 1
                tries.append(row)
                with journal.open("a") as out:
                    out.write(json.dumps(row) + "\n")
                print(f"  {row['system']:18} smallrooms {row['deliveries_per_s']:8.1f} "
                      f"deliveries/s  cpu {row['server_cpu_s_per_1000']:.3f} s/1000  idle node "
                      f"{row['idle_node_cpu_percent']}% cpu  lost {row['lost']}  "
                      f"refused {sum(row['send_failures'].values())}  "
                      f"({time.monotonic() - started:.0f} s)", flush=True)
            tries.sort(key=lambda r: r["server_cpu_s_per_1000"])
            median = dict(tries[len(tries) // 2])
            median["runs_cpu_s_per_1000"] = [r["server_cpu_s_per_1000"] for r in tries]
            median["lost"] = sum(r["lost"] for r in tries)
            rows.append(median)
    for mode, revision in series:
        subset = [row for row in rows
                  if row["redis"] == mode and row["revision"] == (revision or "this")]
        if subset:
            base = subset[0]["server_cpu_s_per_1000"]
            for row in subset:
                row["cpu_per_delivery_vs_first"] = round(row["server_cpu_s_per_1000"] / base, 2)
    if baseline:
        subprocess.run(["git", "worktree", "remove", "--force",
                        str(folder / f"baseline-{baseline}")], cwd=ROOT, check=False,
                       capture_output=True)
    return rows


def print_scale(rows: list[dict]) -> None:
    header = (f"{'system':18} {'redis':8} {'nodes':>5} {'deliv/s':>8} {'p50 ms':>7} "
              f"{'p99 ms':>7} {'lost':>4} {'cpu s/1k':>8} {'x vs 3':>6} {'node cpu s/min':>14} "
              f"{'idle node %':>11} {'loadgen':>7}")
    print(header)
    print("-" * len(header))
    for row in rows:
        print(f"{row['system']:18} {row['redis']:8} {row['nodes']:5d} "
              f"{row['deliveries_per_s']:8.0f} {row['p50_ms']:7.1f} {row['p99_ms']:7.1f} "
              f"{row['lost']:4d} {row['server_cpu_s_per_1000']:8.3f} "
              f"{row['cpu_per_delivery_vs_first']:6.2f} "
              f"{row['node_cpu_s_per_node_per_minute']:14.2f} "
              f"{row['idle_node_cpu_percent']:11.2f} "
              f"{row['load_generator_busiest_process_cores']:7.2f}")


def scale_chart(rows: list[dict], path: Path) -> None:
    figure, axes = plt.subplots(1, 3, figsize=(15, 4))
    lines = [("single", "this", "tab:blue", "one Redis"),
             ("cluster", "this", "tab:orange", "Redis Cluster")]
    lines += [("single", revision, "tab:gray", f"one Redis, {revision} (before)")
              for revision in sorted({row["revision"] for row in rows} - {"this"})]
    for mode, revision, color, label in lines:
        subset = [row for row in rows if row["redis"] == mode and row["revision"] == revision]
        if not subset:
            continue
        nodes = [row["nodes"] for row in subset]
        for axis, key in zip(axes, ("server_cpu_s_per_1000", "node_cpu_s_per_node_per_minute",
                                    "p99_ms"), strict=True):
            axis.plot(nodes, [row[key] for row in subset], marker="o", color=color, label=label)
    for axis, title in zip(axes, ("server CPU s per 1000 deliveries",
                                  "CPU s per node per minute", "cross-node p99 (ms)"),
                           strict=True):
        axis.set_title(title)
        axis.set_xlabel("nodes")
        axis.set_ylim(bottom=0)
        axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)


def main() -> int:
    parts = (os.environ.get("PARTS") or "compare,scale,drops,app").split(",")
    unknown = set(parts) - {"compare", "scale", "drops", "app"}
    if unknown:
        raise SystemExit(f"PARTS: unknown {sorted(unknown)}; choose from compare, scale, drops, "
                         f"app")
    folder = Path(os.environ.get("BENCH_RESULTS") or ROOT / "bench-results" /
                  time.strftime("%Y%m%d-%H%M%S")).resolve()  # nginx needs absolute paths
    duration = env_duration("DURATION", 30)  # refused here, before any system starts
    folder.mkdir(parents=True, exist_ok=True)
    failed = False
    if "compare" in parts:
        scenarios = (os.environ.get("SCENARIOS") or "chat,fanout").split(",")
        systems = choose(os.environ.get("SYSTEMS"))
        if baseline := os.environ.get("BASELINE_REV"):
            systems.append(System(f"rooms-3@{baseline}", 3, baseline_command(baseline, folder),
                                  f"this service, 3 nodes (gevent), revision {baseline}"))
        print(f"bench: {len(systems)} systems x {scenarios}, {os.environ.get('USERS') or 100} "
              f"users, {readable(duration)} each, on {psutil.cpu_count()} cores; "
              f"results in {folder}", flush=True)
        rows: list[dict] = []
        for index, system in enumerate(systems):
            rows += bench_system(system, index, scenarios, folder)
        rows = with_ratios(rows)
        (folder / "summary.json").write_text(json.dumps(rows, indent=2) + "\n")
        chart(rows, scenarios, folder / "bench.png")
        print_table(rows)
        failed = failed or any(row["lost"] or row["send_failures"] for row in rows)
    if "scale" in parts:
        print(f"scale series: smallrooms, {os.environ.get('SCALE_USERS') or 300} users; results "
              f"in {folder}", flush=True)
        scale = scale_series(folder)
        (folder / "scale.json").write_text(json.dumps(scale, indent=2) + "\n")
        scale_chart(scale, folder / "scale.png")
        print_scale(scale)
        failed = failed or any(row["lost"] or row.get("send_failures") for row in scale)
    if failed:
        print("FAILED: a run lost messages or had sends refused (send_failures)")
    if "app" in parts:
        print(f"app on top: chat as it is, with a send hook, with webhooks; results in {folder}",
              flush=True)
        app = app_bench.run(folder)
        (folder / "app.json").write_text(json.dumps(app, indent=2) + "\n")
        app_bench.chart(app, folder / "app.png")
        app_bench.print_table(app)
        if problems := app_bench.failures(app):
            print("FAILED with the app on top: " + "; ".join(problems))
            failed = True
    if "drops" in parts:
        drops = drops_bench.run(folder)
        (folder / "drops.json").write_text(json.dumps(drops, indent=2) + "\n")
        drops_report.chart(drops, folder / "drops.png")
        drops_report.print_table(drops)
        if problems := drops_bench.failures(drops):
            print("FAILED under drops: " + "; ".join(problems))
            failed = True
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
