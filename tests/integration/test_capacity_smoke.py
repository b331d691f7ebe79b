"""A short `make capacity`: idle connections are held and measured, memory per connection is
measured by part beside the Node.js reference with the pings' CPU and a reconnect storm, and a
growing fan-out room is delivered whole to every receiver, with latencies, across the nodes."""

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import RESULTS

pytestmark = pytest.mark.local_cluster


def test_capacity_probe_holds_idle_connections_and_times_a_growing_room():
    folder = RESULTS / "capacity"
    env = dict(os.environ, IDLE_STEP="150", IDLE_MAX="300", ROOM_SIZES="30,60", SEND_S="2",
               RATE="2", MEMORY_CONNECTIONS="1000", IDLE_WINDOW_S="3", STORM_CONNECTIONS="500",
               STORM_BOUND_S="30", PROXY_BUFFER_SIZES="1k", CAPACITY_RESULTS=str(folder))
    run = subprocess.run([sys.executable, "loadtests/node_capacity.py"], env=env,
                         capture_output=True, text=True, timeout=400, check=False)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    results = json.loads((folder / "capacity.json").read_text())
    idle = results["idle"]
    assert [step["connections"] for step in idle["steps"]] == [0, 150, 300]
    assert idle["held"] == 300 and idle["rss_kb_per_connection"] > 0
    memory = {row["system"]: row for row in results["memory"]}
    assert set(memory) == {"rooms", "node-reference"}  # side by side, through the front door
    for row in memory.values():
        assert row["connections"] == 1000 and row["failed"] == 0
        assert row["kb_per_connection"] > 0 and row["load_generator_cpu_s"] > 0
        assert row["node_kb_per_connection"] > 0 and row["nginx_kb_per_connection"] > 0
        assert row["kb_per_connection"] == pytest.approx(
            sum(row[f"{part}_kb_per_connection"] for part in ("node", "nginx", "redis")), abs=0.2)
        idle = row["idle_cpu"]
        assert idle["window_s"] >= 3 and idle["open_after"] == 1000
        assert idle["node_cpu_per_s"] >= 0 and "load_generator_cpu_per_s" in idle  # 3 s: maybe 0
        storm = row["storm"]
        assert storm["clients"] == 500 and storm["served"] == 500 and storm["failed"] == 0
        assert 0 < storm["all_served_s"] <= 30 and storm["within_bound"]
    [verdict] = results["memory_targets"]["rooms"]
    assert verdict["held"] and verdict["storm_met"] and verdict["ratio_to_reference"] > 0
    fanout = results["fanout"]
    assert [step["room_size"] for step in fanout["steps"]] == [30, 60]
    for step in fanout["steps"]:
        assert step["missing"] == 0 and step["duplicates"] == 0 and step["messages"] == 4
        assert step["retries"] >= 0
        assert step["deliveries"] == step["room_size"] * 4
        assert len(step["nodes"]) == 3 and step["cross_node_p99_ms"] is not None
    assert fanout["largest_room_within_limit"] == 60
    assert (folder / "capacity.png").stat().st_size > 10_000
