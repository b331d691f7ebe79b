"""`make loadtest`: run a locust scenario headless on all cores and write its results folder.

Knobs (environment): SCENARIO (chat|fanout|smallrooms), USERS, SPAWN_RATE, DURATION (seconds, or
locust's forms such as 30s, 2m, 1h30m: loadtests/duration.py), HOST (the front door; a local
cluster is started if HOST is the local default and nothing answers there), PROCESSES (locust
processes, default all cores), LOADGEN_CPUS (pin locust to these CPUs, e.g. `1`), plus the
scenario's own knobs (locustfile.py).

Writes loadtests/results/<time>/: locust's CSV and HTML report, the PNG charts and summary.json.
Exits non-zero when any message was lost, duplicated or delivered out of order. A send whose ack
was lost is sent again with the same client_id (loadtests/resend.py); summary.json counts those
resends as `retries`, next to `duplicates`.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psutil
import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "scripts")]

from cluster import Cluster  # noqa: E402

from loadtests.accounting import account, load_ledgers  # noqa: E402
from loadtests.duration import env_duration, readable  # noqa: E402
from loadtests.report import write_report  # noqa: E402

LOCAL_HOST = "http://127.0.0.1:8080"
DRAIN_S = 3.0
LOADGEN_LIMIT_CORES = 0.8
PASSWORD = "load-test-password"  # noqa: S105 - throwaway accounts of the load test


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name) or str(default)
    if not value.isdigit() or int(value) < 1:
        raise SystemExit(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def answers(host: str) -> bool:
    try:
        with urllib.request.urlopen(f"{host}/healthz", timeout=2) as response:  # noqa: S310
            return response.status == 200
    except OSError:
        return False


def cache_valid(host: str, cached: dict[str, dict]) -> bool:
    """Whether the cached accounts are this deployment's: a cached token is accepted (same
    secret) and its account still exists (a fresh Redis at the same address has none, and a
    direct message to a name it does not know is `not_found`)."""
    name, entry = next(iter(cached.items()))
    accepted = requests.get(f"{host}/api/cluster", timeout=30,
                            headers={"Authorization": f"Bearer {entry['token']}"})
    login = requests.post(f"{host}/api/token", json={"username": name, "password": PASSWORD},
                          timeout=60)
    return accepted.status_code == 200 and login.status_code == 200


def prepare_tokens(host: str, count: int, folder: Path) -> Path:
    """Register (or log in) `count` accounts before the measured run; returns the token file.

    Passwords are slow hashes by design, so this is done once per account, outside the run."""
    cache = ROOT / "loadtests" / ".accounts"
    cache.mkdir(exist_ok=True)
    cached_path = cache / (host.replace("://", "_").replace(":", "_").replace("/", "_") + ".json")
    cached = json.loads(cached_path.read_text()) if cached_path.exists() else {}
    if cached and not cache_valid(host, cached):
        print(f"cached accounts are not valid at {host} (another deployment, or a fresh Redis): "
              "preparing anew", flush=True)
        cached = {}
    now = time.time()
    tokens: list[str | None] = [None] * count

    def one(index: int) -> None:
        name = f"loaduser{index}"
        entry = cached.get(name)
        if entry and entry["expires_at"] > now + 3600:
            tokens[index] = entry["token"]
            return
        body = {"username": name, "password": PASSWORD}
        answer = requests.post(f"{host}/api/token", json=body, timeout=60)
        if answer.status_code == 401:
            requests.post(f"{host}/api/register", json=body, timeout=60)
            answer = requests.post(f"{host}/api/token", json=body, timeout=60)
        answer.raise_for_status()
        token = answer.json()
        tokens[index] = token["token"]
        cached[name] = {"token": token["token"], "expires_at": now + token["expires_in"]}

    missing = sum(1 for i in range(count) if f"loaduser{i}" not in cached)
    if missing:
        print(f"preparing {missing} accounts (slow password hashes, once per account)...",
              flush=True)
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(one, range(count)))
    cached_path.write_text(json.dumps(cached))
    path = folder / "tokens.json"
    path.write_text(json.dumps(tokens))
    path.chmod(0o600)
    return path


class CpuSampler(threading.Thread):
    """Samples the CPU of the load generator (locust's processes) and, when local, the nodes."""

    def __init__(self, locust: psutil.Process, nodes: list[psutil.Process], steady_after: float):
        super().__init__(daemon=True)
        self.locust, self.nodes, self.steady_after = locust, nodes, steady_after
        self.stop = threading.Event()
        self.loadgen_cpu_s = 0.0
        self.server_cpu_s = 0.0
        self.server_cpu_by_program: dict[str, float] = {}
        self.server_rss_idle = self.rss_of(nodes)  # before any user connects
        self.server_rss_peak = self.server_rss_idle
        # the busiest locust process once every user is connected: one process cannot use more
        # than one core, so near 1.0 the load generator, not the service, sets the figures
        self.busiest_process_cores = 0.0
        self.samples: list[tuple[float, float]] = []  # (time, load generator cores busy)

    @staticmethod
    def rss_of(processes: list[psutil.Process]) -> int:
        total = 0
        for process in processes:
            with contextlib.suppress(psutil.Error):
                total += process.memory_info().rss
        return total

    @staticmethod
    def cpu_of(processes: list[psutil.Process]) -> float:
        total = 0.0
        for process in processes:
            try:
                times = process.cpu_times()
                total += times.user + times.system
            except psutil.Error:
                pass
        return total

    @staticmethod
    def program(process: psutil.Process) -> str:
        """`redis-server`, `nginx`, `node`, or `python` for gunicorn and eventlet nodes."""
        try:
            name = process.name()
        except psutil.Error:
            return "gone"
        return "python" if name.startswith(("python", "gunicorn")) else name

    def cpu_by_program(self) -> dict[str, float]:
        totals: dict[str, float] = {}
        for process in self.nodes:
            name = self.program(process)
            totals[name] = totals.get(name, 0.0) + self.cpu_of([process])
        return totals

    def tree(self) -> list[psutil.Process]:
        try:
            return [self.locust, *self.locust.children(recursive=True)]
        except psutil.Error:
            return []

    def run(self) -> None:
        last_t = time.monotonic()
        seen: dict[int, float] = {}
        server_start = self.cpu_of(self.nodes)
        by_program_start = self.cpu_by_program()
        while not self.stop.wait(1.0):
            now = time.monotonic()
            previous = dict(seen)
            for process in self.tree():
                with_cpu = self.cpu_of([process])
                if with_cpu:
                    seen[process.pid] = with_cpu
            rates = [(cpu - previous.get(pid, 0.0)) / (now - last_t) for pid, cpu in seen.items()]
            self.samples.append((now, sum(rates)))
            if now >= self.steady_after and previous:
                self.busiest_process_cores = max(self.busiest_process_cores, *rates)
            last_t = now
            self.loadgen_cpu_s = sum(seen.values())
            self.server_cpu_s = self.cpu_of(self.nodes) - server_start
            self.server_cpu_by_program = {
                name: round(cpu - by_program_start.get(name, 0.0), 1)
                for name, cpu in self.cpu_by_program().items()}
            self.server_rss_peak = max(self.server_rss_peak, self.rss_of(self.nodes))


def cpu_list(name: str) -> set[int] | None:
    """CPUs from a setting such as `1` or `0,1`; None when unset."""
    value = os.environ.get(name, "").strip()
    if not value:
        return None
    try:
        cpus = {int(part) for part in value.split(",")}
    except ValueError:
        raise SystemExit(f"{name} must list CPU numbers like 0,1, got {value!r}") from None
    if not cpus <= os.sched_getaffinity(0):
        raise SystemExit(f"{name} names CPUs this machine does not offer: {sorted(cpus)}")
    return cpus


def pin_to(cpus: set[int] | None):
    return None if cpus is None else (lambda: os.sched_setaffinity(0, cpus))


def server_processes() -> list[psutil.Process]:
    """SERVER_PIDS (comma-separated) and their children: the whole system under test."""
    found: list[psutil.Process] = []
    for pid in filter(None, (os.environ.get("SERVER_PIDS") or "").split(",")):
        try:
            process = psutil.Process(int(pid))
            found += [process, *process.children(recursive=True)]
        except (psutil.Error, ValueError):
            raise SystemExit(f"SERVER_PIDS: no process {pid!r}") from None
    return found


def node_processes() -> list[psutil.Process]:
    """The local nodes' gunicorn processes (a master and its worker per node)."""
    return [process for process in psutil.process_iter(["cmdline"])
            if "service.node.wsgi:app" in " ".join(process.info["cmdline"] or [])]


def live_nodes(host: str, token: str) -> int:
    """How many nodes the deployment itself reports as live (GET /api/cluster)."""
    answer = requests.get(f"{host}/api/cluster", headers={"Authorization": f"Bearer {token}"},
                          timeout=30)
    answer.raise_for_status()
    return len(answer.json()["nodes"])


def main() -> int:
    scenario = os.environ.get("SCENARIO", "chat")
    if scenario not in ("chat", "fanout", "smallrooms"):
        raise SystemExit(f"SCENARIO must be chat, fanout or smallrooms, got {scenario!r}")
    users = env_int("USERS", 100)
    spawn_rate = env_int("SPAWN_RATE", 50)
    duration = env_duration("DURATION", 45)
    processes = env_int("PROCESSES", os.cpu_count() or 1)
    loadgen_cpus = cpu_list("LOADGEN_CPUS")
    host = (os.environ.get("HOST") or LOCAL_HOST).rstrip("/")
    folder = Path(os.environ.get("RESULTS_DIR") or ROOT / "loadtests" / "results" /
                  time.strftime("%Y%m%d-%H%M%S"))
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob("ledger-*.json"):  # a reused folder must not mix runs
        stale.unlink()
    run_id = time.strftime("%H%M%S") + os.urandom(3).hex()

    cluster = None
    if host == LOCAL_HOST and not answers(host):
        print("no cluster at http://127.0.0.1:8080: starting the local cluster", flush=True)
        cluster = Cluster(nodes=int(os.environ.get("NODES", "3")),
                          env={"RATE_LIMIT_PER_S": "200", "RATE_LIMIT_BURST": "400"})
        cluster.start()
    try:
        tokens = prepare_tokens(host, users, folder)
        ramp = users / spawn_rate
        run_time = int(ramp + duration + DRAIN_S + 1)
        env = dict(os.environ, SCENARIO=scenario, USERS=str(users), LOADTEST_TOKENS=str(tokens),
                   LOADTEST_RESULTS=str(folder), LOADTEST_RUN_ID=run_id,
                   LOADTEST_STOP_SENDING_AT=str(time.time() + run_time - DRAIN_S),
                   PYTHONPATH=str(ROOT))
        user_class = {"chat": "ChatUser", "fanout": "FanoutUser",
                      "smallrooms": "ChatUser"}[scenario]
        argv = [sys.executable, "-m", "locust", "-f", str(ROOT / "loadtests" / "locustfile.py"),
                user_class, "--headless", "--host", host, "--users", str(users),
                "--spawn-rate", str(spawn_rate), "--run-time", f"{run_time}s",
                "--csv", str(folder / "locust"), "--csv-full-history",
                "--html", str(folder / "report.html"), "--only-summary",
                "--exit-code-on-error", "0", "--stop-timeout", "5"]
        if processes > 1:
            argv += ["--processes", str(processes)]
        print(f"{scenario}: {users} users over {ramp:.0f} s, then {readable(duration)} of load "
              f"against {host} with {processes} locust processes; results in {folder}", flush=True)
        nodes = server_processes() or (node_processes() if host == LOCAL_HOST else [])
        started = time.monotonic()
        locust = subprocess.Popen(argv, env=env, cwd=ROOT, preexec_fn=pin_to(loadgen_cpus))
        sampler = CpuSampler(psutil.Process(locust.pid), nodes, steady_after=started + ramp + 3)
        sampler.start()
        while locust.poll() is None:
            time.sleep(5)
            elapsed = time.monotonic() - started
            print(f"  {elapsed:4.0f}/{run_time} s  load generator {sampler.samples[-1][1]:.2f} "
                  f"cores" if sampler.samples else f"  {elapsed:4.0f}/{run_time} s", flush=True)
        sampler.stop.set()
        sampler.join()
        if locust.returncode not in (0, 1):
            print(f"locust exited with {locust.returncode}", flush=True)
            return locust.returncode
        accounting = account(load_ledgers(folder))
        summary = write_report(folder, scenario=scenario, users=users,
                               nodes=live_nodes(host, json.loads(tokens.read_text())[0]),
                               duration_s=duration, processes=processes, accounting=accounting,
                               sampler=sampler)
        tokens.unlink()
    finally:
        if cluster is not None:
            cluster.stop()
    print(json.dumps(summary, indent=2))
    if summary["load_generator_busiest_process_cores"] >= LOADGEN_LIMIT_CORES:
        print(f"WARNING: a locust process used {summary['load_generator_busiest_process_cores']} "
              "cores: the load generator, not the service, limits these figures; use more "
              "PROCESSES or fewer USERS (see README, load tests)")
    if not accounting.clean or accounting.expected == 0:
        print("FAILED: messages were lost, duplicated or out of order (or none were sent)")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
