"""`make loadtest-capacity`: how many users one locust process holds before it is the bottleneck.

Runs one scenario (default fanout, where a delivery costs the load generator about three times
what it costs the service) at growing USERS with a single locust process pinned to the last CPU
and the local cluster pinned to the others, so the two do not take each other's time. Each step
is a full `loadtests/run.py` run with its own results folder; the steps are collected in
capacity.json and capacity.png.

The limit is the last step whose locust process stayed under LOADGEN_LIMIT_CORES of its core;
past it, latency figures measure the load generator's queue rather than the service.

Knobs: SCENARIO, CAPACITY_STEPS (users per step, default 50,100,150,200,250,300), DURATION
(per step, default 20 s; seconds or locust's forms such as 30s, 2m: loadtests/duration.py), HOST
(local only: the cluster is pinned and, if need be, started).
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import matplotlib
import psutil

matplotlib.use("Agg")
import matplotlib.pyplot as plt

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "scripts")]

from cluster import Cluster  # noqa: E402

from loadtests.duration import env_duration, readable  # noqa: E402
from loadtests.run import LOADGEN_LIMIT_CORES, LOCAL_HOST, answers  # noqa: E402


def steps_from_env() -> list[int]:
    value = os.environ.get("CAPACITY_STEPS") or "50,100,150,200,250,300"
    try:
        steps = [int(part) for part in value.split(",")]
    except ValueError:
        raise SystemExit(f"CAPACITY_STEPS must list user counts like 50,100, got {value!r}") \
            from None
    if not steps or min(steps) < 1:
        raise SystemExit(f"CAPACITY_STEPS must list positive user counts, got {value!r}")
    return sorted(steps)


def cluster_processes(cluster: Cluster | None) -> list[psutil.Process]:
    """Every process of the local cluster: children of our Cluster or of a running `make run`."""
    if cluster is not None:
        roots = [psutil.Process(process.pid) for process in cluster.processes.values()]
    else:
        roots = [process for process in psutil.process_iter(["cmdline"])
                 if "scripts/cluster.py" in " ".join(process.info["cmdline"] or [])]
    found = []
    for root in roots:
        with contextlib.suppress(psutil.Error):
            found += [root, *root.children(recursive=True)]
    return found


def set_affinity(processes: list[psutil.Process], cpus: list[int]) -> None:
    for process in processes:
        with contextlib.suppress(psutil.Error):
            process.cpu_affinity(cpus)


def run_step(users: int, scenario: str, duration: int, loadgen_cpu: int, folder: Path) -> dict:
    env = dict(os.environ, SCENARIO=scenario, USERS=str(users), DURATION=str(duration),
               PROCESSES="1", LOADGEN_CPUS=str(loadgen_cpu), RESULTS_DIR=str(folder),
               SPAWN_RATE=os.environ.get("SPAWN_RATE") or "50", HOST=LOCAL_HOST)
    result = subprocess.run([sys.executable, str(ROOT / "loadtests" / "run.py")], env=env,
                            cwd=ROOT, capture_output=True, text=True)
    summary_path = folder / "summary.json"
    if not summary_path.exists():
        print(result.stdout[-2000:], result.stderr[-2000:], sep="\n")
        raise SystemExit(f"step with {users} users produced no summary (exit {result.returncode})")
    summary = json.loads(summary_path.read_text())
    summary["clean"] = result.returncode == 0
    return summary


def chart(steps: list[dict], scenario: str, path: Path) -> None:
    users = [step["users"] for step in steps]
    figure, (cores, latency) = plt.subplots(2, 1, figsize=(9, 8), sharex=True)
    cores.plot(users, [s["load_generator_busiest_process_cores"] for s in steps], "o-",
               color="tab:red", label="locust process (cores)")
    cores.plot(users, [s["server_cpu_s"] / s["duration_s"] for s in steps], "s-",
               color="tab:gray", label="service nodes (cores, mean)")
    cores.axhline(LOADGEN_LIMIT_CORES, color="tab:red", linestyle=":", label="load generator limit")
    cores.set_ylabel("cores")
    cores.legend(fontsize=8)
    cores.set_title(f"One locust process, scenario {scenario}")
    twin = cores.twinx()
    twin.plot(users, [s["deliveries_per_s"] for s in steps], "^--", color="tab:green",
              label="deliveries/s")
    twin.set_ylabel("deliveries / s")
    twin.legend(fontsize=8, loc="lower right")
    for kind, color in (("same_node", "tab:blue"), ("cross_node", "tab:orange")):
        for p, style in (("p50", "o-"), ("p99", "o:")):
            latency.plot(users, [s["latency_ms"][kind][p] for s in steps], style, color=color,
                         label=f"{kind.replace('_', '-')} {p}")
    latency.set_yscale("log")
    latency.set_ylabel("delivery latency (ms)")
    latency.set_xlabel("users in the one locust process")
    latency.legend(fontsize=8, ncol=2)
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)


def main() -> int:
    scenario = os.environ.get("SCENARIO") or "fanout"
    duration = env_duration("DURATION", 20)
    steps = steps_from_env()
    if (os.environ.get("HOST") or LOCAL_HOST).rstrip("/") != LOCAL_HOST:
        raise SystemExit("HOST: the capacity measurement pins the local cluster; it needs "
                         f"{LOCAL_HOST}")
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        raise SystemExit("the capacity measurement needs two CPUs: one for locust, one for the "
                         "cluster")
    loadgen_cpu, cluster_cpus = cpus[-1], cpus[:-1]
    folder = ROOT / "loadtests" / "results" / ("capacity-" + time.strftime("%Y%m%d-%H%M%S"))
    folder.mkdir(parents=True)
    cluster = None
    if not answers(LOCAL_HOST):
        cluster = Cluster(nodes=int(os.environ.get("NODES", "3")),
                          env={"RATE_LIMIT_PER_S": "200", "RATE_LIMIT_BURST": "400"})
        cluster.start()
    pinned = cluster_processes(cluster)
    set_affinity(pinned, cluster_cpus)
    print(f"{scenario}: one locust process on CPU {loadgen_cpu}, the cluster ({len(pinned)} "
          f"processes) on CPUs {cluster_cpus}; steps {steps} users, {readable(duration)} each; "
          f"results in {folder}", flush=True)
    results = []
    try:
        for users in steps:
            summary = run_step(users, scenario, duration, loadgen_cpu, folder / f"users-{users}")
            results.append(summary)
            busiest = summary["load_generator_busiest_process_cores"]
            print(f"  {users:5d} users: locust {busiest:.2f} cores, "
                  f"{summary['deliveries_per_s']:8.1f} deliveries/s, cross-node p50 "
                  f"{summary['latency_ms']['cross_node']['p50']} ms p99 "
                  f"{summary['latency_ms']['cross_node']['p99']} ms, "
                  f"{'clean' if summary['clean'] else 'LOSS OR DISORDER'}", flush=True)
    finally:
        set_affinity(cluster_processes(cluster), cpus)
        if cluster is not None:
            cluster.stop()
    within = [s for s in results if s["load_generator_busiest_process_cores"] < LOADGEN_LIMIT_CORES]
    limit = within[-1] if within else None
    report = {
        "scenario": scenario,
        "duration_s": duration,
        "limit_cores": LOADGEN_LIMIT_CORES,
        "users_per_process": limit["users"] if limit else None,
        "deliveries_per_s_per_process": limit["deliveries_per_s"] if limit else None,
        "steps": results,
    }
    (folder / "capacity.json").write_text(json.dumps(report, indent=2) + "\n")
    chart(results, scenario, folder / "capacity.png")
    if limit is None:
        print(f"even {steps[0]} users took a locust process past {LOADGEN_LIMIT_CORES} cores")
    else:
        print(f"one locust process holds {limit['users']} {scenario} users "
              f"({limit['deliveries_per_s']} deliveries/s) under {LOADGEN_LIMIT_CORES} cores")
    return 0 if all(s["clean"] for s in results) else 1


if __name__ == "__main__":
    sys.exit(main())
