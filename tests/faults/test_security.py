"""No one acts as someone else, and no secret reaches a log."""

from __future__ import annotations

import re

import pytest
import requests

from tests.conftest import RESULTS
from tests.integration.conftest import API_KEY, SECRET_KEY, Client

pytestmark = pytest.mark.local_cluster


def test_a_client_cannot_send_as_someone_else(users, room):
    name, client = users.user_on("node-1")
    victim, victims_client = users.user_on("node-2", prefix="victim")
    client.ok("join", {"room": room})
    sent = client.ok("send", {"room": room, "text": "who am I", "user": victim, "node": "node-9",
                              "id": "1-0", "ts": 0})
    [message] = client.take("message", 1)
    assert (message["id"], message["user"], message["node"]) == (sent["id"], name, "node-1")
    client.ok("direct", {"to": victim, "text": "hi", "from": victim})
    [direct] = victims_client.take("direct", 1)
    assert (direct["from"], direct["to"]) == (name, victim)
    stored = requests.get(f"{users.base}/api/rooms/{room}/messages",
                          headers={"Authorization": f"Bearer {API_KEY}"}, timeout=5).json()
    assert [m["user"] for m in stored["messages"]] == [name]


def test_a_room_not_joined_is_closed_to_sends_and_stays_joined_for_no_one_else(users, room):
    _, member = users.user_on("node-1")
    _, outsider = users.user_on("node-2")
    member.ok("join", {"room": room})
    answer = outsider.call("send", {"room": room, "text": "let me in"})
    assert answer["error"]["code"] == "forbidden"
    outsider.ok("leave", {"room": room})  # leaving a room one never joined changes nothing
    assert member.ok("presence", {"room": room})["members"] == [member.welcome["user"]]
    assert member.until_marker(member.mark_room(room)) == []


@pytest.mark.redis_cluster
def test_secrets_never_reach_any_log(cluster, users, room):
    name, password = "secretive" + room[-8:], "a-password-nobody-may-log-" + room[-8:]
    requests.post(cluster.url + "/api/register", json={"username": name, "password": password},
                  timeout=10).raise_for_status()
    requests.post(cluster.url + "/api/token", json={"username": name, "password": "wrong-one-1"},
                  timeout=10)
    token = requests.post(cluster.url + "/api/token", json={"username": name,
                                                            "password": password},
                          timeout=10).json()["token"]
    client = Client(cluster.url, token, "secret-1")
    client.ok("join", {"room": room})
    client.ok("send", {"room": room, "text": "nothing to see"})
    client.close()
    requests.post(f"{cluster.url}/api/rooms/{room}/messages", json={"text": "via the API"},
                  headers={"Authorization": f"Bearer {API_KEY}"}, timeout=5).raise_for_status()
    requests.get(f"{cluster.url}/api/cluster", headers={"Authorization": f"Bearer {token}x"},
                 timeout=5)
    secrets = {"password": password, "token": token, "API_KEY": API_KEY,
               "SECRET_KEY": SECRET_KEY, "token signature": token.rsplit(".", 1)[-1]}
    logs = sorted(RESULTS.glob("**/logs/*.log"))
    assert any(path.stat().st_size for path in logs)
    for path in logs:
        text = path.read_text(errors="replace")
        for what, secret in secrets.items():
            assert secret not in text, f"{what} appears in {path}"
        assert not re.search(r"redis://[^@\s/]*:[^@\s/]+@", text), f"a Redis password in {path}"
