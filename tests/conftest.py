"""The real local cluster (redis-server, 3 gunicorn nodes, nginx), shared by every test folder.

The cluster uses its own ports and folder, so it runs beside a cluster started by `make run`.
CLUSTER_URL points the tests at another deployment instead (the compose cluster, for one).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from cluster import Cluster

RESULTS = Path(__file__).resolve().parents[1] / "test-results"
TEST_ENV = {
    "RATE_LIMIT_PER_S": "50",
    "RATE_LIMIT_BURST": "100",
    "HEARTBEAT_INTERVAL_S": "0.5",
    "NODE_TTL_S": "3",
    "ROOM_HISTORY_MAX": "1000",  # small enough for a test to outrun it
    "OPERATORS": "operator1",  # may open /admin (tests/browser/test_admin.py)
    "HANDOVER_SPREAD_S": "2",  # a drained node's few dozen test clients need no 5 s spread
}


EXTERNAL_URL = os.environ.get("CLUSTER_URL")  # e.g. the compose cluster; tests then skip the
# ones marked local_cluster, which stop, kill or reach nodes behind the front door's back


@dataclass
class ExternalCluster:
    url: str


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    if EXTERNAL_URL:
        skip = pytest.mark.skip(reason="needs the local launcher's process control")
        for item in items:
            if "local_cluster" in item.keywords:
                item.add_marker(skip)


# Test clusters use ports below the kernel's ephemeral range (32768 and up here), which outgoing
# connections may hold at any moment. The shared cluster: front doors 18080 and 18180, their nginx
# status 19080 and 19180, nodes from 15001, Redis 16379 (a Redis Cluster: 16371-16376, +10000).


REDIS_MODES = ["external"] if EXTERNAL_URL else ["single", "cluster"]
REDIS_PORTS = {"single": 16379, "cluster": 16371}  # a Redis Cluster: 16371-16376 (+10000)
# Which tests run on a Redis Cluster too: "marked" (those marked `redis_cluster`: what differs
# there, slots, cross-slot scripts, MOVED and failover, sharded pub/sub, per-room ordering,
# per-master health) or "all" (every test on both, as before; make test REDIS_CLUSTER_TESTS=all)
REDIS_CLUSTER_TESTS = os.environ.get("REDIS_CLUSTER_TESTS", "marked")
if REDIS_CLUSTER_TESTS not in ("marked", "all"):
    raise pytest.UsageError(f"REDIS_CLUSTER_TESTS={REDIS_CLUSTER_TESTS}: marked or all")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Every test that needs a cluster (through `redis_mode`) gets its Redis modes: one Redis,
    and a Redis Cluster too if it is marked `redis_cluster` (or REDIS_CLUSTER_TESTS=all)."""
    if "redis_mode" not in metafunc.fixturenames:
        return
    both = (REDIS_CLUSTER_TESTS == "all"
            or metafunc.definition.get_closest_marker("redis_cluster") is not None)
    modes = REDIS_MODES if both or EXTERNAL_URL else ["single"]
    metafunc.parametrize("redis_mode", modes, indirect=True, scope="session")


@pytest.fixture(scope="session")
def redis_mode(request: pytest.FixtureRequest) -> str:
    """What the test's cluster runs on: single, cluster or external (its test id says)."""
    return request.param


@pytest.fixture(scope="session")
def cluster(redis_mode: str) -> Iterator[Cluster | ExternalCluster]:
    """The shared cluster: its nodes on one Redis, then (tests marked `redis_cluster`) on a Redis
    Cluster of three masters with a replica each; two front doors."""
    if redis_mode == "external":
        yield ExternalCluster(EXTERNAL_URL.rstrip("/"))
        return
    with own_cluster(f"cluster-{redis_mode}", nodes=3, port=18080, front_doors=2,
                     redis_port=REDIS_PORTS[redis_mode], node_base_port=15001,
                     redis_mode=redis_mode) as instance:
        yield instance


@contextmanager
def own_cluster(name: str, *, nodes: int, port: int, redis_port: int, node_base_port: int,
                env: dict[str, str] | None = None, node_command: str = "gunicorn",
                redis_mode: str = "single", front_doors: int = 1,
                status_port: int | None = None) -> Iterator[Cluster]:
    """A started cluster with TEST_ENV (plus `env`), its logs in test-results/<name>; nginx's
    status on `status_port` (by default `port` + 1000)."""
    run_dir = RESULTS / name
    shutil.rmtree(run_dir, ignore_errors=True)
    instance = Cluster(nodes=nodes, port=port, front_doors=front_doors, redis_port=redis_port,
                       node_base_port=node_base_port, run_dir=run_dir, status_port=status_port,
                       env={**TEST_ENV, **(env or {})}, node_command=node_command,
                       redis_mode=redis_mode)
    instance.start()
    try:
        yield instance
    finally:
        instance.stop()


