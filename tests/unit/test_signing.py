"""The hook and webhook signature (service/hooks/signing.py), as PROTOCOL.md states it."""

import hashlib
import hmac

from service.hooks import signing

SECRET = "hook-secret-0123456789"


def test_the_signature_is_the_contracts_hmac_of_timestamp_and_body():
    body = b'{"event":"join","user":"ann","room":"team"}'
    sent = signing.headers(SECRET, body, now=1_800_000_000.7)
    assert sent["X-Rooms-Timestamp"] == "1800000000"
    expected = hmac.new(SECRET.encode(), b"1800000000." + body, hashlib.sha256).hexdigest()
    assert sent["X-Rooms-Signature"] == "v1=" + expected
    assert signing.verify(SECRET, sent["X-Rooms-Timestamp"], sent["X-Rooms-Signature"], body,
                          now=1_800_000_100)


def test_a_changed_body_another_secret_or_an_old_request_is_refused():
    body = b'{"events":[]}'
    sent = signing.headers(SECRET, body, now=1_800_000_000)
    stamp, signature = sent["X-Rooms-Timestamp"], sent["X-Rooms-Signature"]
    assert not signing.verify(SECRET, stamp, signature, body + b" ", now=1_800_000_000)
    assert not signing.verify("another-secret-000000", stamp, signature, body, now=1_800_000_000)
    assert not signing.verify(SECRET, stamp, signature, body, now=1_800_000_301)
    assert not signing.verify(SECRET, None, signature, body, now=1_800_000_000)
    assert not signing.verify(SECRET, "soon", signature, body, now=1_800_000_000)
