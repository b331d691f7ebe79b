"""The example app on top (examples/team_chat) against a real cluster: its backend issues the
JWTs, makes a team's private room, moderates through the send hook, decides joins through the
join hook, takes a member out, and stores what the webhooks report in SQLite. Two nodes behind
the front door, the app served over HTTP as the cluster calls it."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from werkzeug.serving import make_server

from examples.team_chat.app import create_app
from tests.conftest import own_cluster
from tests.integration.conftest import API_KEY, Client
from tests.waiting import wait_for

pytestmark = pytest.mark.local_cluster
FRONT_DOOR, REDIS, NODE_BASE, APP_PORT = 29580, 29679, 29601, 29590
APP = f"http://127.0.0.1:{APP_PORT}"
JWT_SECRET = "team-chat-jwt-secret-" + "x" * 16
HOOK_SECRET = "team-chat-hook-secret"


@pytest.fixture(scope="module")
def app_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    database: Path = tmp_path_factory.mktemp("team_chat") / "team_chat.sqlite3"
    app = create_app({"ROOMS_URL": f"http://127.0.0.1:{FRONT_DOOR}", "ROOMS_API_KEY": API_KEY,
                      "APP_JWT_SECRET": JWT_SECRET, "HOOK_SECRET": HOOK_SECRET,
                      "TEAM_CHAT_DB": str(database), "BLOCKED_WORDS": "heck"})
    server = make_server("127.0.0.1", APP_PORT, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield APP
    server.shutdown()


@pytest.fixture(scope="module")
def team_cluster(app_url: str):
    env = {"APP_JWT_SECRET": JWT_SECRET, "HOOK_SECRET": HOOK_SECRET,
           "JOIN_HOOK_URL": f"{app_url}/hooks/join", "SEND_HOOK_URL": f"{app_url}/hooks/send",
           "WEBHOOK_URL": f"{app_url}/webhooks"}
    with own_cluster("example-cluster", nodes=2, port=FRONT_DOOR, redis_port=REDIS,
                     node_base_port=NODE_BASE, env=env) as instance:
        yield instance


def sticky_keys(base: str) -> dict[str, str]:
    keys: dict[str, str] = {}
    for attempt in range(200):
        key = f"team-{attempt}"
        keys.setdefault(requests.get(f"{base}/readyz", params={"node_key": key},
                                     timeout=5).json()["node"], key)
        if len(keys) == 2:
            return keys
    raise AssertionError(f"no sticky key for both nodes: {keys}")


def sign_up(user: str, team: str) -> str:
    """The user's JWT from the app, once it signed the user up for `team`."""
    answer = requests.post(f"{APP}/signup", json={"user": user, "password": "password-1",
                                                  "team": team}, timeout=10)
    assert answer.status_code == 201, answer.text
    answer = requests.post(f"{APP}/token", json={"user": user, "password": "password-1"},
                           timeout=10)
    assert answer.status_code == 200, answer.text
    return answer.json()["token"]


def test_the_team_chat_runs_on_top_of_the_service(team_cluster, app_url):
    suffix = uuid.uuid4().hex[:6]
    team, other_team = f"blue{suffix}", f"red{suffix}"
    room = f"team-{team}"
    owner, member, outsider = f"ann{suffix}", f"bob{suffix}", f"eve{suffix}"
    tokens = {owner: sign_up(owner, team), member: sign_up(member, team),
              outsider: sign_up(outsider, other_team)}
    keys = sticky_keys(team_cluster.url)
    ann = Client(team_cluster.url, tokens[owner], keys["node-1"])
    bob = Client(team_cluster.url, tokens[member], keys["node-2"])
    eve = Client(team_cluster.url, tokens[outsider], keys["node-1"])
    bob.listen("removed")
    try:
        assert (ann.welcome["user"], bob.node) == (owner, "node-2")
        ann.ok("join", {"room": room})
        bob.ok("join", {"room": room})
        refused = eve.call("join", {"room": room})
        assert refused["error"]["code"] == "forbidden", refused

        sent = ann.ok("send", {"room": room, "text": "what the heck"})
        [delivered] = bob.take("message", 1)
        assert (delivered["id"], delivered["text"]) == (sent["id"], "what the ****")
        link = ann.call("send", {"room": room, "text": "see https://example.com"})
        assert link["error"] == {"code": "forbidden",
                                 "message": "links are not allowed in this app"}, link
        history = ann.ok("history", {"room": room})["messages"]
        assert [m["text"] for m in history] == ["what the ****"]

        removed = requests.post(f"{APP}/teams/{team}/remove", timeout=10, json={
            "owner": owner, "password": "password-1", "user": member})
        assert removed.status_code == 204, removed.text
        [notice] = bob.take("removed", 1)
        assert notice["room"] == room
        assert bob.call("send", {"room": room, "text": "still here?"})["error"]["code"] == \
            "forbidden"

        def stored(kind: str) -> list[dict]:
            return requests.get(f"{APP}/events", params={"room": room, "type": kind},
                                timeout=10).json()["events"]

        wait_for(lambda: stored("message"), 30, "the message's webhook to be stored")
        [event] = stored("message")
        assert event["message"]["id"] == sent["id"]
        assert event["message"]["text"] == "what the ****"
        wait_for(lambda: any(e["user"] == member and e["action"] == "removed"
                             for e in stored("member")), 30, "the removal's webhook")
    finally:
        for client in (ann, bob, eve):
            client.close()
