"""`make bench PARTS=app`: the chat scenario on this service (3 nodes) as it is, with a send
hook, and with webhooks on, in the same run against the same lean backend
(loadtests/app_receiver.py): sends per second, cross-node p99 and server CPU per delivery of
each, the backend's own CPU beside them, and whether webhook delivery kept up.

Webhooks keep up when every acknowledged send reached the receiver as a `message` event within
APP_DRAIN_S (20) after the load stopped, and the lag of the run's last quarter (p99) is no more
than twice the first's plus a second: a backlog that grows fails the run.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
from pathlib import Path

import matplotlib
import psutil
import requests

matplotlib.use("Agg")
import matplotlib.pyplot as plt

ROOT = Path(__file__).resolve().parent.parent
RECEIVER_PORT = 18590
VARIANTS = {
    "rooms-3": {},
    "rooms-3+send-hook": {"SEND_HOOK_URL": f"http://127.0.0.1:{RECEIVER_PORT}/hooks/send"},
    "rooms-3+webhooks": {"WEBHOOK_URL": f"http://127.0.0.1:{RECEIVER_PORT}/webhooks"},
}


def start_receiver(secret: str) -> subprocess.Popen:
    receiver = subprocess.Popen([sys.executable, "-m", "loadtests.app_receiver",
                                 str(RECEIVER_PORT)], cwd=ROOT,
                                env=dict(os.environ, HOOK_SECRET=secret, PYTHONPATH=str(ROOT)))
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            requests.get(f"http://127.0.0.1:{RECEIVER_PORT}/stats", timeout=1)
            return receiver
        except requests.ConnectionError:
            time.sleep(0.1)  # it binds its port at start
    receiver.kill()
    raise SystemExit(f"the bench's app backend did not answer on port {RECEIVER_PORT}")


def receiver_stats() -> dict:
    return requests.get(f"http://127.0.0.1:{RECEIVER_PORT}/stats", timeout=10).json()


def drained(sent: int) -> tuple[dict, float | None]:
    """The receiver's figures once every acknowledged send arrived as a webhook event (and
    after how many seconds), or after APP_DRAIN_S without (None)."""
    limit = float(os.environ.get("APP_DRAIN_S") or 20)
    started = time.monotonic()
    while True:
        stats = receiver_stats()
        if stats["messages"] >= sent:
            return stats, round(time.monotonic() - started, 1)
        if time.monotonic() - started > limit:
            return stats, None
        time.sleep(0.5)


def kept_up(stats: dict, sent: int, drain_s: float | None) -> bool:
    quarters = [q for q in stats["lag_ms_by_quarter"] if q["p99"] is not None]
    if drain_s is None or stats["messages"] < sent or not quarters:
        return False
    return quarters[-1]["p99"] <= 2 * quarters[0]["p99"] + 1000


def run(folder: Path, index_base: int = 10) -> list[dict]:
    from loadtests.bench import System, bench_cluster, run_scenario

    secret = secrets.token_urlsafe(24)
    rows = []
    for index, (name, env) in enumerate(VARIANTS.items()):
        system = System(name, 3, "gunicorn", "this service, 3 nodes (gevent)"
                        + (" with " + ", ".join(sorted(env)) if env else ""))
        receiver = start_receiver(secret) if env else None
        receiver_cpu = psutil.Process(receiver.pid) if receiver else None
        cluster = bench_cluster(system, index_base + index, folder,
                                {**env, **({"HOOK_SECRET": secret} if env else {})})
        try:
            started = time.monotonic()
            row = run_scenario(system, cluster, "chat", folder / f"app-{name}")
            summary = json.loads((folder / f"app-{name}" / "summary.json").read_text())
            row["sent"] = summary["sent"]
            if receiver_cpu is not None:
                stats, drain_s = drained(summary["sent"]) if "WEBHOOK_URL" in env else (
                    receiver_stats(), 0.0)
                times = receiver_cpu.cpu_times()
                row["app_backend_cpu_s"] = round(times.user + times.system, 1)
                row["receiver"] = stats
                if "WEBHOOK_URL" in env:
                    row["webhook_drain_s"] = drain_s
                    row["webhooks_kept_up"] = kept_up(stats, summary["sent"], drain_s)
            print(f"  {name:20} chat {row['deliveries_per_s']:8.1f} deliveries/s  p99 "
                  f"{row['p99_ms']} ms  cpu {row['server_cpu_s_per_1000']:.3f} s/1000  "
                  f"lost {row['lost']}  ({time.monotonic() - started:.0f} s)", flush=True)
            rows.append(row)
        finally:
            cluster.stop()
            if receiver is not None:
                receiver.terminate()
                receiver.wait(10)
    return rows


def print_table(rows: list[dict]) -> None:
    header = (f"{'system':20} {'sends':>7} {'deliv/s':>8} {'p99 ms':>7} {'cpu s/1k':>8} "
              f"{'app cpu s':>9} {'webhook lag p99 ms (1st/last quarter)':>38} {'kept up':>7}")
    print(header)
    print("-" * len(header))
    for row in rows:
        quarters = (row.get("receiver") or {}).get("lag_ms_by_quarter") or []
        lag = (f"{quarters[0]['p99']} / {quarters[-1]['p99']}"
               if "webhooks_kept_up" in row and quarters else "-")
        print(f"{row['system']:20} {row['sent']:7d} {row['deliveries_per_s']:8.0f} "
              f"{row['p99_ms']:7.1f} {row['server_cpu_s_per_1000']:8.3f} "
              f"{row.get('app_backend_cpu_s', '-'):>9} {lag:>38} "
              f"{row.get('webhooks_kept_up', '-')!s:>7}")


def chart(rows: list[dict], path: Path) -> None:
    figure, axes = plt.subplots(1, 3, figsize=(15, 4))
    names = [row["system"] for row in rows]
    for axis, key, label in zip(axes, ("deliveries_per_s", "server_cpu_s_per_1000", "p99_ms"),
                                ("chat: deliveries / s", "server CPU s per 1000 deliveries",
                                 "cross-node p99 (ms)"), strict=True):
        axis.bar(names, [row[key] for row in rows], color="tab:blue")
        axis.set_title(label)
        axis.tick_params(axis="x", rotation=15, labelsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)


def failures(rows: list[dict]) -> list[str]:
    problems = [f"{row['system']} lost {row['lost']}" for row in rows if row["lost"]]
    problems += [f"{row['system']}: webhooks fell behind (drained in {row['webhook_drain_s']} "
                 f"s, {row['receiver']['messages']} of {row['sent']} received)"
                 for row in rows if row.get("webhooks_kept_up") is False]
    return problems
