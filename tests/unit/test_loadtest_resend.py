"""The load tests send again with the same client_id when an ack is lost (loadtests/resend.py), and
count a message acknowledged on a resend once."""

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import gevent
import pytest

from loadtests.accounting import Ledger, account
from loadtests.lean_client import LeanSender
from loadtests.resend import RESENDS, Unacknowledged, until_acknowledged

ROOT = Path(__file__).resolve().parents[2]


class Script:
    """A call whose outcomes are scripted: an answer, or an exception to raise."""

    def __init__(self, *outcomes):
        self.outcomes = list(outcomes)
        self.calls = 0

    def __call__(self):
        self.calls += 1
        outcome = self.outcomes.pop(0)
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome


def test_an_answer_on_the_first_send_takes_no_resend():
    call = Script({"ok": True, "id": "1-0"})
    assert until_acknowledged(call, lambda: pytest.fail("nothing to recover")) == (
        {"ok": True, "id": "1-0"}, 0)


def test_a_lost_ack_is_sent_again_after_recovering():
    recovered = []
    call = Script(gevent.Timeout(), ConnectionError("dropped"), {"ok": True, "id": "1-0"})
    answer, resent = until_acknowledged(call, lambda: recovered.append(1) or True)
    assert (answer, resent, call.calls, len(recovered)) == ({"ok": True, "id": "1-0"}, 2, 3, 2)


def test_resends_are_bounded():
    call = Script(*[gevent.Timeout() for _ in range(RESENDS + 1)])
    with pytest.raises(Unacknowledged) as lost:
        until_acknowledged(call, lambda: True)
    assert lost.value.resent == RESENDS and call.calls == RESENDS + 1
    assert isinstance(lost.value.error, gevent.Timeout)


def test_no_resend_when_the_client_cannot_get_back():
    call = Script(ConnectionError("dropped"))
    with pytest.raises(Unacknowledged) as lost:
        until_acknowledged(call, lambda: False)
    assert lost.value.resent == 0 and call.calls == 1


def test_an_error_answer_or_a_bug_is_not_a_lost_ack():
    refused = {"ok": False, "error": {"code": "rate_limited"}}
    assert until_acknowledged(Script(refused), lambda: True) == (refused, 0)
    with pytest.raises(KeyError):
        until_acknowledged(Script(KeyError("bug")), lambda: True)


# ---- accounting -------------------------------------------------------------------------------

def test_a_message_acknowledged_only_on_a_resend_is_owed_and_counted_once():
    ledger = Ledger()
    ledger.acknowledged("a", "1000-0")  # the one ack, after a resend
    ledger.retries += 1
    ledger.receivers["r"] = receiver = _receiver()
    ledger.received("r", "1000-0", "lt:w0-1:0:1.000")
    result = account([ledger.to_json()])
    assert (result.sent, result.expected, result.delivered, result.duplicates) == (1, 1, 1, 0)
    assert result.retries == 1 and result.clean
    assert "client_ids" not in ledger.to_json()["receivers"]["r"]
    assert receiver.client_ids == ["lt:w0-1:0:1.000"]


def test_a_send_stored_twice_under_one_client_id_is_a_duplicate():
    ledger = Ledger()
    ledger.acknowledged("a", "1001-0")  # the resend's answer: a new id, not the first answer
    ledger.receivers["r"] = _receiver()
    ledger.received("r", "1000-0", "lt:w0-1:0:1.000")
    ledger.received("r", "1001-0", "lt:w0-1:0:1.000")
    ledger.received("r", "1002-0", "")  # not the load test's: no client_id to compare
    ledger.received("r", "1003-0", "")
    result = account([ledger.to_json()])
    assert result.duplicates == 1 and not result.clean


def test_retries_of_every_process_are_added():
    first, second = Ledger(retries=2), Ledger(retries=3)
    assert account([first.to_json(), second.to_json()]).retries == 5
    assert account([{**first.to_json(), "retries": 0}]).retries == 0


def _receiver():
    from loadtests.accounting import Receiver

    return Receiver("a", "node-1", watermark="999-0", listening=True)


# ---- the capacity probe's sender ----------------------------------------------------------------

class FakeLean:
    """A LeanClient whose acks are scripted: an answer, `lost` (timed out), or `drop`."""

    def __init__(self, log, script):
        self.log, self.script = log, script
        self.closed = False
        self.node = f"node-{len(log['connections']) + 1}"
        log["connections"].append(self)

    def connect(self, timeout=30):
        pass

    def call(self, event, data, timeout=30):
        if event == "join":
            return {"ok": True}
        if self.closed:
            raise ConnectionError("closed")
        self.log["sends"].append((self.node, dict(data)))
        outcome = self.script.pop(0)
        if outcome == "lost":
            raise gevent.Timeout()
        if outcome == "drop":
            self.closed = True
            raise ConnectionError("the connection ended")
        return outcome

    def close(self):
        self.closed = True


def test_the_probe_sender_resends_the_same_payload_on_a_new_connection_after_a_drop():
    log: dict = {"connections": [], "sends": []}
    script = ["lost", "drop", {"ok": True, "id": "5-0"}]
    sender = LeanSender(lambda: FakeLean(log, script), "room")
    payload = {"room": "room", "text": "probe", "client_id": "cap0:1.5"}
    assert sender.send(payload) == {"ok": True, "id": "5-0"}
    assert sender.retries == 2
    assert [node for node, _ in log["sends"]] == ["node-1", "node-1", "node-2"]
    assert all(sent == payload for _, sent in log["sends"])
    assert log["connections"][0].closed and sender.node == "node-2"


def test_the_probe_sender_gives_up_after_its_resends_and_counts_them():
    log: dict = {"connections": [], "sends": []}
    sender = LeanSender(lambda: FakeLean(log, ["lost"] * (RESENDS + 1)), "room")
    with pytest.raises(Unacknowledged):
        sender.send({"room": "room", "text": "probe", "client_id": "cap0:1.5"})
    assert sender.retries == RESENDS and len(log["sends"]) == RESENDS + 1


# ---- the locust users ---------------------------------------------------------------------------

LOCUST_USER = textwrap.dedent("""
    import json, os
    os.environ["SCENARIO"] = "chat"
    import gevent
    from locust.env import Environment
    import loadtests.locustfile as lf

    lf.ACK_TIMEOUT_S = lf.RECONNECT_S = 0.05  # read at call time from the module

    class FakeSio:
        connected = True

        def __init__(self, user, script):
            self.user, self.script, self.emits, self.joins = user, script, [], 0

        def emit(self, event, payload, callback):
            self.emits.append([event, dict(payload)])
            outcome = self.script.pop(0)
            if outcome == "drop":  # the connection drops before the ack, then comes back
                self.user.on_disconnect("transport close")
                gevent.spawn_later(0.01, self.user.on_welcome, {"node": "node-2", "user": "u"})
            elif outcome == "gone":  # drops and does not come back
                self.user.on_disconnect("transport close")
            elif outcome != "lost":
                callback(outcome)

        def call(self, event, payload, timeout):
            self.joins += event == "join"
            return {"ok": True}

        def shutdown(self):
            pass

    def user(script):
        lf.ledger = ledger = lf.Ledger()
        user = lf.ChatUser(Environment(user_classes=[lf.ChatUser]))
        user.uid, user.room, user.sender, user.node, user.username = "w0-0", "r", True, "n", "u"
        user.seq = iter(range(100))
        user.receiver = ledger.receivers[user.uid] = lf.Receiver("r", "n", listening=True)
        ledger.inbox_open[user.uid] = [1.0, 0]
        lf.members["r"] = {user.uid: "u"}
        user.joined = True
        user.up.set()
        user.sio = FakeSio(user, script)
        return user, ledger

    out = {}
    for name, script in {"timeout": ["lost", {"ok": True, "id": "7-0", "ts": 1}],
                         "drop": ["drop", {"ok": True, "id": "8-0", "ts": 1}],
                         "lost": ["lost"] * 4, "gone": ["gone"]}.items():
        u, ledger = user(script)
        u.send()
        out[name] = {"sent": ledger.sent, "retries": ledger.retries,
                     "failures": dict(ledger.send_failures),
                     "client_ids": [p["client_id"] for _, p in u.sio.emits],
                     "same_payload": all(p == u.sio.emits[0][1] for _, p in u.sio.emits),
                     "joins": u.sio.joins, "listening": u.receiver.listening,
                     "inbox_open": ledger.inbox_open["w0-0"], "members": lf.members["r"],
                     "node": u.node}
    print(json.dumps(out))
""")


@pytest.fixture(scope="module")
def locust_users():
    """The scripted sends, in a process of their own: locust monkey-patches whoever imports it."""
    run = subprocess.run([sys.executable, "-c", LOCUST_USER], cwd=ROOT, capture_output=True,
                         text=True, timeout=120, check=False,
                         env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)})
    assert run.returncode == 0, run.stderr[-3000:]
    return json.loads(run.stdout.strip().splitlines()[-1])


def test_a_locust_user_resends_with_the_same_client_id_after_an_ack_timeout(locust_users):
    timeout = locust_users["timeout"]
    assert timeout["sent"] == {"r": ["7-0"]} and timeout["retries"] == 1
    assert len(timeout["client_ids"]) == 2 and timeout["same_payload"]
    assert timeout["failures"] == {} and timeout["joins"] == 0 and timeout["listening"]


def test_a_locust_user_whose_connection_dropped_rejoins_resends_and_is_owed_nothing_more(
        locust_users):
    drop = locust_users["drop"]
    assert drop["sent"] == {"r": ["8-0"]} and drop["retries"] == 1
    assert len(drop["client_ids"]) == 2 and drop["same_payload"]
    assert drop["joins"] == 1 and drop["node"] == "node-2"
    assert not drop["listening"] and drop["inbox_open"][1] == -1 and drop["members"] == {}


def test_a_locust_user_gives_up_after_its_resends(locust_users):
    lost = locust_users["lost"]
    assert lost["sent"] == {} and lost["retries"] == RESENDS
    assert lost["failures"] == {"timeout": 1} and len(lost["client_ids"]) == RESENDS + 1


def test_a_locust_user_whose_connection_does_not_come_back_counts_the_send_disconnected(
        locust_users):
    gone = locust_users["gone"]
    assert gone["sent"] == {} and gone["retries"] == 0 and gone["joins"] == 0
    assert gone["failures"] == {"disconnected": 1} and not gone["listening"]


def test_reconnections_back_off_exponentially_with_jitter():
    from loadtests.backoff import delays

    for _ in range(50):
        waits = delays(base_s=0.25, cap_s=5.0)
        first = [next(waits) for _ in range(8)]
        for attempt, wait in enumerate(first):
            nominal = min(5.0, 0.25 * 2 ** attempt)
            assert 0.5 * nominal <= wait <= 1.5 * nominal
    spread = {round(next(delays()), 6) for _ in range(50)}
    assert len(spread) > 40  # drawn, not fixed: clients that failed together come back apart
