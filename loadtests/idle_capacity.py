"""`make capacity`'s memory probe: idle connections in rooms through the front door, for this
service and the Node.js Socket.IO reference behind the same nginx configuration, measured against
issue 25's targets.

For each system (MEMORY_SYSTEMS, default rooms,node-reference), each count (MEMORY_CONNECTIONS,
default 3000,15000) and each size of the Socket.IO location's relay buffers (PROXY_BUFFER_SIZES,
default 1k, the template's; `default` is nginx's own, one page), on a cluster of its own (one node,
nginx, Redis):

- memory: lean clients (lean_client.py) connect through the front door, each joining a room of 30,
  a tenth first, then the rest in steps of GROW_STEP (3000); like Socket.IO clients, one that is
  refused (nginx answers 503 when the node's accept queue overflows in a burst) tries again with
  jittered backoff for up to CONNECT_RETRY_S (60); `connect_retries` counts those attempts.
  Resident memory is read per part once it settles, at a tenth and at all (the slope between
  them, so that a process freeing its start-up garbage meanwhile, as Node's V8 does, is not
  counted against the connections): per idle connection, the node's own, nginx's, Redis's and all
  of them; the ratio to the reference's.
- pings: the idle connections' CPU over a quiet window of IDLE_WINDOW_S (25 s, one ping
  interval of both systems: each connection is pinged once in it, whatever the phase), per second
  of the window, for the node, nginx and Redis, with the load generator's beside it.
- reconnect storm: STORM_CONNECTIONS (3000) of the connected clients have their connections cut at
  once (the clients close them), then all connect again at once and rejoin their rooms, retrying
  with jittered backoff on a refusal. The time from the cut until all are served (connected,
  welcomed, joined) must be within STORM_BOUND_S (30) for this service, or the probe fails; a
  client still unserved STORM_GIVE_UP_S (90) after the cut counts as failed. PROFILE_STORM=1
  samples the node with py-spy through the storm (storm_profiler).

15,000 connections through one front door from one machine: the clients bind no address (the
kernel picks their ports per destination, so they and nginx's connections to the node each have
the ephemeral range: node_capacity.py's source_of says why binding would starve nginx); nginx's
workers hold 19,000 connections each (nginx/local.conf.template), the node gets
WORKER_CONNECTIONS = count + 1000; the open-file hard limit is 20,000 per process.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

from loadtests.node_capacity import ACCOUNTS, env_number

ROOT = Path(__file__).resolve().parent.parent
PARTS = ("node", "nginx", "redis")
# issue 25's targets, per idle connection in a room through the front door
NODE_KB_TARGET, SERVER_KB_TARGET, REFERENCE_RATIO_TARGET = 12.0, 27.0, 0.75


def counts_from_env(name: str, default: str) -> list[int]:
    value = os.environ.get(name) or default
    try:
        counts = [int(part) for part in value.split(",")]
    except ValueError:
        raise SystemExit(f"{name} must list connection counts like 3000,15000, got {value!r}") \
            from None
    if not counts or min(counts) < 10:
        raise SystemExit(f"{name} must list counts of at least 10, got {value!r}")
    return counts


def buffer_sizes_from_env() -> list[str]:
    value = os.environ.get("PROXY_BUFFER_SIZES") or "1k"
    sizes = value.split(",")
    for size in sizes:
        if size != "default" and not re.fullmatch(r"[1-9][0-9]*[kK]?", size):
            raise SystemExit(f"PROXY_BUFFER_SIZES must list sizes like 1k,4k or default, got "
                             f"{value!r}")
    return sizes


def part_of(name: str) -> str:
    """Which part of the system a cluster process is: the node, nginx or Redis."""
    if name.startswith("node-"):
        return "node"
    if name.startswith("nginx"):
        return "nginx"
    return "redis"


def processes_by_part(cluster: Any) -> dict[str, list[Any]]:
    import psutil

    parts: dict[str, list[Any]] = {part: [] for part in PARTS}
    for name, process in cluster.processes.items():
        root = psutil.Process(process.pid)
        parts[part_of(name)] += [root, *root.children(recursive=True)]
    return parts


def rss_mb(parts: dict[str, list[Any]]) -> dict[str, float]:
    import psutil

    found = {}
    for part, processes in parts.items():
        total = 0
        for process in processes:
            with contextlib.suppress(psutil.Error):
                total += process.memory_info().rss
        found[part] = total / 2**20
    return found


def cpu_s(processes: list[Any]) -> float:
    import psutil

    total = 0.0
    for process in processes:
        with contextlib.suppress(psutil.Error):
            times = process.cpu_times()
            total += times.user + times.system
    return total


def settled(read: Any, timeout: float = 20.0) -> dict[str, float]:
    """A reading (parts -> MB) once three in a row, half a second apart, differ in total by under
    0.3 MB (or the last one at the timeout)."""
    deadline = time.monotonic() + timeout
    readings = [read()]
    while time.monotonic() < deadline:
        time.sleep(0.5)
        readings.append(read())
        totals = [sum(reading.values()) for reading in readings[-3:]]
        if len(totals) == 3 and max(totals) - min(totals) < 0.3:
            break
    return readings[-1]


def set_proxy_buffer_size(cluster: Any, size: str) -> None:
    """The front door's Socket.IO location with relay buffers of `size` (`default`: nginx's
    own), by editing the rendered configuration and reloading nginx before any client came."""
    from cluster import find_binary

    conf_dir = cluster.run_dir / "nginx"
    path = conf_dir / "cluster.conf"
    text, changed = re.subn(r"\n(\s*)proxy_buffer_size 1k;",
                            "" if size == "default" else rf"\n\1proxy_buffer_size {size};",
                            path.read_text())
    if changed != 1:
        raise SystemExit("nginx/cluster.conf.template has no `proxy_buffer_size 1k;` to change")
    path.write_text(text)
    nginx = find_binary("nginx")
    check = subprocess.run([nginx, "-t", "-q", "-p", str(conf_dir), "-c", "nginx.conf"],
                           capture_output=True, text=True, check=False)
    if check.returncode != 0:
        raise SystemExit(f"nginx refused proxy_buffer_size {size}:\n{check.stderr}")
    import psutil

    master = psutil.Process(cluster.processes["nginx"].pid)
    old = {child.pid for child in master.children()}
    os.kill(master.pid, signal.SIGHUP)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        workers = {child.pid for child in master.children()}
        if workers and not workers & old and len(workers) == len(old):
            return
        time.sleep(0.1)
    raise SystemExit("nginx did not replace its workers after the reload")


def storm_profiler(cluster: Any, name: str, give_up_s: float) -> subprocess.Popen | None:
    """With PROFILE_STORM=1, py-spy samples this service's node (gunicorn's worker) through the
    storm into storm-profile.txt (collapsed stacks) in the run's folder: where the time goes.
    The sampling takes CPU of its own, so the storm's figures of such a run are not the ones to
    report."""
    import psutil

    if os.environ.get("PROFILE_STORM") != "1" or name != "rooms":
        return None
    master = psutil.Process(cluster.processes["node-1"].pid)
    [worker] = master.children() or [master]
    spy = ROOT / ".venv" / "bin" / "py-spy"
    return subprocess.Popen([str(spy), "record", "--pid", str(worker.pid), "--nonblocking",
                             "--format", "raw", "--duration", str(int(give_up_s) + 10),
                             "-o", str(cluster.run_dir / "storm-profile.txt")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def percentile(values: list[float], share: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def one_run(folder: Path, limits: dict[str, str], receivers_class: Any, name: str,
            command: Any, count: int, buffer_size: str, ports: int) -> dict[str, Any]:
    """One system at one count and buffer size, on a cluster of its own."""
    import psutil
    from cluster import Cluster

    from loadtests.run import env_int, prepare_tokens

    grow_step = env_int("GROW_STEP", 3000)
    window_s = env_number("IDLE_WINDOW_S", 25)
    storm_count = min(count, env_int("STORM_CONNECTIONS", 3000))
    storm_bound_s = env_number("STORM_BOUND_S", 30)
    give_up_s = max(storm_bound_s, env_number("STORM_GIVE_UP_S", 90))
    retry_s = env_number("CONNECT_RETRY_S", 60)
    cluster = Cluster(nodes=1, port=18360 + ports, redis_port=16360 + ports,
                      node_base_port=15360 + 10 * ports, node_command=command,
                      run_dir=folder / f"memory-{name}-{count}-{buffer_size}",
                      env={**limits, "WORKER_CONNECTIONS": str(count + 1000)})
    cluster.start()
    receivers = receivers_class()
    row: dict[str, Any] = {"system": name, "target_connections": count,
                           "proxy_buffer_size": buffer_size,
                           "machine_load_1m": round(os.getloadavg()[0], 2)}
    try:
        if buffer_size != "1k":
            set_proxy_buffer_size(cluster, buffer_size)
        tokens = json.loads(prepare_tokens(cluster.url, ACCOUNTS, folder).read_text())
        parts = processes_by_part(cluster)
        loadgen = [psutil.Process(child.pid) for child in receivers.children]
        loadgen_before = cpu_s(loadgen)
        started = time.monotonic()
        room = "memory-room-{n}"
        warm = receivers.grow(cluster.url, tokens, max(1, count // 10), room, front_door=True,
                              retry_s=retry_s)
        grown = [warm]
        before = settled(lambda: rss_mb(parts))
        while receivers.total < count and not grown[-1]["failed"]:
            step = min(grow_step, count - receivers.total)
            grown.append(receivers.grow(cluster.url, tokens, step, room, front_door=True,
                                        retry_s=retry_s))
            print(f"memory: {name}: {grown[-1]['open']} of {receivers.total} connections open",
                  flush=True)
        connect_s = time.monotonic() - started
        connect_cpu = cpu_s(loadgen) - loadgen_before
        after = settled(lambda: rss_mb(parts))
        held = grown[-1]["open"]
        measured = max(held - warm["open"], 1)
        per_kb = {part: round((after[part] - before[part]) * 1024 / measured, 1)
                  for part in PARTS}
        row.update({
            "connections": held,
            "failed": sum(g["failed"] for g in grown),
            "connect_retries": sum(g["retries"] for g in grown),
            "errors": [e for g in grown for e in g["errors"]][:5],
            "server_rss_mb_before": round(sum(before.values()), 1),
            "server_rss_mb_after": round(sum(after.values()), 1),
            "rss_mb_before": {part: round(mb, 1) for part, mb in before.items()},
            "rss_mb_after": {part: round(mb, 1) for part, mb in after.items()},
            "kb_per_connection": round(sum(per_kb.values()), 1),  # all server memory
            "node_kb_per_connection": per_kb["node"],
            "nginx_kb_per_connection": per_kb["nginx"],
            "redis_kb_per_connection": per_kb["redis"],
            "connect_s": round(connect_s, 1),
            "load_generator_cpu_s": round(connect_cpu, 1)})
        print(f"memory: {name} ({buffer_size} relay buffers): {held} idle connections in rooms "
              f"through the front door; per connection node {per_kb['node']} KB, nginx "
              f"{per_kb['nginx']} KB, Redis {per_kb['redis']} KB, all "
              f"{row['kb_per_connection']} KB (load generator {connect_cpu:.1f} s CPU to connect "
              f"them in {connect_s:.1f} s, {row['connect_retries']} refused and retried)",
              flush=True)

        # pings: a quiet window of one ping interval
        cpu_before = {part: cpu_s(processes) for part, processes in parts.items()}
        loadgen_before = cpu_s(loadgen)
        window_started = time.monotonic()
        time.sleep(window_s)
        window = time.monotonic() - window_started
        idle = {f"{part}_cpu_per_s": round((cpu_s(processes) - cpu_before[part]) / window, 4)
                for part, processes in parts.items()}
        idle["load_generator_cpu_per_s"] = round((cpu_s(loadgen) - loadgen_before) / window, 4)
        idle.update({"window_s": round(window, 1), "connections": held,
                     "open_after": receivers.open(),
                     "node_cpu_us_per_connection_per_s": round(
                         idle["node_cpu_per_s"] * 1e6 / max(held, 1), 2)})
        row["idle_cpu"] = idle
        print(f"memory: {name}: idle for {window:.0f} s: node {idle['node_cpu_per_s']:.4f} CPU "
              f"s/s ({idle['node_cpu_us_per_connection_per_s']} us/s a connection), nginx "
              f"{idle['nginx_cpu_per_s']:.4f}, Redis {idle['redis_cpu_per_s']:.4f}; load "
              f"generator {idle['load_generator_cpu_per_s']:.4f}", flush=True)

        # the reconnect storm
        if held >= storm_count:
            server_before = {part: cpu_s(processes) for part, processes in parts.items()}
            loadgen_before = cpu_s(loadgen)
            profiler = storm_profiler(cluster, name, give_up_s)
            storm = receivers.storm(cluster.url, tokens, storm_count, give_up_s)
            if profiler is not None:
                profiler.send_signal(signal.SIGINT)  # py-spy writes what it sampled
                profiler.wait(30)
            after_s = [served - storm["cut_at"] for served in storm["served_at"]]
            all_served_s = max(after_s) if after_s and not storm["failed"] else None
            row["storm"] = {
                "clients": storm["clients"], "bound_s": storm_bound_s, "give_up_s": give_up_s,
                "served": len(after_s), "failed": storm["failed"], "errors": storm["errors"],
                "all_served_s": round(all_served_s, 2) if all_served_s is not None else None,
                "within_bound": all_served_s is not None and all_served_s <= storm_bound_s,
                "served_within_bound": sum(s <= storm_bound_s for s in after_s),
                "p50_s": round(percentile(after_s, 0.5) or 0, 2),
                "p99_s": round(percentile(after_s, 0.99) or 0, 2),
                "attempts": storm["attempts"],
                "server_cpu_s": {part: round(cpu_s(processes) - server_before[part], 2)
                                 for part, processes in parts.items()},
                "load_generator_cpu_s": round(cpu_s(loadgen) - loadgen_before, 2)}
            verdict = row["storm"]
            print(f"memory: {name}: reconnect storm of {verdict['clients']}: "
                  f"{verdict['served']} served, all within {verdict['all_served_s']} s "
                  f"(bound {storm_bound_s:g} s; p50 {verdict['p50_s']} s, p99 "
                  f"{verdict['p99_s']} s, {verdict['attempts']} attempts, {verdict['failed']} "
                  f"failed); node {verdict['server_cpu_s']['node']} s CPU, load generator "
                  f"{verdict['load_generator_cpu_s']} s", flush=True)
    finally:
        receivers.stop()
        cluster.stop()
    return row


def idle_memory_probe(folder: Path, limits: dict[str, str],
                      receivers_class: Any) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The rows (a system at a count and buffer size each) and the targets' verdicts."""
    from loadtests.bench import REFERENCE, SYSTEMS

    counts = counts_from_env("MEMORY_CONNECTIONS", "3000,15000")
    buffer_sizes = buffer_sizes_from_env()
    commands = {"rooms": "gunicorn",
                "node-reference": next(s.command for s in SYSTEMS if s.name == REFERENCE)}
    wanted = (os.environ.get("MEMORY_SYSTEMS") or "rooms,node-reference").split(",")
    unknown = set(wanted) - set(commands)
    if unknown:
        raise SystemExit(f"MEMORY_SYSTEMS: unknown {sorted(unknown)}; choose from "
                         f"{sorted(commands)}")
    rows = []
    for count in counts:
        for buffer_size in buffer_sizes:
            for index, name in enumerate(wanted):
                rows.append(one_run(folder, limits, receivers_class, name, commands[name],
                                    count, buffer_size, index))
    return rows, judge(rows)


def judge(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Issue 25's targets for this service's rows, beside the reference's row of the same count
    and buffer size; `ok` is False when a storm was not all served within its bound or the node
    did not hold its connections (the memory targets are reported, not enforced)."""
    verdicts = []
    ok = True
    for row in rows:
        if row["system"] != "rooms":
            continue
        reference = next((r for r in rows if r["system"] == "node-reference"
                          and r["target_connections"] == row["target_connections"]
                          and r["proxy_buffer_size"] == row["proxy_buffer_size"]), None)
        ratio = (round(row["kb_per_connection"] / reference["kb_per_connection"], 2)
                 if reference and reference.get("kb_per_connection", 0) > 0
                 and "kb_per_connection" in row else None)
        held = row.get("connections", 0) >= row["target_connections"] and not row.get("failed")
        storm = row.get("storm")
        verdict = {
            "connections": row["target_connections"],
            "proxy_buffer_size": row["proxy_buffer_size"],
            "held": held,
            "node_kb_per_connection": row.get("node_kb_per_connection"),
            "node_kb_target": NODE_KB_TARGET,
            "node_kb_met": (row.get("node_kb_per_connection") or 1e9) <= NODE_KB_TARGET,
            "server_kb_per_connection": row.get("kb_per_connection"),
            "server_kb_target": SERVER_KB_TARGET,
            "server_kb_met": (row.get("kb_per_connection") or 1e9) <= SERVER_KB_TARGET,
            "reference_kb_per_connection": reference and reference.get("kb_per_connection"),
            "ratio_to_reference": ratio,
            "ratio_target": REFERENCE_RATIO_TARGET,
            "ratio_met": ratio is not None and ratio <= REFERENCE_RATIO_TARGET,
            "ping_cpu_per_s": (row.get("idle_cpu") or {}).get("node_cpu_per_s"),
            "storm_all_served_s": storm and storm["all_served_s"],
            "storm_bound_s": storm and storm["bound_s"],
            "storm_met": bool(storm and storm["within_bound"]),
        }
        verdicts.append(verdict)
        ok = ok and held and (storm is None or storm["within_bound"])
    return {"ok": ok, "rooms": verdicts}


def summary_lines(rows: list[dict[str, Any]], verdict: dict[str, Any]) -> list[str]:
    lines = ["system          conns  buf      node KB  nginx KB  redis KB  all KB  ping CPU s/s"
             "  storm s"]
    for row in rows:
        idle = row.get("idle_cpu") or {}
        storm = row.get("storm") or {}
        kb = [str(row.get(f"{part}_kb_per_connection", "-")) for part in PARTS]
        lines.append(
            f"{row['system']:15} {row.get('connections', 0):6} {row['proxy_buffer_size']:7} "
            f"{kb[0]:>8} {kb[1]:>9} {kb[2]:>9} {row.get('kb_per_connection', '-')!s:>7}"
            f" {idle.get('node_cpu_per_s', '-')!s:>13} {storm.get('all_served_s', '-')!s:>8}")
    for each in verdict["rooms"]:
        def met(key: str, each: dict = each) -> str:
            return "met" if each[key] else "NOT MET"

        lines.append(
            f"targets at {each['connections']} ({each['proxy_buffer_size']}): node "
            f"{each['node_kb_per_connection']} KB (<= {NODE_KB_TARGET:g}: {met('node_kb_met')}),"
            f" all {each['server_kb_per_connection']} KB (<= {SERVER_KB_TARGET:g}: "
            f"{met('server_kb_met')}), {each['ratio_to_reference']}x the reference (<= "
            f"{REFERENCE_RATIO_TARGET:g}: {met('ratio_met')}), held: {each['held']}, storm "
            f"{each['storm_all_served_s']} s (<= {each['storm_bound_s']}: {met('storm_met')})")
    return lines


def chart(axis: Any, rows: list[dict[str, Any]]) -> None:
    """Memory per idle connection by part, a bar per run."""
    shown = [row for row in rows if "kb_per_connection" in row]
    labels = [f"{row['system']}\n{row['connections']} ({row['proxy_buffer_size']})"
              for row in shown]
    bottom = [0.0] * len(shown)
    for part, color in zip(PARTS, ("tab:blue", "tab:orange", "tab:red"), strict=True):
        values = [max(0.0, row[f"{part}_kb_per_connection"]) for row in shown]
        axis.bar(range(len(shown)), values, bottom=bottom, color=color, label=part)
        bottom = [b + v for b, v in zip(bottom, values, strict=True)]
    axis.axhline(SERVER_KB_TARGET, color="tab:red", linestyle="--", label="all: target")
    axis.axhline(NODE_KB_TARGET, color="tab:blue", linestyle=":", label="node: target")
    axis.set_xticks(range(len(shown)), labels, fontsize=7)
    axis.set_ylabel("server memory per idle connection (KB)")
    axis.set_title("idle connections in rooms, through the front door")
    axis.legend(fontsize=7)
