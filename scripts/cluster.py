"""Start the local cluster: redis-server, N gunicorn nodes and nginx, one log per process.

Several front doors (FRONT_DOORS) are nginx processes with the same configuration on ports of
their own: they send a sticky key to the same node, so a TCP load balancer can spread clients
over them. Each front door also serves nginx's own status (stub_status) on a port of its own.

`make run` and the integration tests both use this, so what the tests prove is what users run.
Run as a program it prints the front door's address and, on Ctrl-C or SIGTERM, stops everything
it started and nothing else.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from string import Template
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = ROOT / ".venv" / "bin"


def find_binary(name: str) -> str:
    for candidate in (shutil.which(name), f"/usr/sbin/{name}", f"/usr/bin/{name}"):
        if candidate and Path(candidate).is_file():
            return candidate
    raise SystemExit(f"{name} is not installed; run `make setup` (apt package: {name})")


def port_is_free(port: int) -> bool:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def wait_until(check, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except Exception:  # noqa: S110 - still starting
            pass
        time.sleep(0.1)
    raise RuntimeError(f"timed out after {timeout:.0f}s waiting for {what}")


def http_status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - loopback only
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


FRONT_DOOR_LIMITS = {  # per client address; see nginx/cluster.conf.template
    "CONNECT_RATE_PER_S": "100",
    "CONNECT_BURST": "500",
    "CONNECTIONS_PER_ADDRESS": "5000",
}


def render(template: Path, target: Path, values: dict[str, str]) -> None:
    target.write_text(Template(template.read_text()).safe_substitute(values))


# `make run`'s ports: the front door on the contract's 8080 and the rest beside it, not on
# Redis's own 6379, so the cluster starts next to a Redis or nginx the machine already runs.
# A Redis Cluster's six servers use REDIS_PORT and the five above it (and, for the cluster bus,
# each port + 10000): 8070-8075 by default, below the nodes. Front door k listens
# DOOR_SPACING * (k - 1) above PORT; its status, STATUS_PORT_OFFSET above its own port unless
# STATUS_PORT moves the first (the others follow).
FRONT_DOOR_PORT, REDIS_PORT, REDIS_CLUSTER_PORT, NODE_BASE_PORT = 8080, 8079, 8070, 8081
DOOR_SPACING, STATUS_PORT_OFFSET, MAX_FRONT_DOORS = 100, 1000, 4
REDIS_CLUSTER_SIZE = 6  # 3 masters, a replica each
PORT_SETTINGS = {"front door": "PORT", "status": "STATUS_PORT", "redis": "REDIS_PORT",
                 "node": "NODE_BASE_PORT"}


@dataclass
class Cluster:
    """The processes of one local cluster. Ports and folders are per instance, so tests can run
    a cluster beside one started by `make run`."""

    nodes: int = 3
    port: int = FRONT_DOOR_PORT
    front_doors: int = 1
    status_port: int | None = None  # the first front door's status; None: port + 1000
    redis_port: int = REDIS_PORT
    node_base_port: int = NODE_BASE_PORT
    redis_mode: str = "single"  # or "cluster": a local Redis Cluster, 3 masters and 3 replicas
    run_dir: Path = ROOT / "run"
    env: dict[str, str] = field(default_factory=dict)
    # how a node is started: `gunicorn` (gevent, the default), `eventlet` (eventlet's own server),
    # or any command that serves the contract on $BIND / $PORT (the bench's reference systems)
    node_command: str | list[str] = "gunicorn"
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)

    @property
    def url(self) -> str:
        """The first front door."""
        return self.door_url(1)

    def doors(self) -> range:
        return range(1, self.front_doors + 1)

    def door_port(self, door: int) -> int:
        return self.port + DOOR_SPACING * (door - 1)

    def door_url(self, door: int) -> str:
        return f"http://127.0.0.1:{self.door_port(door)}"

    def door_status_port(self, door: int) -> int:
        first = self.status_port or self.port + STATUS_PORT_OFFSET
        return first + DOOR_SPACING * (door - 1)

    def status_url(self, door: int = 1) -> str:
        """nginx's own counters (stub_status) of a front door."""
        return f"http://127.0.0.1:{self.door_status_port(door)}/nginx_status"

    @staticmethod
    def door_name(door: int) -> str:
        return "nginx" if door == 1 else f"nginx-{door}"

    @property
    def redis_password(self) -> str | None:
        return self.env.get("REDIS_PASSWORD") or os.environ.get("REDIS_PASSWORD")

    @property
    def redis_url(self) -> str:
        """One Redis: its URL; a Redis Cluster: the URL of its first seed."""
        auth = f":{self.redis_password}@" if self.redis_password else ""
        return f"redis://{auth}127.0.0.1:{self.redis_port}/0"

    @property
    def clustered(self) -> bool:
        return self.redis_mode == "cluster"

    def redis_ports(self) -> list[int]:
        count = REDIS_CLUSTER_SIZE if self.clustered else 1
        return [self.redis_port + i for i in range(count)]

    def redis_client(self, **options: Any) -> Any:
        """A redis-py client of this cluster's Redis (a RedisCluster for a Redis Cluster)."""
        if self.clustered:
            from redis.cluster import ClusterNode, RedisCluster

            return RedisCluster(startup_nodes=[ClusterNode("127.0.0.1", p)
                                               for p in self.redis_ports()],
                                password=self.redis_password, **options)
        import redis

        return redis.Redis.from_url(self.redis_url, **options)

    @property
    def log_dir(self) -> Path:
        return self.run_dir / "logs"

    def node_name(self, index: int) -> str:
        return f"node-{index}"

    def node_port(self, index: int) -> int:
        return self.node_base_port + index - 1

    def node_url(self, index: int) -> str:
        return f"http://127.0.0.1:{self.node_port(index)}"

    # ---- whole cluster --------------------------------------------------------------------

    def ports(self) -> dict[str, list[int]]:
        """The loopback ports this cluster listens on, by role."""
        redis_ports = self.redis_ports()
        if self.clustered:
            redis_ports += [port + 10000 for port in redis_ports]  # the cluster bus
        return {"front door": [self.door_port(d) for d in self.doors()],
                "status": [self.door_status_port(d) for d in self.doors()],
                "redis": redis_ports, "node": [self.node_port(i) for i in self.indexes()]}

    def describe_ports(self) -> str:
        def span(ports: list[int]) -> str:
            return f"{ports[0]}-{ports[-1]}" if len(ports) > 1 else str(ports[0])

        ports = self.ports()
        kind = "redis cluster" if self.clustered else "redis"
        doors = "front door" + ("s" if self.front_doors > 1 else "")
        return (f"{doors} {', '.join(map(str, ports['front door']))} "
                f"(nginx status {', '.join(map(str, ports['status']))}), "
                f"{kind} {span(self.redis_ports())}, nodes {span(ports['node'])}")

    def check_ports(self) -> None:
        """Stops the start when two roles share a port, or a port is taken, naming the settings
        that move them."""
        if not 1 <= self.front_doors <= MAX_FRONT_DOORS:
            raise SystemExit(f"configuration error: FRONT_DOORS must be between 1 and "
                             f"{MAX_FRONT_DOORS}, got {self.front_doors}")
        owners: dict[int, set[str]] = {}
        for role, ports in self.ports().items():
            for port in ports:
                owners.setdefault(port, set()).add(role)
        shared = {port: roles for port, roles in owners.items() if len(roles) > 1}
        if shared:
            clashes = ", ".join(f"{port} ({' and '.join(PORT_SETTINGS[r] for r in sorted(roles))})"
                                for port, roles in sorted(shared.items()))
            raise SystemExit(f"configuration error: ports used twice: {clashes}; move one of "
                             "them with its setting")
        if max(owners) > 65535:
            raise SystemExit(f"configuration error: port {max(owners)} is above 65535; lower "
                             "PORT, STATUS_PORT, REDIS_PORT or NODE_BASE_PORT")
        busy = [f"{port} ({role}, moved by {PORT_SETTINGS[role]})"
                for role, ports in self.ports().items() for port in ports if not port_is_free(port)]
        if busy:
            raise SystemExit(f"ports already in use: {', '.join(busy)}; is a cluster already "
                             "running? Stop it, or move this one with those settings")

    def start(self) -> None:
        self.check_ports()
        self.log_dir.mkdir(parents=True, exist_ok=True)
        try:
            if self.clustered:
                self.start_redis_cluster()
            else:
                self.start_redis()
            for index in self.indexes():
                self.start_node(index, wait=False)
            for index in self.indexes():
                self.wait_node_ready(index)
            for door in self.doors():
                self.start_nginx(door)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """The front doors first (they hold connections to the nodes), then all nodes at once,
        then redis (every server of a Redis Cluster)."""
        self._stop_processes([name for name in self.processes if name.startswith("nginx")])
        self._stop_processes([name for name in self.processes if name.startswith("node-")])
        self._stop_processes(list(self.processes))

    def indexes(self) -> range:
        return range(1, self.nodes + 1)

    def _spawn(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> None:
        log = open(self.log_dir / f"{name}.log", "ab")  # noqa: SIM115 - owned by the child
        self.processes[name] = subprocess.Popen(
            argv, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=ROOT,
            start_new_session=True,  # Ctrl-C reaches the launcher, which stops children in order
        )
        log.close()

    def _stop_process(self, name: str, sig: int) -> None:
        self._stop_processes([name], sig)

    def _stop_processes(self, names: list[str], sig: int = signal.SIGTERM,
                        timeout: float = 25) -> None:
        """Signal every named process first, then wait for each (killing any that hang)."""
        running = [p for p in (self.processes.pop(n, None) for n in names)
                   if p is not None and p.poll() is None]
        for process in running:
            if sig == signal.SIGKILL:
                self._kill_group(process)  # a crash takes the whole node: master and worker
            else:
                process.send_signal(sig)
        for process in running:
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                self._kill_group(process)
                process.wait(5)

    @staticmethod
    def _kill_group(process: subprocess.Popen) -> None:
        """SIGKILL a process and its children (each child is spawned in a session of its own):
        gunicorn's orphaned worker would otherwise serve on, and hold the port, for the
        graceful timeout."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)

    # ---- redis ----------------------------------------------------------------------------

    def start_redis(self) -> None:
        data = self.run_dir / "redis"
        data.mkdir(parents=True, exist_ok=True)
        argv = [
            find_binary("redis-server"), "--port", str(self.redis_port), "--bind", "127.0.0.1",
            "--dir", str(data), "--appendonly", "yes", "--appendfsync", "everysec", "--save", "",
            "--daemonize", "no", "--maxclients", "10000", "--protected-mode", "yes",
        ]
        if self.redis_password:
            argv += ["--requirepass", self.redis_password]
        self._spawn("redis", argv)
        wait_until(self.redis_answers, 15, "redis-server")

    def redis_answers(self, port: int | None = None) -> bool:
        with socket.create_connection(("127.0.0.1", port or self.redis_port), timeout=1) as conn:
            if self.redis_password:
                conn.sendall(f"AUTH {self.redis_password}\r\n".encode())
                conn.recv(64)
            conn.sendall(b"PING\r\n")
            return conn.recv(64).startswith(b"+PONG")

    def stop_redis(self) -> None:
        self._stop_process("redis", signal.SIGTERM)

    # ---- a Redis Cluster --------------------------------------------------------------------

    def redis_cluster_argv(self, port: int) -> list[str]:
        data = self.run_dir / "redis-cluster" / str(port)
        data.mkdir(parents=True, exist_ok=True)
        argv = [
            find_binary("redis-server"), "--port", str(port), "--bind", "127.0.0.1",
            "--dir", str(data), "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
            # failover within seconds; a replica takes over however stale it is; a shard down
            # does not stop the others
            "--cluster-node-timeout", "1000", "--cluster-replica-validity-factor", "0",
            "--cluster-require-full-coverage", "no",
            "--appendonly", "yes", "--appendfsync", "everysec", "--save", "",
            "--daemonize", "no", "--maxclients", "10000", "--protected-mode", "yes",
        ]
        if self.redis_password:
            argv += ["--requirepass", self.redis_password, "--masterauth", self.redis_password]
        return argv

    def start_redis_cluster(self) -> None:
        """Six redis-servers made one cluster (3 masters, a replica each); returns when every
        server reports the cluster ok and agrees on its three masters."""
        for port in self.redis_ports():
            self._spawn(f"redis-{port}", self.redis_cluster_argv(port))
        for port in self.redis_ports():
            wait_until(lambda port=port: self.redis_answers(port), 15, f"redis-server :{port}")
        known = {self.redis_known_nodes(port) for port in self.redis_ports()}
        if known == {REDIS_CLUSTER_SIZE}:  # formed by an earlier run (nodes.conf): data kept
            wait_until(self.redis_cluster_ok, 30, "the Redis Cluster to report ok on every server")
            return
        if known != {1}:
            raise SystemExit(f"the Redis Cluster in {self.run_dir / 'redis-cluster'} is half "
                             "formed; remove that folder (make clean) and start again")
        create = [find_binary("redis-cli"), "--cluster", "create",
                  *(f"127.0.0.1:{port}" for port in self.redis_ports()),
                  "--cluster-replicas", "1", "--cluster-yes"]
        result = subprocess.run(create, capture_output=True, text=True, env=self.redis_cli_env(),
                                timeout=60,
                                check=False)
        if result.returncode != 0:
            raise RuntimeError(f"redis-cli --cluster create failed:\n{result.stdout}"
                               f"{result.stderr}")
        wait_until(self.redis_cluster_ok, 30, "the Redis Cluster to report ok on every server")

    def redis_command(self, port: int, *args: str) -> str:
        command = [find_binary("redis-cli"), "-p", str(port), *args]
        return subprocess.run(command, capture_output=True, text=True, env=self.redis_cli_env(),
                              timeout=10, check=False).stdout

    def redis_cli_env(self) -> dict[str, str]:
        """redis-cli's environment: the password, if any, outside its command line."""
        env = {key: value for key, value in os.environ.items() if key != "REDISCLI_AUTH"}
        if self.redis_password:
            env["REDISCLI_AUTH"] = self.redis_password
        return env

    def redis_known_nodes(self, port: int) -> int:
        for line in self.redis_command(port, "CLUSTER", "INFO").splitlines():
            if line.startswith("cluster_known_nodes:"):
                return int(line.split(":")[1])
        return 0

    def redis_cluster_ok(self) -> bool:
        """Every running server sees the cluster ok with three masters, and every master has
        its replica connected and in sync (acknowledged writes wait for it)."""
        for port in self.redis_ports():
            if f"redis-{port}" not in self.processes:
                continue
            info = self.redis_command(port, "CLUSTER", "INFO")
            if "cluster_state:ok" not in info or "cluster_size:3" not in info:
                return False
            replication = self.redis_command(port, "INFO", "replication")
            if "role:master" in replication and (
                    "connected_slaves:1" not in replication or "state=online" not in replication):
                return False
        return True

    def redis_masters(self) -> list[int]:
        """The ports of the servers that are masters now."""
        masters = []
        for port in self.redis_ports():
            if f"redis-{port}" in self.processes and self.redis_command(
                    port, "ROLE").startswith("master"):
                masters.append(port)
        return masters

    def master_of(self, key: str) -> int:
        """The port of the Redis Cluster master that holds `key` now."""
        from redis.crc import key_slot

        return self.master_of_slot(key_slot(key.encode()))

    def master_of_slot(self, slot: int) -> int:
        for port in self.redis_masters():
            for line in self.redis_command(port, "CLUSTER", "NODES").splitlines():
                fields = line.split()
                if "myself" in fields[2] and "master" in fields[2]:
                    for span in fields[8:]:
                        start, _, end = span.partition("-")
                        if start.isdigit() and int(start) <= slot <= int(end or start):
                            return port
        raise RuntimeError(f"no master holds slot {slot}")

    def kill_redis_server(self, port: int) -> None:
        """SIGKILL one server of the Redis Cluster, as a crash would."""
        self._stop_process(f"redis-{port}", signal.SIGKILL)

    def start_redis_server(self, port: int) -> None:
        """Start a killed server again; it rejoins the cluster (as a replica, if replaced)."""
        self._spawn(f"redis-{port}", self.redis_cluster_argv(port))
        wait_until(lambda: self.redis_answers(port), 15, f"redis-server :{port}")

    # ---- nodes ----------------------------------------------------------------------------

    def node_env(self, index: int) -> dict[str, str]:
        env = dict(os.environ)
        env.update(self.env)
        env.update(
            NODE_NAME=self.node_name(index),
            BIND=f"127.0.0.1:{self.node_port(index)}",
            PORT=str(self.node_port(index)),
            PYTHONUNBUFFERED="1",
        )
        if self.clustered:
            env.pop("REDIS_URL", None)
            env["REDIS_CLUSTER_NODES"] = ",".join(f"127.0.0.1:{p}" for p in self.redis_ports())
            if self.redis_password:
                env["REDIS_PASSWORD"] = self.redis_password
        else:
            env.pop("REDIS_CLUSTER_NODES", None)
            env["REDIS_URL"] = self.redis_url
        env.setdefault("ALLOWED_ORIGINS", ",".join(
            f"http://{host}:{self.door_port(door)}" for door in self.doors()
            for host in ("127.0.0.1", "localhost")))
        return env

    def node_argv(self) -> list[str]:
        if self.node_command == "gunicorn":
            gunicorn = VENV_BIN / "gunicorn"
            return [str(gunicorn) if gunicorn.exists() else "gunicorn",
                    "-c", str(ROOT / "service" / "node" / "gunicorn_conf.py"),
                    "service.node.wsgi:app"]
        if self.node_command == "eventlet":
            python = VENV_BIN / "python"
            return [str(python) if python.exists() else sys.executable, "-m",
                    "service.node.eventlet_server"]
        if isinstance(self.node_command, str):
            raise SystemExit(f"node command must be gunicorn, eventlet or a command list, got "
                             f"{self.node_command!r}")
        return list(self.node_command)

    def start_node(self, index: int, wait: bool = True,
                   env: dict[str, str] | None = None) -> None:
        """Start node `index` (with `env` on top of its usual environment); with `wait`, return
        once it is ready and the front door routes to it."""
        running = self.processes.get(self.node_name(index))
        if running is not None and running.poll() is None:
            return  # already up: a second one could only fail on the port and orphan this one
        env = {**self.node_env(index), **(env or {})}
        if self.node_command == "eventlet":
            env["ASYNC_MODE"] = "eventlet"
        self._spawn(self.node_name(index), self.node_argv(), env)
        if wait:
            self.wait_node_ready(index)
            if "nginx" in self.processes:
                self.wait_front_door_reaches(index)

    def wait_front_door_reaches(self, index: int, timeout: float = 15) -> None:
        """Wait until nginx routes to a restarted node again (it skips a failed one for a while)."""
        name = self.node_name(index)

        def reached() -> bool:
            for key in range(64):
                url = f"{self.url}/healthz?node_key=probe{key}"
                with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - loopback
                    if json.loads(response.read())["node"] == name:
                        return True
            return False

        wait_until(reached, timeout, f"the front door to route to {name}")

    def wait_node_ready(self, index: int, timeout: float = 30) -> None:
        name = self.node_name(index)

        def ready() -> bool:
            process = self.processes.get(name)
            if process is not None and process.poll() is not None:
                tail = (self.log_dir / f"{name}.log").read_text(errors="replace")[-2000:]
                raise SystemExit(f"{name} exited with {process.returncode}:\n{tail}")
            return http_status(self.node_url(index) + "/readyz") == 200

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if ready():
                    return
            except (OSError, urllib.error.URLError):
                pass
            time.sleep(0.1)
        raise RuntimeError(f"{name} was not ready within {timeout:.0f}s; see {self.log_dir}")

    def kill_node(self, index: int, sig: int = signal.SIGKILL) -> None:
        self._stop_process(self.node_name(index), sig)

    # ---- nginx ----------------------------------------------------------------------------

    def front_door_limits(self) -> dict[str, str]:
        """The front door's per-address limits, from the cluster's env, the environment or the
        defaults; a value that is not a positive integer stops the start, naming the setting."""
        limits = {}
        for name, default in FRONT_DOOR_LIMITS.items():
            value = self.env.get(name) or os.environ.get(name) or default
            if not value.isdigit() or int(value) < 1:
                raise SystemExit(f"configuration error: {name} must be a positive integer, "
                                 f"got {value!r}")
            limits[name] = value
        return limits

    def start_nginx(self, door: int = 1) -> None:
        """Front door `door`: the same configuration as every other, on ports of its own."""
        name = self.door_name(door)
        conf_dir = self.run_dir / name
        for sub in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
            (conf_dir / "tmp" / sub).mkdir(parents=True, exist_ok=True)
            os.chmod(conf_dir / "tmp" / sub, 0o777)  # noqa: S103 - nginx workers may run as nobody
        upstreams = "\n".join(
            f"    server 127.0.0.1:{self.node_port(i)} max_fails=1 fail_timeout=5s;"
            for i in self.indexes()
        )
        render(ROOT / "nginx" / "cluster.conf.template", conf_dir / "cluster.conf",
               {"LISTEN_PORT": f"127.0.0.1:{self.door_port(door)}",
                "STATUS_PORT": f"127.0.0.1:{self.door_status_port(door)}",
                "UPSTREAM_SERVERS": upstreams, **self.front_door_limits()})
        render(ROOT / "nginx" / "local.conf.template", conf_dir / "nginx.conf",
               {"RUN_DIR": str(conf_dir), "LOG_DIR": str(self.log_dir), "NAME": name})
        nginx = find_binary("nginx")
        check = subprocess.run([nginx, "-t", "-q", "-p", str(conf_dir), "-c", "nginx.conf"],
                               capture_output=True, text=True, check=False)
        if check.returncode != 0:
            raise SystemExit(f"nginx configuration is invalid:\n{check.stderr}")
        self._spawn(name, [nginx, "-p", str(conf_dir), "-c", "nginx.conf", "-g", "daemon off;"])
        wait_until(lambda: http_status(self.door_url(door) + "/healthz") == 200, 15,
                   f"nginx front door {door}")


def setting(name: str, value: object, low: int, high: int, what: str = "an integer") -> int:
    """A whole-number setting within [low, high], or a stop naming it."""
    text = str(value).strip()
    if not text.isdigit() or not low <= int(text) <= high:
        raise SystemExit(f"configuration error: {name} must be {what} between {low} and {high}, "
                         f"got {text!r}")
    return int(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", default=os.environ.get("NODES") or "3")
    parser.add_argument("--front-doors", default=os.environ.get("FRONT_DOORS") or "1",
                        help="FRONT_DOORS: nginx front doors with the same configuration")
    parser.add_argument("--redis", default=os.environ.get("REDIS") or "single",
                        help="single (one redis-server) or cluster (a local Redis Cluster)")
    for flag, name, default in (("--port", "PORT", FRONT_DOOR_PORT),
                                ("--status-port", "STATUS_PORT", "PORT + 1000"),
                                ("--redis-port", "REDIS_PORT",
                                 f"{REDIS_PORT} ({REDIS_CLUSTER_PORT} for a Redis Cluster)"),
                                ("--node-base-port", "NODE_BASE_PORT", NODE_BASE_PORT)):
        parser.add_argument(flag, default=os.environ.get(name) or "",
                            help=f"{name}, default {default}")
    args = parser.parse_args()
    if args.redis not in ("single", "cluster"):
        raise SystemExit(f"configuration error: REDIS must be single or cluster, "
                         f"got {args.redis!r}")

    def port(name: str, value: str, default: int) -> int:
        return setting(name, value or default, 1024, 65535 - 32, "a port")

    cluster = Cluster(
        nodes=setting("NODES", args.nodes, 1, 32),
        front_doors=setting("FRONT_DOORS", args.front_doors, 1, MAX_FRONT_DOORS),
        port=port("PORT", args.port, FRONT_DOOR_PORT),
        status_port=port("STATUS_PORT", args.status_port, 0) if args.status_port else None,
        redis_port=port("REDIS_PORT", args.redis_port,
                        REDIS_CLUSTER_PORT if args.redis == "cluster" else REDIS_PORT),
        node_base_port=port("NODE_BASE_PORT", args.node_base_port, NODE_BASE_PORT),
        redis_mode=args.redis)
    stopping = False

    def request_stop(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    print(f"starting {'a redis cluster' if cluster.clustered else 'redis'}, {cluster.nodes} nodes "
          f"and nginx on 127.0.0.1 ports: "
          f"{cluster.describe_ports()}; logs in {cluster.log_dir}", flush=True)
    cluster.start()
    doors = "  ".join(cluster.door_url(door) for door in cluster.doors())
    statuses = "  ".join(cluster.status_url(door) for door in cluster.doors())
    print(f"cluster is up: {doors}  (Ctrl-C stops it)\nnginx status: {statuses}", flush=True)
    try:
        while not stopping:
            for name, process in list(cluster.processes.items()):
                if process.poll() is not None:
                    print(f"{name} exited with {process.returncode}; see "
                          f"{cluster.log_dir / (name + '.log')}", flush=True)
                    cluster.processes.pop(name)
            time.sleep(0.5)
    finally:
        print("stopping the cluster", flush=True)
        cluster.stop()


if __name__ == "__main__":
    main()
