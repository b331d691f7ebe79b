"""A short locust run of each scenario against the cluster under test (the local one, or the
compose one through HOST): zero loss, zero disorder."""

import json
import os
import subprocess
import sys

import pytest

from .conftest import RESULTS


@pytest.mark.parametrize("scenario", ["chat", "fanout"])
def test_locust_smoke_run_delivers_everything_in_order(cluster, scenario):
    folder = RESULTS / f"loadtest-{scenario}"
    env = dict(os.environ, SCENARIO=scenario, USERS="50", SPAWN_RATE="50", DURATION="20s",
               HOST=cluster.url, RESULTS_DIR=str(folder), PROCESSES="1")
    run = subprocess.run([sys.executable, "loadtests/run.py"], env=env, capture_output=True,
                         text=True, timeout=240, check=False)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["lost"] == 0 and summary["duplicates"] == 0 and summary["out_of_order"] == 0
    assert summary["retries"] >= 0  # sends resent after a lost ack, reported beside duplicates
    assert summary["expected"] > 0 and summary["delivered"] == summary["expected"]
    assert summary["latency_ms"]["cross_node"]["p50"] is not None
    assert summary["deliveries_per_s"] > 0
    assert 0 < summary["load_generator_busiest_process_cores"] <= 1.2
    assert (folder / "latency-deliveries-users.png").stat().st_size > 10_000
    assert (folder / "report.html").exists() and (folder / "locust_stats.csv").exists()
