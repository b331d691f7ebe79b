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
# connections may hold at any moment.


@pytest.fixture(scope="session")
def cluster() -> Iterator[Cluster | ExternalCluster]:
    if EXTERNAL_URL:
        yield ExternalCluster(EXTERNAL_URL.rstrip("/"))
        return
    with own_cluster("cluster", nodes=3, port=18080, redis_port=16379,
                     node_base_port=15001) as instance:
        yield instance


@contextmanager
def own_cluster(name: str, *, nodes: int, port: int, redis_port: int, node_base_port: int,
                env: dict[str, str] | None = None, node_command: str = "gunicorn",
                ) -> Iterator[Cluster]:
    """A started cluster with TEST_ENV (plus `env`), its logs in test-results/<name>."""
    run_dir = RESULTS / name
    shutil.rmtree(run_dir, ignore_errors=True)
    instance = Cluster(nodes=nodes, port=port, redis_port=redis_port,
                       node_base_port=node_base_port, run_dir=run_dir,
                       env={**TEST_ENV, **(env or {})}, node_command=node_command)
    instance.start()
    try:
        yield instance
    finally:
        instance.stop()


