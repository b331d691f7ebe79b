"""Tokens from your app (PROTOCOL.md, third edition), through the front door of a cluster of its
own: 2 nodes, APP_JWT_SECRET plus APP_JWT_KEYS (a JWKS of an RSA and an EC key, generated into a
temporary folder), and OWN_ACCOUNTS=false; on one Redis, then on a Redis Cluster. Real
python-socketio clients: an HS256 user and an ES256 user on different nodes talk in a room and by
direct message (neither has an account); refused tokens get a connect_error that says why;
refresh extends a connection, and one left unrefreshed gets `expired` and is disconnected; the
service's own registration and log-in page answer 404."""

from __future__ import annotations

import uuid

import pytest
import requests
import socketio
from itsdangerous import URLSafeTimedSerializer

from service.tokens import SALT
from tests.app_jwts import SECRET, claims, ec_key, forge, public_pem, rsa_key, sign, write_jwks
from tests.conftest import own_cluster
from tests.waiting import wait_for

from .conftest import SECRET_KEY, Users

LEEWAY_S = 1
# a Redis Cluster: 17371-17376, its bus 27371-27376 (below the kernel's ephemeral ports)
REDIS_PORTS = {"single": 25379, "cluster": 17371}
pytestmark = pytest.mark.local_cluster  # its own clusters, not the deployment under test


@pytest.fixture(scope="module")
def app_cluster(redis_mode, tmp_path_factory):
    keys = write_jwks(tmp_path_factory.mktemp("app-keys") / "jwks.json",
                      {"rsa-1": rsa_key(), "ec-1": ec_key()})
    env = {"APP_JWT_SECRET": SECRET, "APP_JWT_KEYS": str(keys), "OWN_ACCOUNTS": "false",
           "APP_JWT_LEEWAY_S": str(LEEWAY_S)}
    with own_cluster(f"app-tokens-{redis_mode}", nodes=2, port=25080,
                     redis_port=REDIS_PORTS[redis_mode], node_base_port=25001, env=env,
                     redis_mode=redis_mode) as instance:
        yield instance


@pytest.fixture
def app_users(app_cluster):
    pool = Users(app_cluster)
    yield pool
    pool.close()


@pytest.fixture
def nodes(app_cluster) -> list[str]:
    return [app_cluster.node_name(i) for i in app_cluster.indexes()]


def user(prefix: str) -> str:
    """A fresh user name of the kind only an app brings (no account could be named so)."""
    return f"{prefix}:{uuid.uuid4().hex[:8]}@example.com"


def hs256(sub: str, ttl_s: float = 600, **more) -> str:
    return sign(SECRET, "HS256", claims(sub, ttl_s, **more))


def es256(sub: str, ttl_s: float = 600) -> str:
    return sign(ec_key(), "ES256", claims(sub, ttl_s), kid="ec-1")


def refusal(cluster, auth) -> str:
    """The reason the client's connect_error carries."""
    client = socketio.Client(reconnection=False)
    reasons = []
    client.on("connect_error", reasons.append)
    with pytest.raises(socketio.exceptions.ConnectionError):
        client.connect(cluster.url, transports=["websocket"], wait_timeout=5, auth=auth)
    assert len(reasons) == 1
    return reasons[0]["message"]


def test_app_users_on_different_nodes_talk_in_a_room_and_by_direct_message(app_users, nodes):
    ann_name, ben_name = user("ann"), user("ben")
    ann = app_users.connect(hs256(ann_name, rooms=["team-*"]), nodes[0])
    ben = app_users.connect(es256(ben_name), nodes[1])
    assert (ann.welcome["user"], ann.node) == (ann_name, nodes[0])
    assert (ben.welcome["user"], ben.node) == (ben_name, nodes[1])
    room = "team-" + uuid.uuid4().hex[:8]
    for client in (ann, ben):
        client.ok("join", {"room": room})
    sent = ann.ok("send", {"room": room, "text": "hello from node 1"})
    [message] = ben.take("message", 1)
    assert (message["id"], message["user"], message["text"]) == (
        sent["id"], ann_name, "hello from node 1")
    answered = ben.ok("send", {"room": room, "text": "hello back"})
    assert [m["id"] for m in ann.take("message", 2)] == [sent["id"], answered["id"]]

    direct = ann.ok("direct", {"to": ben_name, "text": "psst"})
    [received] = ben.take("direct", 1)
    assert (received["id"], received["from"], received["to"]) == (direct["id"], ann_name,
                                                                  ben_name)
    back = ben.ok("direct", {"to": ann_name, "text": "psst back"})
    [received] = ann.take("direct", 1)
    assert (received["id"], received["from"]) == (back["id"], ben_name)
    # one who has not connected yet is a recipient too: the message waits in its inbox
    later = user("cy")
    stored = ann.ok("direct", {"to": later, "text": "for when you come"})
    cy = app_users.connect(sign(rsa_key(), "RS256", claims(later), kid="rsa-1"), nodes[1])
    assert [m["id"] for m in cy.ok("inbox", {})["messages"]] == [stored["id"]]


def test_refused_tokens_get_a_connect_error_that_says_why(app_cluster):
    past = claims("ann", ttl_s=-60)
    own_token = URLSafeTimedSerializer(SECRET_KEY, salt=SALT).dumps({"u": "alice"})
    cases = [
        ({"token": sign(SECRET, "HS256", past)}, "token expired"),
        ({"token": sign("another-secret-of-32-characters!!", "HS256", claims())},
         "bad signature"),
        ({"token": forge({"alg": "none"}, claims(), None)}, "algorithm none not accepted"),
        ({"token": sign(rsa_key(), "RS512", claims(), kid="rsa-1")},
         "algorithm RS512 not accepted"),
        ({"token": forge({"alg": "HS256", "kid": "rsa-1"}, claims(), public_pem(rsa_key()))},
         "algorithm HS256 not accepted for that kid"),
        ({"token": forge({"alg": "HS256"}, claims(), public_pem(rsa_key()))}, "bad signature"),
        ({"token": sign(ec_key(), "ES256", claims(), kid="ec-2")}, "unknown kid"),
        ({"token": sign(SECRET, "HS256", claims("not a name"))}, "bad sub"),
        ({"token": sign(SECRET, "HS256", claims(pad="x" * 9000))}, "token too large"),
        ({"token": sign(SECRET, "HS256", claims(exp=None))}, "missing claim exp"),
        ({"token": own_token}, "OWN_ACCOUNTS=false"),  # signed right, but not taken
        (None, "OWN_ACCOUNTS=false"),
    ]
    for auth, reason in cases:
        message = refusal(app_cluster, auth)
        assert reason in message, (reason, message)
        if auth:
            assert auth["token"] not in message


def test_refresh_extends_the_connection_and_an_unrefreshed_one_expires(app_users, nodes):
    name = user("dee")
    # one node, and the one left alone expiring no earlier than the other's first token: when
    # it is told, the node has passed the other's first deadline too
    refreshed = app_users.connect(hs256(name, ttl_s=2), nodes[0])
    left_alone = app_users.connect(es256(name, ttl_s=2), nodes[0])
    for client in (refreshed, left_alone):
        client.listen("expired")
    answer = refreshed.ok("refresh", {"token": es256(name, ttl_s=600)})
    assert 590 <= answer["expires_in"] <= 600 + LEEWAY_S
    other = refreshed.call("refresh", {"token": hs256(user("eve"))})
    assert other["ok"] is False and other["error"]["code"] == "unauthorized"
    assert "another user's" in other["error"]["message"]
    expired = refreshed.call("refresh", {"token": sign(SECRET, "HS256", claims(name, -60))})
    assert expired["error"] == {"code": "unauthorized", "message": "token expired"}

    [told] = left_alone.take("expired", 1, timeout=15)
    assert told["reason"].startswith("token expired")
    wait_for(lambda: not left_alone.sio.connected, what="the expired connection is ended")
    # the refreshed one outlived its first token: still served, and its answer comes after
    # anything the node sent it before, so no `expired` was
    assert refreshed.ok("presence", {"room": "lobby"}) and refreshed.sio.connected
    assert refreshed.arrived("expired") == []


@pytest.mark.parametrize(("method", "path"), [
    ("post", "/api/register"), ("post", "/api/token"), ("post", "/api/session/token")])
def test_the_services_own_registration_and_tokens_answer_a_json_404(app_cluster, method, path):
    response = requests.request(method, app_cluster.url + path, timeout=10,
                                json={"username": "alice", "password": "correct-horse-alice"})
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_the_log_in_page_answers_404(app_cluster):
    assert requests.get(app_cluster.url + "/", timeout=10).status_code == 404
    login = requests.post(app_cluster.url + "/login", timeout=10,
                          data={"username": "alice", "password": "correct-horse-alice"})
    assert login.status_code == 404
    assert requests.get(app_cluster.url + "/healthz", timeout=10).status_code == 200
