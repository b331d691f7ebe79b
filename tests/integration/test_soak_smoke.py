"""A short `make soak` on a cluster of its own (ports 31501-31880): nothing lost, every process's
memory sampled and judged, per-minute percentiles, the chart."""

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import RESULTS

pytestmark = pytest.mark.local_cluster

PROCESSES = {"node-1 master", "node-1 worker", "node-2 worker", "node-3 worker", "nginx master",
             "redis", "locust"}


def test_a_short_soak_loses_nothing_and_samples_every_process():
    folder = RESULTS / "soak"
    env = dict(os.environ, SOAK_DURATION="15s", USERS="10", SPAWN_RATE="10", PROCESSES="1",
               SOAK_SAMPLE_S="1", SOAK_SETTLE_S="5", SOAK_PORT_BASE="31500",
               SOAK_RESULTS=str(folder))
    run = subprocess.run([sys.executable, "loadtests/soak.py"], env=env, capture_output=True,
                         text=True, timeout=240, check=False)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    report = json.loads((folder / "soak.json").read_text())
    counts = report["counts"]
    assert counts["lost"] == counts["duplicates"] == counts["out_of_order"] == 0
    assert counts["expected"] > 0 and counts["delivered"] == counts["expected"]
    assert report["per_minute"][0]["delivery_p99_ms"] is not None
    assert report["per_minute"][0]["ack_p50_ms"] is not None
    rss = report["memory"]["rss_mb"]
    assert set(rss) >= PROCESSES and any(label.startswith("nginx worker") for label in rss)
    assert all(mb is None or mb > 0 for values in rss.values() for mb in values)
    assert report["memory"]["redis_used_memory_mb"]["redis"][-1] > 0
    judged = report["leaks"]["processes"]
    assert judged["node-1 worker"]["slope_mb_per_h"] is not None
    assert report["settings"]["nodes_live"] == 3
    assert (folder / "soak.png").stat().st_size > 10_000
    assert "lost 0, duplicated 0" in run.stdout
