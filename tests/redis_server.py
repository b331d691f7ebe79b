"""A real redis-server on a free loopback port, for tests that need Redis but not the cluster."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class RedisServer:
    def __init__(self, data_dir: Path, replica_of: int | None = None):
        """A server of its own; with `replica_of` (a port), a replica of that server."""
        self.port = free_port()
        data_dir.mkdir(parents=True, exist_ok=True)
        binary = shutil.which("redis-server") or "/usr/bin/redis-server"
        replica = ["--replicaof", "127.0.0.1", str(replica_of)] if replica_of else []
        self.argv = [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                     "--appendonly", "no", "--dir", str(data_dir), *replica]
        self.start()

    def start(self) -> None:
        """Start the server (again, on the same port) and return once it answers."""
        self.process = subprocess.Popen(self.argv, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as conn:
                    conn.sendall(b"PING\r\n")
                    if conn.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)


def free_ports(count: int, low: int = 17000, high: int = 22000) -> int:
    """A base port with `count` free ports above it, and free cluster-bus ports (+10000)."""
    import random

    for _ in range(200):
        base = random.randrange(low, high - count)
        ports = [base + i for i in range(count)]
        if all(_free(port) and _free(port + 10000) for port in ports):
            return base
    raise RuntimeError("no free ports for a Redis Cluster")


def _free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


class RedisClusterServers:
    """A real Redis Cluster of six redis-servers (3 masters, a replica each), started by the
    project's launcher (scripts/cluster.py), for tests that need one but no service node."""

    def __init__(self, folder: Path):
        from cluster import Cluster

        self.launcher = Cluster(nodes=0, redis_mode="cluster", redis_port=free_ports(6),
                                run_dir=folder)
        self.launcher.log_dir.mkdir(parents=True, exist_ok=True)
        self.launcher.start_redis_cluster()

    @property
    def ports(self) -> list[int]:
        return self.launcher.redis_ports()

    @property
    def seeds(self) -> tuple[tuple[str, int], ...]:
        return tuple(("127.0.0.1", port) for port in self.ports)

    def stop(self) -> None:
        self.launcher.stop()
