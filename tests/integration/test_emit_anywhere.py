"""Emit from anywhere: application code on a node, and a separate process, reach the clients of
a room, of a user or of everyone, whichever node they are on (service/bus/emitter.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import service
from service import create_app
from service.settings import load_settings

# also on a Redis Cluster: another process's emitter (sharded publish)
pytestmark = [pytest.mark.local_cluster,  # reaches the cluster's Redis directly
              pytest.mark.redis_cluster]
ROOT = Path(__file__).resolve().parents[2]


def redis_env(cluster) -> dict[str, str]:
    """The cluster's Redis as a node's settings name it."""
    if cluster.clustered:
        env = {"REDIS_CLUSTER_NODES": ",".join(f"127.0.0.1:{p}" for p in cluster.redis_ports())}
        if cluster.redis_password:
            env["REDIS_PASSWORD"] = cluster.redis_password
        return env
    return {"REDIS_URL": cluster.redis_url}


def emit(cluster, *args: str) -> subprocess.CompletedProcess:
    env = {key: value for key, value in os.environ.items()
           if key not in ("REDIS_URL", "REDIS_CLUSTER_NODES")}
    return subprocess.run([sys.executable, str(ROOT / "scripts" / "emit.py"), *args],
                          env={**env, **redis_env(cluster), "DOTENV_PATH": "/nonexistent"},
                          capture_output=True, text=True, timeout=30, check=False)


@pytest.fixture
def spread(users, room):
    """Members of `room` on every node, and one connection that is not in the room, of a user
    named like the room (so a direct to it is a marker for the room's channel: Client)."""
    members = {}
    for node in ("node-1", "node-2", "node-3"):
        name, token = users.register()
        client = users.connect(token, node)
        client.ok("join", {"room": room})
        members[node] = (name, client, token)
    _, outsider = users.user_on("node-2", name=room)
    clients = [client for _, client, _ in members.values()] + [outsider]
    for client in clients:
        client.listen("announcement", "notice", "reload")
    return members, outsider, clients


def test_a_separate_process_emits_to_a_room_a_user_and_everyone(cluster, users, room, spread):
    members, outsider, clients = spread
    result = emit(cluster, "--room", room, "--event", "announcement",
                  "--data", '{"text": "to the room"}')
    assert result.returncode == 0, result.stderr
    for _, client, _ in members.values():
        assert client.take("announcement", 1) == [{"text": "to the room"}]

    name, target, token = members["node-3"]
    second = users.connect(token, "node-1")
    second.listen("notice")
    assert emit(cluster, "--user", name, "--event", "notice",
                "--data", '{"text": "just you"}').returncode == 0
    assert target.take("notice", 1) == [{"text": "just you"}]
    assert second.take("notice", 1) == [{"text": "just you"}]

    assert emit(cluster, "--event", "reload", "--data", '{"reason": "new version"}').returncode == 0
    for client in clients:
        assert client.take("reload", 1) == [{"reason": "new version"}]

    another_user = members["node-1"][1]
    assert outsider.until_marker(another_user.mark_user(room), "announcement") == []
    for client in (outsider, another_user):  # a room named like the user carries its marker
        client.ok("join", {"room": name})
    marker = another_user.mark_room(name)
    assert outsider.until_marker(marker, "notice") == []
    assert another_user.until_marker(marker, "notice") == []


def test_a_bad_emit_is_refused_with_a_message(cluster):
    result = emit(cluster, "--room", "no spaces allowed", "--event", "x")
    assert result.returncode == 2 and "room" in result.stderr
    result = emit(cluster, "--event", "disconnect")
    assert result.returncode == 2 and "Socket.IO's own" in result.stderr


def test_application_code_on_a_node_emits_across_the_cluster(cluster, room, spread):
    members, _, _ = spread
    settings = load_settings({**redis_env(cluster), "NODE_NAME": "app-code",
                              "DOTENV_PATH": "/nonexistent"})
    app = create_app(settings, background=False)
    with app.app_context():
        service.emitter().to_room(room, "announcement", {"text": "from application code"})
    for _, client, _ in members.values():
        assert client.take("announcement", 1) == [{"text": "from application code"}]
