"""Rooms the app controls and the hooks (PROTOCOL.md, third edition), end to end: a cluster of
its own (2 gunicorn nodes, nginx, one Redis, then a Redis Cluster) with ROOMS_DEFAULT=private and
both hooks pointing at a real, signed-request-checking HTTP receiver in this process
(tests/hook_receiver.py); real Socket.IO clients through the front door, pinned to nodes.

Every row of the rooms table; `removed` reaching two connections of a user on two nodes and
nothing of the room reaching them after it; private and read-only rooms, exact right after the
call that changed them; the hooks' allow, deny, replacement, timeout and failure; the join
hook's cache shared by the nodes and forgotten on removal; no second hook call for a retried
client_id; a slow hook for one user delaying nobody else; the hooks' metrics; no secret in logs.
"""

from __future__ import annotations

import re
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from tests.conftest import RESULTS, own_cluster
from tests.hook_receiver import Answer, HookReceiver
from tests.waiting import wait_for

from .conftest import API_KEY, Client, Users

pytestmark = pytest.mark.local_cluster

# ports: front door 27080 (its nginx status 27590), Redis 27379 (a Redis Cluster: 17471-17476,
# its bus 27471-27476, below the kernel's ephemeral ports), nodes from 27001, the hook receiver
# 27500
HOOKS_PORT = 27500
HOOK_SECRET = "app-rooms-hook-secret-0123456789"
HOOK_TIMEOUT_S = 3
REDIS_PORTS = {"single": 27379, "cluster": 17471}
APP = {"Authorization": f"Bearer {API_KEY}"}
NODES = ("node-1", "node-2")


class Backend:
    """The app's backend as the hooks reach it: answers chosen per user by each test (users are
    fresh per test, so tests never see each other's), every request recorded."""

    def __init__(self) -> None:
        self.join: dict[str, Answer] = {}  # user -> the join hook's answer
        self.send: dict[str, Answer] = {}  # user -> the send hook's answer
        self.receiver = HookReceiver(HOOKS_PORT, HOOK_SECRET, self.answer)

    def answer(self, path: str, body: Any) -> Answer:
        user = body.get("user") if isinstance(body, dict) else None
        if path == "/join":
            return self.join.get(user, Answer(body={"allow": False, "reason": "not invited"}))
        return self.send.get(user, Answer())

    def asked(self, path: str, user: str) -> list[dict[str, Any]]:
        return [body for body in self.receiver.calls(path) if body.get("user") == user]


@pytest.fixture(scope="module")
def backend() -> Iterator[Backend]:
    instance = Backend()
    yield instance
    instance.receiver.close()


@pytest.fixture(scope="module")
def app_cluster(redis_mode: str, backend: Backend):
    env = {"ROOMS_DEFAULT": "private", "HOOK_SECRET": HOOK_SECRET,
           "HOOK_TIMEOUT_S": str(HOOK_TIMEOUT_S), "JOIN_HOOK_CACHE_S": "60",
           "JOIN_HOOK_URL": backend.receiver.url + "/join",
           "SEND_HOOK_URL": backend.receiver.url + "/send"}
    with own_cluster(f"app-rooms-{redis_mode}", nodes=2, port=27080, status_port=27590,
                     redis_port=REDIS_PORTS[redis_mode], node_base_port=27001, env=env,
                     redis_mode=redis_mode) as instance:
        yield instance


@pytest.fixture
def users(app_cluster) -> Iterator[Users]:
    pool = Users(app_cluster)
    yield pool
    pool.close()


def api(users: Users, method: str, path: str, **kwargs: Any) -> requests.Response:
    return requests.request(method, users.base + path, headers=APP, timeout=10, **kwargs)


def put_rules(users: Users, room: str, **rules: bool) -> dict[str, Any]:
    answer = api(users, "PUT", f"/api/rooms/{room}", json=rules)
    assert answer.status_code == 200, answer.text
    return answer.json()


def add(users: Users, room: str, *names: str) -> None:
    for name in names:
        answer = api(users, "PUT", f"/api/rooms/{room}/members/{name}")
        assert answer.status_code == 204, answer.text


def fresh(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:10]}"


def code(answer: dict[str, Any]) -> str:
    return "ok" if answer.get("ok") is True else answer["error"]["code"]


def connect(users: Users, node: str, prefix: str = "u", *, name: str | None = None,
            token: str | None = None) -> tuple[str, Client]:
    if token is None:
        name, token = users.register(prefix, name=name)
    client = users.connect(token, node)
    client.listen("removed", "expired")
    assert name is not None
    return name, client


# ---- the rooms table ---------------------------------------------------------------------------


@pytest.mark.redis_cluster
def test_every_row_of_the_rooms_table(users):
    room = fresh("table-")
    assert put_rules(users, room) == {"room": room, "private": True, "read_only": False}
    assert put_rules(users, room, read_only=True) == {"room": room, "private": True,
                                                      "read_only": True}
    assert put_rules(users, room, private=False) == {"room": room, "private": False,
                                                     "read_only": True}
    put_rules(users, room, read_only=False)
    ann, ann_client = connect(users, "node-2", "ann")
    ann_client.ok("join", {"room": room})
    answer = api(users, "GET", f"/api/rooms/{room}")
    assert answer.status_code == 200
    assert answer.json() == {"room": room, "private": False, "read_only": False,
                             "members": [ann]}
    team = fresh("team-")
    add(users, team, ann)
    ann_client.ok("join", {"room": team})
    removed = api(users, "DELETE", f"/api/rooms/{team}/members/{ann}")
    assert removed.status_code == 204 and removed.text == ""
    [told] = ann_client.take("removed", 1)
    assert told == {"room": team, "reason": "the app removed you from this room"}
    posted = api(users, "POST", f"/api/users/{ann}/messages", json={"text": "from the app"})
    assert posted.status_code == 202
    [direct] = ann_client.take("direct", 1)
    assert (direct["id"], direct["from"], direct["to"], direct["text"]) == (
        posted.json()["id"], "api", ann, "from the app")
    ended = api(users, "POST", f"/api/users/{ann}/disconnect", json={"reason": "bye"})
    assert ended.status_code == 204
    assert ann_client.take("expired", 1) == [{"reason": "bye"}]
    wait_for(lambda: not ann_client.sio.connected, 5, "the app's disconnect")


def test_the_apps_calls_refuse_bad_input_and_anything_but_the_api_key(users):
    _, token = users.register("eve")
    assert requests.put(users.base + "/api/rooms/r1", json={"private": True},
                        timeout=10).status_code == 401
    as_user = requests.put(users.base + "/api/rooms/r1", json={"private": True}, timeout=10,
                           headers={"Authorization": f"Bearer {token}"})
    assert as_user.status_code == 403 and as_user.json()["error"]["code"] == "forbidden"
    for method, path, body in [("PUT", "/api/rooms/r1", {"private": "yes"}),
                               ("PUT", "/api/rooms/bad%20room", {}),
                               ("PUT", "/api/rooms/r1/members/bad%20user", None),
                               ("POST", "/api/users/u1/messages", {"text": ""}),
                               ("POST", "/api/users/u1/disconnect", {"reason": 7})]:
        answer = api(users, method, path, json=body)
        assert answer.status_code == 400, (path, answer.text)
        assert answer.json()["error"]["code"] == "bad_request"


# ---- private and read-only rooms ---------------------------------------------------------------


@pytest.mark.redis_cluster
def test_rooms_are_private_by_default_and_admit_only_the_apps_members(users):
    room = fresh("private-")
    member, member_client = connect(users, "node-1", "mem")
    _, stranger_client = connect(users, "node-2", "str")
    refused = stranger_client.call("join", {"room": room})
    assert code(refused) == "forbidden" and refused["error"]["message"] == "not invited"
    assert code(stranger_client.call("history", {"room": room})) == "forbidden"
    add(users, room, member)
    member_client.ok("join", {"room": room})
    sent = member_client.ok("send", {"room": room, "text": "members only"})
    assert code(stranger_client.call("join", {"room": room})) == "forbidden"
    assert [m["id"] for m in member_client.take("message", 1)] == [sent["id"]]
    public = fresh("public-")
    put_rules(users, public, private=False)
    stranger_client.ok("join", {"room": public})
    stranger_client.ok("send", {"room": public, "text": "anyone may"})


@pytest.mark.redis_cluster
def test_read_only_refuses_sends_right_after_the_put_on_every_node_and_the_app_still_posts(
        users):
    room = fresh("news-")
    one, one_client = connect(users, "node-1", "ro")
    two, two_client = connect(users, "node-2", "ro")
    add(users, room, one, two)
    for client in (one_client, two_client):
        client.ok("join", {"room": room})
    put_rules(users, room, read_only=True)
    for client in (one_client, two_client):  # at once: the append reads the rule
        refused = client.call("send", {"room": room, "text": "may I?"})
        assert code(refused) == "forbidden" and "read-only" in refused["error"]["message"]
    posted = requests.post(f"{users.base}/api/rooms/{room}/messages", headers=APP, timeout=10,
                           json={"text": "news from the app"})
    assert posted.status_code == 202
    for client in (one_client, two_client):
        [message] = client.take("message", 1)
        assert (message["id"], message["user"]) == (posted.json()["id"], "api")
    assert [m["text"] for m in users.history(room)] == ["news from the app"]


@pytest.mark.redis_cluster
def test_removed_reaches_two_connections_on_two_nodes_and_nothing_of_the_room_after_it(users):
    name = fresh("gone")
    room = name  # named like the user: the user's channel shares the room's slot (markers)
    name, laptop = connect(users, "node-1", name=name)
    _, phone = connect(users, "node-2", name=name, token=another_token(users, name))
    watcher, watcher_client = connect(users, "node-1", "watch")
    add(users, room, name, watcher)
    for client in (laptop, phone, watcher_client):
        client.ok("join", {"room": room})
    assert api(users, "DELETE", f"/api/rooms/{room}/members/{name}",
               json={"reason": "moved on"}).status_code == 204
    refused = phone.call("send", {"room": room, "text": "still here?"})  # at once, exact
    assert code(refused) == "forbidden"
    for client in (laptop, phone):
        assert client.take("removed", 1) == [{"room": room, "reason": "moved on"}]
    after = watcher_client.ok("send", {"room": room, "text": "after the removal"})
    marker = watcher_client.mark_user(name)
    for client in (laptop, phone):
        messages = client.until_marker(marker, "message")
        assert after["id"] not in [m["id"] for m in messages], messages
        assert code(client.call("send", {"room": room, "text": "x"})) == "forbidden"
    assert laptop.ok("rooms", {})["rooms"] == []
    wait_for(lambda: api(users, "GET", f"/api/rooms/{room}").json()["members"] == [watcher],
             5, "the removed user's presence to end")
    assert code(laptop.call("join", {"room": room})) == "forbidden"  # the app took it out
    assert [m["text"] for m in users.history(room)] == ["after the removal"]


def another_token(users: Users, name: str) -> str:
    """Another token of account `name` (its password is the one Users.register gives)."""
    answer = requests.post(users.base + "/api/token", timeout=10,
                           json={"username": name, "password": "correct-horse-" + name})
    assert answer.status_code == 200, answer.text
    return answer.json()["token"]


@pytest.mark.redis_cluster
def test_disconnecting_a_user_ends_its_connections_on_every_node_within_a_second(users):
    name, laptop = connect(users, "node-1", "bye")
    _, phone = connect(users, "node-2", name=name, token=another_token(users, name))
    _, bystander = connect(users, "node-2", "stay")
    answered = time.monotonic()
    assert api(users, "POST", f"/api/users/{name}/disconnect",
               json={"reason": "account closed"}).status_code == 204
    for client in (laptop, phone):
        assert client.take("expired", 1, timeout=1) == [{"reason": "account closed"}]
    wait_for(lambda: not laptop.sio.connected and not phone.sio.connected, 1,
             "both connections to end")
    assert time.monotonic() - answered < 1.5
    assert bystander.sio.connected and bystander.ok("rooms", {})


# ---- the join hook -----------------------------------------------------------------------------


@pytest.mark.redis_cluster
def test_the_join_hook_allows_and_is_remembered_by_every_node_until_a_removal(users, backend):
    room = fresh("hooked-")
    name, first = connect(users, "node-1", "jh")
    _, second = connect(users, "node-2", name=name, token=another_token(users, name))
    backend.join[name] = Answer(body={"allow": True})
    first.ok("join", {"room": room})
    second.ok("join", {"room": room})  # the other node reads the remembered answer
    first.ok("send", {"room": room, "text": "let in by the hook"})
    asked = backend.asked("/join", name)
    assert asked == [{"event": "join", "user": name, "room": room}]
    assert all(r.verified for r in backend.receiver.requests if r.body == asked[0])
    assert api(users, "DELETE", f"/api/rooms/{room}/members/{name}").status_code == 204
    backend.join[name] = Answer(body={"allow": False, "reason": "not any more"})
    refused = second.call("join", {"room": room})
    assert refused["error"] == {"code": "forbidden", "message": "not any more"}
    assert len(backend.asked("/join", name)) == 2  # forgotten: asked again


def test_a_join_hook_that_fails_or_times_out_makes_the_join_unavailable_and_joins_nothing(
        users, backend):
    name, client = connect(users, "node-2", "jf")
    for answer in (Answer(status=500), Answer(body=b"not json"),
                   Answer(hold=threading.Event())):
        room = fresh("flaky-")
        backend.join[name] = answer
        started = time.monotonic()
        assert code(client.call("join", {"room": room})) == "unavailable"
        assert time.monotonic() - started < HOOK_TIMEOUT_S + 2
        assert api(users, "GET", f"/api/rooms/{room}").json()["members"] == []
    assert client.ok("rooms", {})["rooms"] == []


# ---- the send hook -----------------------------------------------------------------------------


def test_the_send_hook_replaces_refuses_and_fails_closed(users, backend):
    room = fresh("moderated-")
    name, writer = connect(users, "node-1", "sh")
    reader_name, reader = connect(users, "node-2", "rd")
    add(users, room, name, reader_name)
    for client in (writer, reader):
        client.ok("join", {"room": room})
    backend.send[name] = Answer(body={"allow": True, "text": "[moderated]"})
    sent = writer.ok("send", {"room": room, "text": "something rude", "client_id": "c-1"})
    [message] = reader.take("message", 1)
    assert (message["id"], message["text"]) == (sent["id"], "[moderated]")
    backend.send[name] = Answer(body={"allow": False, "reason": "no spam here"})
    refused = writer.call("send", {"room": room, "text": "buy now"})
    assert refused["error"] == {"code": "forbidden", "message": "no spam here"}
    for answer in (Answer(status=500), Answer(body=b"<html>"), Answer(status=302, body=b"",
                   headers={"Location": "/send"}), Answer(hold=threading.Event())):
        backend.send[name] = answer
        assert code(writer.call("send", {"room": room, "text": "lost?"})) == "unavailable"
    assert [(m["id"], m["text"]) for m in users.history(room)] == [(sent["id"], "[moderated]")]
    assert [b["text"] for b in backend.asked("/send", name)] == [
        "something rude", "buy now", "lost?", "lost?", "lost?", "lost?"]
    assert backend.asked("/send", name)[0] == {"event": "send", "user": name, "room": room,
                                               "text": "something rude", "client_id": "c-1"}
    backend.send[name] = Answer()
    again = writer.ok("send", {"room": room, "text": "something rude", "client_id": "c-1"})
    assert again == sent and len(backend.asked("/send", name)) == 6  # answered from the store


def test_the_send_hook_moderates_direct_messages_and_a_retry_asks_it_once(users, backend):
    name, sender = connect(users, "node-2", "dm")
    to, recipient = connect(users, "node-1", "to")
    backend.send[name] = Answer(body={"allow": True, "text": "d**n"})
    sent = sender.ok("direct", {"to": to, "text": "darn", "client_id": "d-1"})
    [direct] = recipient.take("direct", 1)
    assert (direct["id"], direct["text"]) == (sent["id"], "d**n")
    assert sender.ok("direct", {"to": to, "text": "darn", "client_id": "d-1"}) == sent
    assert backend.asked("/send", name) == [{"event": "direct", "user": name, "to": to,
                                             "text": "darn", "client_id": "d-1"}]
    backend.send[name] = Answer(body={"allow": False})
    assert code(sender.call("direct", {"to": to, "text": "again"})) == "forbidden"


def test_a_slow_send_hook_for_one_user_delays_no_other_users_sends(users, backend):
    room = fresh("busy-")
    slow, slow_client = connect(users, "node-1", "slow")
    fast, fast_client = connect(users, "node-1", "fast")
    add(users, room, slow, fast)
    for client in (slow_client, fast_client):
        client.ok("join", {"room": room})
    release = threading.Event()
    backend.send[slow] = Answer(hold=release)
    answered: list[dict[str, Any]] = []
    waiting = threading.Thread(target=lambda: answered.append(
        slow_client.call("send", {"room": room, "text": "slowly"})), daemon=True)
    waiting.start()
    try:
        wait_for(lambda: backend.asked("/send", slow), 5, "the slow user's hook call")
        for n in range(5):
            fast_client.ok("send", {"room": room, "text": f"fast {n}"})
        assert answered == [], "the slow hook held another user's sends back"
    finally:
        release.set()
    waiting.join(10)
    assert answered and answered[0]["ok"] is True, answered
    texts = [m["text"] for m in users.history(room)]
    assert texts == [f"fast {n}" for n in range(5)] + ["slowly"]


# ---- operations --------------------------------------------------------------------------------


def test_hook_calls_are_counted_by_hook_and_outcome_and_the_secret_appears_nowhere(
        app_cluster, users, backend):
    _, client = connect(users, "node-1", "met")
    client.call("join", {"room": fresh("counted-")})  # the default: refused by the hook
    text = requests.get(app_cluster.node_url(1) + "/metrics", timeout=10).text
    counted = {(hook, outcome): float(value) for hook, outcome, value in re.findall(
        r'^rooms_hook_calls_total\{hook="(\w+)",outcome="(\w+)"\} (\S+)$', text, re.M)}
    assert counted[("join", "deny")] >= 1
    assert set(counted) == {(h, o) for h in ("join", "send")
                            for o in ("allow", "deny", "error", "timeout")}
    assert re.search(r'^rooms_hook_seconds_count\{hook="join"\} [1-9]', text, re.M)
    assert HOOK_SECRET not in text
    assert all(request.verified for request in backend.receiver.requests)
    page = operator_session(users)

    def shown() -> dict[str, Any]:
        nodes = page.get(users.base + "/admin/cluster.json", timeout=10).json()["nodes"]
        return {node["node"]: node.get("hooks") for node in nodes}

    wait_for(lambda: shown().get("node-1", {}).get("calls", 0) >= 1
             and all(set(hooks or {}) == {"calls", "failed"} for hooks in shown().values()),
             10, "the hook calls of every node on the cluster page")
    logs = RESULTS / f"app-rooms-{'cluster' if app_cluster.clustered else 'single'}" / "logs"
    for log in logs.glob("node-*.log"):
        assert HOOK_SECRET not in log.read_text(errors="replace"), log


def operator_session(users: Users) -> requests.Session:
    """A browser-like session logged in as the operator of TEST_ENV (OPERATORS=operator1)."""
    password = "correct-horse-operator1"
    requests.post(users.base + "/api/register", timeout=10,
                  json={"username": "operator1", "password": password})
    session = requests.Session()
    form = session.get(users.base + "/", timeout=10).text
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', form)
    assert csrf, "no CSRF token in the log-in form"
    answer = session.post(users.base + "/login", timeout=10, data={
        "username": "operator1", "password": password, "csrf_token": csrf.group(1)})
    assert answer.status_code == 200, answer.text
    return session
