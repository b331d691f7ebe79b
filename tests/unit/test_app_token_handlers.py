"""An app's JWTs at the handlers (service/realtime/namespace.py), with the in-memory Broker:
`auth {token}` and `refresh` take them beside the service's own tokens, or instead of them with
OWN_ACCOUNTS=false; a JWT's user talks to anyone; its connection expires like any token's."""

from __future__ import annotations

import time
from types import SimpleNamespace

import pytest
from socketio.exceptions import ConnectionRefusedError as Refused

from service.app_keys import load_keys
from service.app_tokens import AppTokens
from service.realtime.manager import NAMESPACE
from service.realtime.namespace import Limits
from tests.app_jwts import SECRET, claims, ec_key, rsa_key, sign, write_jwks
from tests.unit.test_handlers import Harness

LEEWAY_S = 2
LIMITS = Limits(max_text_chars=4000, rate_per_s=1000, burst=1000)


@pytest.fixture
def verifier(tmp_path) -> AppTokens:
    keys = load_keys(str(write_jwks(tmp_path / "jwks.json", {"r1": rsa_key(), "e1": ec_key()})))
    return AppTokens(secret=SECRET, keys=keys, leeway_s=LEEWAY_S)


@pytest.fixture
def harness(verifier) -> Harness:
    return Harness(LIMITS, app_tokens=verifier)


@pytest.fixture
def closed(verifier) -> Harness:
    """OWN_ACCOUNTS=false: app JWTs only."""
    return Harness(LIMITS, app_tokens=verifier, own_accounts=False)


def hs256(sub: str, **more) -> str:
    return sign(SECRET, "HS256", claims(sub, **more))


def es256(sub: str, **more) -> str:
    return sign(ec_key(), "ES256", claims(sub, **more), kid="e1")


def refusal(harness: Harness, auth) -> str:
    with pytest.raises(Refused) as refused:
        harness.connect(None, auth=auth)
    return refused.value.error_args["message"]


def test_a_jwt_connects_its_sub_with_its_expiry_and_rooms(harness):
    payload = claims("app:ann", rooms=["team-a", "team-*"])
    ann = harness.connect(None, auth={"token": sign(SECRET, "HS256", payload)})
    assert ann.got("welcome") == [{"user": "app:ann", "node": "node-t", "sid": ann.sid}]
    connection = harness.connections.get(ann.sid)
    assert connection.room_grants == ("team-a", "team-*")
    assert connection.expires_at == payload["exp"] + LEEWAY_S and connection.session_id is None
    assert harness.connections.expiring() == 1


def test_app_users_without_accounts_talk_in_rooms_and_by_direct_message(harness):
    ann = harness.connect(None, auth={"token": hs256("ann@example.com")})
    ben = harness.connect(None, auth={"token": es256("tenant:ben")})
    for client in (ann, ben):
        client.ok("join", {"room": "lobby"})
    sent = ann.ok("send", {"room": "lobby", "text": "hello"})
    assert [(m["id"], m["user"]) for m in ben.got("message")] == [(sent["id"], "ann@example.com")]
    direct = ben.ok("direct", {"to": "ann@example.com", "text": "psst"})
    assert [(m["id"], m["from"]) for m in ann.got("direct")] == [(direct["id"], "tenant:ben")]
    # any user name is a user: one who never connected gets the message in its inbox
    assert ann.ok("direct", {"to": "someone-later", "text": "for later"})
    assert ann.ok("direct_history", {"with": "nobody-yet"})["messages"] == []


def test_a_jwt_user_is_the_same_user_as_the_account_of_that_name(harness):
    by_jwt = harness.connect(None, auth={"token": hs256("alice")})
    by_own_token = harness.connect("alice")  # the service's own token, still taken
    bob = harness.connect("bob")
    sent = bob.ok("direct", {"to": "alice", "text": "to both"})
    for connection in (by_jwt, by_own_token):
        assert [m["id"] for m in connection.got("direct")] == [sent["id"]]
    by_jwt.ok("join", {"room": "lobby"})
    assert harness.broker.present("lobby") == ["alice"]


# tokens are made when the test runs, not when it is collected: their `exp` counts from then
@pytest.mark.parametrize(("token", "reason"), [
    (lambda: sign(SECRET, "HS256", claims(exp=int(time.time()) - 60)), "token expired"),
    (lambda: sign("another-secret-of-32-characters!!", "HS256", claims()), "bad signature"),
    (lambda: sign(rsa_key(), "RS256", claims(), kid="nobody"), "unknown kid"),
    (lambda: sign(SECRET, "HS256", claims("a b")), "bad sub"),
    (lambda: sign(SECRET, "HS256", claims(rooms="team-a")), "bad rooms claim"),
    (lambda: sign(SECRET, "HS256", claims(exp=None)), "missing claim exp"),
], ids=["expired", "bad-signature", "unknown-kid", "bad-sub", "bad-rooms", "no-exp"])
def test_a_refused_jwt_gets_a_connect_error_that_says_why(harness, token, reason):
    assert reason in refusal(harness, {"token": token()})
    assert len(harness.connections) == 0


def test_other_tokens_still_go_to_the_services_own_signer(harness):
    assert "bad token" in refusal(harness, {"token": "not-a-jwt"})
    assert harness.connect("carol").got("welcome")[0]["user"] == "carol"


def test_without_own_accounts_only_app_jwts_connect(closed, monkeypatch):
    assert closed.connect(None, auth={"token": hs256("ann")}).got("welcome")
    own = closed.signer.issue("alice")
    assert "OWN_ACCOUNTS=false" in refusal(closed, {"token": own})
    assert "OWN_ACCOUNTS=false" in refusal(closed, None)
    # a browser session's cookie signs nobody in either
    signed_in = SimpleNamespace(is_authenticated=True, get_id=lambda: "alice")
    monkeypatch.setattr("service.realtime.namespace.current_user", signed_in)
    assert "OWN_ACCOUNTS=false" in refusal(closed, None)
    assert len(closed.connections) == 1


def test_a_browser_session_still_connects_with_own_accounts(harness, monkeypatch):
    signed_in = SimpleNamespace(is_authenticated=True, get_id=lambda: "alice")
    monkeypatch.setattr("service.realtime.namespace.current_user", signed_in)
    assert harness.connect(None, auth=None).got("welcome")[0]["user"] == "alice"


def test_refresh_with_a_jwt_extends_the_expiry_and_replaces_the_grants(harness):
    first = claims("ann", ttl_s=30, rooms=["team-a"])
    ann = harness.connect(None, auth={"token": sign(SECRET, "HS256", first)})
    later = claims("ann", ttl_s=600, rooms=["team-b", "ops-*"])
    answer = ann.ok("refresh", {"token": sign(ec_key(), "ES256", later, kid="e1")})
    assert 590 <= answer["expires_in"] <= 600 + LEEWAY_S
    connection = harness.connections.get(ann.sid)
    assert connection.expires_at == later["exp"] + LEEWAY_S
    assert connection.room_grants == ("team-b", "ops-*")
    assert ann.ok("refresh", {"token": hs256("ann", ttl_s=60)})  # never shortens it
    assert connection.expires_at == later["exp"] + LEEWAY_S
    assert connection.room_grants == ()  # the newest token's: none


def test_refresh_refuses_another_users_jwt_and_bad_ones_and_keeps_the_connection(closed):
    ann = closed.connect(None, auth={"token": hs256("ann", rooms=["team-a"])})
    before = closed.connections.get(ann.sid).expires_at
    for token, reason in [(hs256("ben"), "another user's"),
                          (hs256("ann", exp=int(time.time()) - 60), "token expired"),
                          (closed.signer.issue("ann"), "OWN_ACCOUNTS=false"),
                          (sign(rsa_key(), "RS512", claims("ann"), kid="r1"), "not accepted")]:
        answer = ann.call("refresh", {"token": token})
        assert answer["error"]["code"] == "unauthorized", answer
        assert reason in answer["error"]["message"], answer
    connection = closed.connections.get(ann.sid)
    assert (connection.expires_at, connection.room_grants) == (before, ("team-a",))
    assert ann.ok("join", {"room": "lobby"})


def test_a_connection_whose_jwt_expires_is_told_then_ended_unless_refreshed(harness):
    now = time.time()
    ann = harness.connect(None, auth={"token": hs256("ann", ttl_s=2)})
    ben = harness.connect(None, auth={"token": hs256("ben", ttl_s=2)})
    assert ann.ok("refresh", {"token": hs256("ann", ttl_s=3600)})
    ended = []

    def end(sid: str, reason: str) -> None:
        ended.append(sid)
        harness.server.emit("expired", {"reason": reason}, to=sid, namespace=NAMESPACE)
        harness.disconnect(sid)

    assert harness.connections.expire_due(now, end) == 0
    assert harness.connections.expire_due(now + 3 + LEEWAY_S, end) == 1
    assert ended == [ben.sid] and ann.connected and not ben.connected
    assert ben.got("expired")[0]["reason"].startswith("token expired")


def test_events_after_the_jwt_expired_are_unauthorized(harness):
    ann = harness.connect(None, auth={"token": hs256("ann")})
    harness.connections.get(ann.sid).expires_at = time.time() - 1
    assert ann.call("join", {"room": "lobby"})["error"]["code"] == "unauthorized"
