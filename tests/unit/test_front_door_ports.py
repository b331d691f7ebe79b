"""The local launcher's front doors: where each one and its nginx status listen, and bad settings
that stop the start before anything runs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from cluster import Cluster

ROOT = Path(__file__).resolve().parents[2]


def test_each_front_door_and_its_status_have_ports_of_their_own():
    cluster = Cluster(front_doors=2)
    assert cluster.ports()["front door"] == [8080, 8180]
    assert cluster.ports()["status"] == [9080, 9180]
    assert cluster.status_url(2) == "http://127.0.0.1:9180/nginx_status"
    assert "front doors 8080, 8180 (nginx status 9080, 9180)" in cluster.describe_ports()
    moved = Cluster(port=18080, status_port=18070, front_doors=2)
    assert moved.ports()["status"] == [18070, 18170]


def test_every_front_door_is_an_allowed_origin():
    origins = Cluster(front_doors=2).node_env(1)["ALLOWED_ORIGINS"].split(",")
    assert {"http://127.0.0.1:8080", "http://localhost:8180"} <= set(origins)


def test_ports_used_twice_stop_the_start_naming_the_settings():
    cluster = Cluster(nodes=20, front_doors=2, node_base_port=8170)
    with pytest.raises(SystemExit, match=r"ports used twice: 8180 \(PORT and NODE_BASE_PORT\)"):
        cluster.check_ports()
    assert cluster.processes == {}


def launch(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "scripts" / "cluster.py"), *args],
                          env={**os.environ, **env}, capture_output=True, text=True, timeout=30,
                          check=False)


@pytest.mark.parametrize(("args", "env", "message"), [
    (["--front-doors", "0"], {}, "FRONT_DOORS must be an integer between 1 and 4, got '0'"),
    ([], {"FRONT_DOORS": "two"}, "FRONT_DOORS must be an integer between 1 and 4, got 'two'"),
    (["--nodes", "0"], {}, "NODES must be an integer between 1 and 32, got '0'"),
    (["--status-port", "80"], {}, "STATUS_PORT must be a port between 1024 and 65503, got '80'"),
])
def test_a_bad_scale_setting_stops_the_start_naming_it(args, env, message):
    result = launch(*args, **env)
    assert result.returncode == 1
    assert result.stderr.strip() == f"configuration error: {message}"
    assert "starting" not in result.stdout
