"""A short `make bench` over three of its systems: each serves the scenario, nothing is lost, and
every row carries its ratio to the Node.js reference."""

import json
import os
import shutil
import subprocess
import sys

import pytest

from tests.conftest import RESULTS

pytestmark = pytest.mark.local_cluster


def test_bench_runs_this_service_the_node_reference_and_the_naive_app():
    folder = RESULTS / "bench"
    shutil.rmtree(folder, ignore_errors=True)  # a journal of an earlier run would be resumed
    env = dict(os.environ, SYSTEMS="rooms-1,node-reference-3,naive-1", SCENARIOS="chat",
               PARTS="compare",
               USERS="20", DURATION="5", SPAWN_RATE="20", PROCESSES="1",
               BENCH_RESULTS=str(folder))
    run = subprocess.run([sys.executable, "loadtests/bench.py"], env=env, capture_output=True,
                         text=True, timeout=400, check=False)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    rows = {row["system"]: row for row in json.loads((folder / "summary.json").read_text())}
    assert set(rows) == {"rooms-1", "node-reference-3", "naive-1"}
    for row in rows.values():
        assert row["lost"] == 0 and row["deliveries_per_s"] > 0
        assert row["server_cpu_s_per_1000"] > 0 and row["p99_ms"] is not None
        assert row["ratio_deliveries_per_cpu"] > 0
    assert rows["node-reference-3"]["ratio_deliveries_per_s"] == 1.0
    assert (folder / "bench.png").stat().st_size > 10_000
    assert "x per cpu" in run.stdout


def test_the_scale_series_runs_on_one_redis_and_on_a_redis_cluster():
    folder = RESULTS / "bench-scale"
    shutil.rmtree(folder, ignore_errors=True)  # a journal of an earlier run would be resumed
    env = dict(os.environ, PARTS="scale", SCALE_NODES="2", SCALE_USERS="16", USERS="16",
               DURATION="5", SPAWN_RATE="16", PROCESSES="1", BENCH_RESULTS=str(folder))
    run = subprocess.run([sys.executable, "loadtests/bench.py"], env=env, capture_output=True,
                         text=True, timeout=400, check=False)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    rows = json.loads((folder / "scale.json").read_text())
    assert [(row["redis"], row["nodes"]) for row in rows] == [("single", 2), ("cluster", 2)]
    for row in rows:
        assert row["lost"] == 0 and row["duplicates"] == 0 and row["out_of_order"] == 0
        assert row["directs_received"] > 0 and row["server_cpu_s_per_1000"] > 0
        assert 0 <= row["idle_node_cpu_percent"] < 50
    assert (folder / "scale.png").stat().st_size > 10_000


def test_the_drops_part_delivers_everything_here_and_reports_both_systems_side_by_side():
    """A short drops run: a drop every 1.5 s for 1 s while 2 rooms send, this service and the Node
    reference with connection state recovery; about 20 s of wall time on an idle 2-core machine.
    Its ports (30500-30611) are apart from a full `make bench`'s (30000-30111)."""
    folder = RESULTS / "bench-drops"
    shutil.rmtree(folder, ignore_errors=True)
    env = dict(os.environ, PARTS="drops", DURATION="4", DROPS_UP_S="1.5", DROPS_DOWN_S="1",
               DROPS_ROOMS="2", DROPS_SENDERS="1", DROPS_RECEIVERS="2", DROPS_SETTLE_S="60",
               DROPS_PORT_BASE="30500", BENCH_RESULTS=str(folder))
    run = subprocess.run([sys.executable, "loadtests/bench.py"], env=env, capture_output=True,
                         text=True, timeout=400, check=False)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    rows = {row["system"]: row for row in json.loads((folder / "drops.json").read_text())}
    assert set(rows) == {"rooms-3", "node-reference-3-streams"}
    for row in rows.values():
        assert row["drops"] >= 1 and row["acknowledged"] > 0 and row["settled"]
        assert row["delivered_percent"] is not None and row["receiver_reconnects"]
    ours = rows["rooms-3"]
    assert ours["delivered_percent"] == 100.0 and ours["expected"] == 2 * ours["acknowledged"]
    assert ours["duplicates"] == ours["out_of_order"] == ours["unacknowledged_sends"] == 0
    assert rows["node-reference-3-streams"]["mode"] == "recovery"
    assert (folder / "drops.png").stat().st_size > 10_000
    assert "losses from" in run.stdout
