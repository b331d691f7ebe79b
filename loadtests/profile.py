"""`make profile`: where the nodes' CPU goes per delivered message, sampled by py-spy.

Starts a local cluster (NODES, default 3), records every node's worker with py-spy while one load
test (SCENARIO, USERS, DURATION as for `make loadtest`) runs against it, and writes to
PROFILE_RESULTS (default profile-results/<time>/):

- `<node>.collapsed`: py-spy's collapsed stacks, one file per node (open them in speedscope.app);
- `top.txt`: the functions with the most own and inclusive time, as a share of the samples and as
  microseconds of node CPU per delivered message;
- `profile.png`: own time per library and the top functions, as charts;
- the load test's own folder (`loadtest/`), with its summary and ledger.

Only samples holding the GIL are counted (`--gil`): time spent running Python, which is what a
node's CPU is made of; time waiting in the kernel for the network is not a cost to remove here.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import matplotlib
import psutil

matplotlib.use("Agg")
import matplotlib.pyplot as plt

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "scripts")]

from cluster import VENV_BIN, Cluster  # noqa: E402

from loadtests.duration import env_duration  # noqa: E402
from loadtests.run import env_int, prepare_tokens  # noqa: E402

FRAME = re.compile(r"^(?P<function>.*?) \((?P<file>[^:()]+)(?::\d+)?\)$")
TOP = 25
SETTLE_S = 5


def frames(line: str) -> tuple[list[str], int]:
    stack, _, count = line.rpartition(" ")
    return stack.split(";"), int(count)


def library(frame: str) -> str:
    """The package a frame's file belongs to (`engineio`, `gevent`, `service`, ...); a bare module
    name (`threading.py`) is the standard library."""
    match = FRAME.match(frame)
    if not match:
        return "(native)"
    path = match["file"]
    if "site-packages/" in path:
        path = path.split("site-packages/", 1)[1]
    if "/service/" in path:
        return "service"
    return path.split("/", 1)[0] if "/" in path and not path.startswith("/") else "stdlib"


def short(frame: str) -> str:
    """`function (package/module.py)`: the frame without its line number and install prefix."""
    match = FRAME.match(frame)
    if not match:
        return frame
    path = match["file"]
    if "site-packages/" in path:
        path = path.split("site-packages/", 1)[1]
    else:
        path = "/".join(path.rsplit("/", 2)[-2:])
    return f"{match['function']} ({path})"


def tally(paths: list[Path]) -> tuple[Counter, Counter, Counter, int]:
    own: Counter = Counter()
    inclusive: Counter = Counter()
    by_library: Counter = Counter()
    total = 0
    for path in paths:
        for line in path.read_text().splitlines():
            if not line.strip():
                continue
            stack, count = frames(line)
            total += count
            own[short(stack[-1])] += count
            by_library[library(stack[-1])] += count
            for frame in {short(frame) for frame in stack}:
                inclusive[frame] += count
    return own, inclusive, by_library, total


def worker_pids(cluster: Cluster) -> dict[str, int]:
    """Each node's serving process: gunicorn's worker, or the process itself (eventlet, node)."""
    pids = {}
    for name, process in cluster.processes.items():
        if not name.startswith("node-"):
            continue
        children = psutil.Process(process.pid).children(recursive=True)
        pids[name] = children[0].pid if children else process.pid
    return pids


def report(folder: Path, summary: dict, own: Counter, inclusive: Counter, by_library: Counter,
           total: int) -> str:
    node_cpu_s = (summary.get("server_cpu_s_by_program") or {}).get("python", 0.0)
    per_delivery_us = node_cpu_s / max(summary["delivered"], 1) * 1e6
    lines = [f"{summary['scenario']}: {summary['users']} users, {summary['nodes']} nodes, "
             f"{summary['deliveries_per_s']} deliveries/s, {summary['delivered']} delivered",
             f"node CPU {node_cpu_s} s = {per_delivery_us:.0f} us per delivered message; "
             f"whole server {summary['server_cpu_s_by_program']}",
             f"{total} samples holding the GIL", "", "own time per library:"]
    lines += [f"  {share(count, total):6.1%} {count / total * per_delivery_us:6.1f} us  {name}"
              for name, count in by_library.most_common()]
    for title, counter in (("own time", own), ("inclusive time", inclusive)):
        lines += ["", f"top {TOP} functions by {title}:"]
        lines += [f"  {share(count, total):6.1%} {count / total * per_delivery_us:6.1f} us  "
                  f"{name}" for name, count in counter.most_common(TOP)]
    text = "\n".join(lines) + "\n"
    (folder / "top.txt").write_text(text)
    return text


def share(count: int, total: int) -> float:
    return count / total if total else 0.0


def chart(folder: Path, own: Counter, by_library: Counter, total: int, title: str) -> None:
    figure, (left, right) = plt.subplots(1, 2, figsize=(16, 7),
                                         gridspec_kw={"width_ratios": [1, 2]})
    libraries = by_library.most_common(12)[::-1]
    left.barh([name for name, _ in libraries], [count / total * 100 for _, count in libraries])
    left.set_xlabel("% of node CPU samples (own time)")
    left.set_title("by library")
    functions = own.most_common(15)[::-1]
    right.barh([name[:80] for name, _ in functions],
               [count / total * 100 for _, count in functions], color="tab:orange")
    right.set_xlabel("% of node CPU samples (own time)")
    right.set_title("top functions")
    right.tick_params(axis="y", labelsize=7)
    figure.suptitle(title)
    figure.tight_layout()
    figure.savefig(folder / "profile.png", dpi=90)
    plt.close(figure)


def main() -> int:
    nodes = env_int("NODES", 3)
    users = env_int("USERS", 100)
    duration = env_duration("DURATION", 30)
    settle_s = users / env_int("SPAWN_RATE", 50) + SETTLE_S
    folder = Path(os.environ.get("PROFILE_RESULTS") or ROOT / "profile-results" /
                  time.strftime("%Y%m%d-%H%M%S"))
    folder.mkdir(parents=True, exist_ok=True)
    cluster = Cluster(nodes=nodes, port=18390, redis_port=16390, node_base_port=15390,
                      run_dir=folder / "cluster",
                      env={"RATE_LIMIT_PER_S": "1000", "RATE_LIMIT_BURST": "2000"})
    cluster.start()
    recorders = []
    try:
        prepare_tokens(cluster.url, users, folder).unlink()  # slow hashes stay out of the profile
        env = dict(os.environ, HOST=cluster.url, RESULTS_DIR=str(folder / "loadtest"),
                   SERVER_PIDS=",".join(str(p.pid) for p in cluster.processes.values()),
                   DURATION=str(duration))
        run = subprocess.Popen([sys.executable, str(ROOT / "loadtests" / "run.py")], env=env,
                               cwd=ROOT)
        time.sleep(settle_s)  # users connected and joined: the profile is of the steady load
        for name, pid in worker_pids(cluster).items():
            recorders.append(subprocess.Popen(
                [str(VENV_BIN / "py-spy"), "record", "--pid", str(pid), "--gil", "--rate", "250",
                 "--duration", str(max(5, int(duration - SETTLE_S))), "--format", "raw",
                 "--output", str(folder / f"{name}.collapsed"),],
                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE))
        print(f"profile: py-spy on {len(recorders)} node workers after {settle_s:.0f} s",
              flush=True)
        run.wait()
        for recorder in recorders:
            recorder.wait(timeout=60)
    finally:
        for recorder in recorders:
            if recorder.poll() is None:
                recorder.send_signal(signal.SIGINT)
                recorder.wait(timeout=60)
        cluster.stop()
    summary_path = folder / "loadtest" / "summary.json"
    if run.returncode != 0 or not summary_path.exists():
        print(f"the load test failed (exit {run.returncode}); no profile written")
        return run.returncode or 1
    summary = json.loads(summary_path.read_text())
    own, inclusive, by_library, total = tally(sorted(folder.glob("*.collapsed")))
    if not total:
        print("py-spy recorded no samples (is ptrace allowed?)")
        return 1
    print(report(folder, summary, own, inclusive, by_library, total))
    chart(folder, own, by_library, total,
          f"{summary['scenario']}, {nodes} nodes: node CPU by own time ({total} samples)")
    print(f"written to {folder}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
