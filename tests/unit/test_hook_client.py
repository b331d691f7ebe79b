"""The hook client (service/hooks/client.py) and the hooks as the handlers ask them
(service/hooks/hooks.py), against a real HTTP server in the test process
(tests/hook_receiver.py): what counts as an answer, what fails and how, the signature as the
receiver checks it, kept-alive connections, the metrics and the log line."""

from __future__ import annotations

import logging
import threading
import time

import pytest
from prometheus_client import CollectorRegistry

from service.errors import ServiceError
from service.hooks.client import HookClient, HookFailed, pool
from service.hooks.hooks import Hooks
from service.hooks.metrics import HookMetrics
from tests.hook_receiver import Answer, HookReceiver

SECRET = "hook-secret-for-the-unit-tests"
PORT = 27510  # this worktree's hook receivers: 27500-27599
TIMEOUT_S = 0.5


@pytest.fixture
def receiver():
    answers: dict[str, Answer] = {}
    server = HookReceiver(PORT, SECRET, lambda path, body: answers.get(path, Answer()))
    server.answers = answers  # type: ignore[attr-defined]  # what the test sets per path
    yield server
    server.close()


def client(receiver: HookReceiver, path: str = "/hook", timeout_s: float = TIMEOUT_S,
           http=None) -> HookClient:
    return HookClient("join", receiver.url + path, SECRET, timeout_s, http or pool())


def failure(receiver: HookReceiver, answer: Answer, path: str = "/hook") -> HookFailed:
    receiver.answers[path] = answer
    with pytest.raises(HookFailed) as caught:
        client(receiver, path).ask({"event": "join", "user": "ann", "room": "team"})
    return caught.value


def test_a_good_answer_is_returned_and_the_request_is_signed_compact_json(receiver):
    receiver.answers["/hook"] = Answer(body={"allow": False, "reason": "not today"})
    answer = client(receiver).ask({"event": "join", "user": "ann", "room": "team"})
    assert answer == {"allow": False, "reason": "not today"}
    [request] = receiver.requests
    assert request.verified, "the receiver could not verify the signature"
    assert request.raw == b'{"event":"join","user":"ann","room":"team"}'
    assert request.body == {"event": "join", "user": "ann", "room": "team"}


def test_a_request_signed_with_another_secret_does_not_verify(receiver):
    HookClient("send", receiver.url + "/hook", "not-the-receivers-secret", TIMEOUT_S,
               pool()).ask({"event": "send"})
    assert receiver.requests[0].verified is False


@pytest.mark.parametrize(("answer", "reason"), [
    (Answer(body=b"<html>hello</html>"), "not JSON"),
    (Answer(body=b"\xff\xfe"), "not JSON"),
    (Answer(body=[True]), "not an object"),
    (Answer(body={"allow": "yes"}), "boolean `allow`"),
    (Answer(body={"reason": "no allow"}), "boolean `allow`"),
    (Answer(status=500, body={"allow": True}), "answered 500"),
    (Answer(status=204, body=b""), "answered 204"),
    (Answer(status=302, headers={"Location": "/elsewhere"}, body=b""), "redirect (302)"),
    (Answer(status=307, headers={"Location": "/elsewhere"}, body={"allow": True}),
     "redirect (307)"),
    (Answer(body=b'{"allow": true, "pad": "' + b"x" * 70_000 + b'"}'), "more than 65536"),
    (Answer(body=b'{"allow": true, "pad": "' + b"x" * 70_000 + b'"}', close_delimited=True),
     "more than 65536"),
    (Answer(body={"allow": True}, headers={"Content-Encoding": "gzip"}), "compressed"),
], ids=["html", "bad-utf8", "array", "allow-not-bool", "no-allow", "500", "204", "302", "307",
        "too-large", "too-large-no-length", "compressed"])
def test_anything_but_a_200_json_object_with_a_boolean_allow_fails(receiver, answer, reason):
    failed = failure(receiver, answer)
    assert failed.outcome == "error" and reason in failed.reason, failed.reason
    assert SECRET not in failed.reason and receiver.url not in failed.reason
    assert [r.path for r in receiver.requests] == ["/hook"]  # a redirect is not followed


def test_a_hook_that_does_not_answer_in_time_times_out_within_the_timeout(receiver):
    """No answer, headers without the body, and a body that trickles in (a byte every 0.1 s:
    each read is quick, the whole would take 100 s) all end at the total timeout."""
    trickling = {"allow": True, "pad": "x" * 1000}
    for answer in (Answer(hold=threading.Event()), Answer(hold_body=threading.Event()),
                   Answer(body=trickling, trickle_s=0.1)):
        started = time.monotonic()
        failed = failure(receiver, answer)
        took = time.monotonic() - started
        assert failed.outcome == "timeout", failed.reason
        assert TIMEOUT_S * 0.9 <= took < TIMEOUT_S + 1.0, took


def test_an_unreachable_hook_fails():
    lone = HookClient("send", "http://127.0.0.1:27511/hook", SECRET, TIMEOUT_S, pool())
    with pytest.raises(HookFailed) as caught:
        lone.ask({"event": "send"})
    assert caught.value.outcome == "error" and "could not be reached" in caught.value.reason


def test_connections_are_kept_alive_between_calls(receiver):
    shared = pool()
    join, send = client(receiver, "/join", http=shared), client(receiver, "/send", http=shared)
    for hook in (join, send, join, send):
        assert hook.ask({"event": "x"}) == {"allow": True}
    assert len({request.client for request in receiver.requests}) == 1
    receiver.answers["/join"] = Answer(status=500)
    with pytest.raises(HookFailed):
        join.ask({"event": "x"})  # a failure may close its connection: the next call reconnects
    assert send.ask({"event": "x"}) == {"allow": True}


# ---- the hooks as the handlers ask them --------------------------------------------------------


def hooks(receiver: HookReceiver, timeout_s: float = TIMEOUT_S) -> tuple[Hooks, HookMetrics]:
    metrics = HookMetrics(CollectorRegistry())
    http = pool()
    return Hooks(join=HookClient("join", receiver.url + "/join", SECRET, timeout_s, http),
                 send=HookClient("send", receiver.url + "/send", SECRET, timeout_s, http),
                 metrics=metrics, max_text_chars=20, node="node-h"), metrics


def counts(metrics: HookMetrics, hook: str) -> list[float]:
    """Calls of `hook` by outcome: allow, deny, error, timeout."""
    return [metrics.calls.labels(hook, outcome)._value.get()
            for outcome in ("allow", "deny", "error", "timeout")]


def test_join_allows_refuses_with_the_reason_and_fails_closed(receiver, caplog):
    asked, metrics = hooks(receiver)
    asked.join("ann", "team")
    assert receiver.calls("/join") == [{"event": "join", "user": "ann", "room": "team"}]
    receiver.answers["/join"] = Answer(body={"allow": False, "reason": "invite only"})
    with pytest.raises(ServiceError) as refused:
        asked.join("ann", "team")
    assert (refused.value.code, refused.value.message) == ("forbidden", "invite only")
    receiver.answers["/join"] = Answer(body={"allow": False})
    with pytest.raises(ServiceError) as refused:
        asked.join("ann", "team")
    assert refused.value.message == "the app does not let you join room team"
    receiver.answers["/join"] = Answer(status=503)
    with caplog.at_level(logging.WARNING, logger="service"), pytest.raises(ServiceError) as down:
        asked.join("ann", "team")
    assert down.value.code == "unavailable"
    [line] = [r.getMessage() for r in caplog.records if "hook failed" in r.getMessage()]
    assert line == "node=node-h join hook failed: answered 503"
    assert SECRET not in caplog.text and receiver.url not in caplog.text
    assert counts(metrics, "join") == [1, 2, 1, 0]
    assert metrics.seconds.labels("join")._sum.get() > 0
    assert metrics.totals() == {"calls": 4, "failed": 1}


def test_send_and_direct_bodies_replacement_text_and_its_checks(receiver):
    asked, metrics = hooks(receiver)
    assert asked.send("ann", "team", "hello", None) == "hello"
    receiver.answers["/send"] = Answer(body={"allow": True, "text": "h***o"})
    assert asked.direct("ann", "bob", "hello", "c-1") == "h***o"
    assert receiver.calls("/send") == [
        {"event": "send", "user": "ann", "room": "team", "text": "hello"},
        {"event": "direct", "user": "ann", "to": "bob", "text": "hello", "client_id": "c-1"}]
    for bad in ("", 5, "x" * 21, None):
        receiver.answers["/send"] = Answer(body={"allow": True, "text": bad})
        with pytest.raises(ServiceError) as caught:
            asked.send("ann", "team", "hello", None)
        assert caught.value.code == "unavailable"
    receiver.answers["/send"] = Answer(body={"allow": False, "reason": "no shouting"})
    with pytest.raises(ServiceError) as caught:
        asked.send("ann", "team", "HELLO", None)
    assert (caught.value.code, caught.value.message) == ("forbidden", "no shouting")
    receiver.answers["/send"] = Answer(hold=threading.Event())
    with pytest.raises(ServiceError) as caught:
        asked.send("ann", "team", "hello", None)
    assert caught.value.code == "unavailable"
    assert counts(metrics, "send") == [2, 1, 4, 1]
