import time

import pytest
from itsdangerous import TimestampSigner, URLSafeTimedSerializer

from service.errors import ServiceError
from service.realtime import ratelimit
from service.realtime.ratelimit import TokenBucket
from service.tokens import SALT, TokenSigner

SECRET = "a-secret-of-sixteen-chars"


def test_token_round_trip_and_expiry_time():
    signer = TokenSigner(SECRET, ttl_s=60)
    claims = signer.verify(signer.issue("alice"))
    assert claims.user == "alice"
    assert 55 < claims.expires_at - time.time() <= 61


@pytest.mark.parametrize("token", ["", "garbage", None, 5, "x" * 2000])
def test_bad_tokens_are_refused(token):
    with pytest.raises(ServiceError, match="bad token"):
        TokenSigner(SECRET, 60).verify(token)


def test_tampered_and_foreign_tokens_are_refused():
    token = TokenSigner(SECRET, 60).issue("alice")
    forged = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    with pytest.raises(ServiceError, match="bad token"):
        TokenSigner(SECRET, 60).verify(forged)
    with pytest.raises(ServiceError, match="bad token"):
        TokenSigner("another-secret-entirely", 60).verify(token)


def test_expired_token_says_so(monkeypatch):
    monkeypatch.setattr(TimestampSigner, "get_timestamp", lambda _self: int(time.time()) - 120)
    old = URLSafeTimedSerializer(SECRET, salt=SALT).dumps({"u": "alice"})
    monkeypatch.undo()
    with pytest.raises(ServiceError, match="expired") as info:
        TokenSigner(SECRET, 60).verify(old)
    assert info.value.code == "unauthorized"


def test_bucket_refuses_over_the_rate_and_flags_a_flooder(monkeypatch):
    now = [100.0]
    monkeypatch.setattr(ratelimit.time, "monotonic", lambda: now[0])
    bucket = TokenBucket(rate=2, burst=3)
    assert [bucket.take() for _ in range(4)] == [True, True, True, False]
    assert not bucket.flooding
    now[0] += 1.0  # two tokens back
    assert bucket.take() and bucket.take() and not bucket.take()
    now[0] += 0.5  # one back: a success does not forgive the refusals
    assert bucket.take()
    assert not bucket.take() and not bucket.flooding  # three refused so far, burst 3
    assert not bucket.take() and bucket.flooding  # four refused within the window
    now[0] += ratelimit.FLOOD_WINDOW_S + 1
    assert not bucket.flooding
    assert bucket.take()


def test_a_session_token_is_bound_to_its_session_without_revealing_it():
    signer = TokenSigner(SECRET, ttl_s=60)
    token = signer.issue("alice", "the-session-cookie")
    assert "the-session-cookie" not in URLSafeTimedSerializer(SECRET, salt=SALT).loads(token)["s"]
    claims = signer.verify(token)
    assert signer.binds(claims, "the-session-cookie")
    assert not signer.binds(claims, "another-session") and not signer.binds(claims, None)
    assert not signer.binds(signer.verify(signer.issue("alice")), "the-session-cookie")
    assert not TokenSigner("another-secret-entirely", 60).binds(claims, "the-session-cookie")


def test_a_token_whose_session_is_not_a_string_is_refused():
    token = URLSafeTimedSerializer(SECRET, salt=SALT).dumps({"u": "alice", "s": 5})
    with pytest.raises(ServiceError, match="bad token"):
        TokenSigner(SECRET, 60).verify(token)


def test_expiries_come_due_soonest_first_once_each_at_their_latest_deadline():
    from service.realtime.expiry import Expiries

    expiries = Expiries()
    expiries.watch("late", 30.0)
    expiries.watch("soon", 10.0)
    expiries.watch("soon", 20.0)  # refreshed: one entry, due at the later deadline
    expiries.watch("soon", 15.0)  # an older token does not shorten it
    expiries.watch("gone", 5.0)
    expiries.forget("gone")
    assert expiries.due(12.0) == []
    assert expiries.due(20.0) == ["soon"]
    assert expiries.due(25.0) == []
    assert expiries.due(31.0) == ["late"]
    assert len(expiries) == 0 and expiries.due(100.0) == []
