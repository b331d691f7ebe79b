"""Bad input at scale: generated payloads for every event, malformed Engine.IO and Socket.IO
packets, bad HTTP bodies and oversized frames. Nothing crashes a node, leaks a traceback, corrupts
stored data or disturbs anyone else."""

from __future__ import annotations

import json
import time
import uuid

import pytest
import requests
import websocket
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import TEST_ENV
from tests.integration.conftest import API_KEY

pytestmark = pytest.mark.local_cluster

CODES = {"bad_request", "unauthorized", "forbidden", "not_found", "too_large", "rate_limited",
         "unavailable"}
EVENTS = ["join", "leave", "send", "direct", "presence", "history", "inbox", "direct_history",
          "conversations", "rooms", "read", "typing", "refresh"]
RESERVED = ["connect", "disconnect", "connect_error", "message", "welcome", "*"]
KEYS = ["room", "text", "since", "before", "limit", "to", "client_id", "user", "node", "id",
        "with", "token"]
PACE_S = 1.2 / float(TEST_ENV["RATE_LIMIT_PER_S"])  # stay under the rate limit

scalars = (st.none() | st.booleans() | st.integers(-2**70, 2**70)
           | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=80)
           | st.sampled_from(["lobby", "1-0", "0-0", "-1", "9" * 40 + "-0", "x" * 5000, "a b",
                              "../etc", "\u0000", "💥" * 10]))
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
    st.sampled_from(KEYS) | st.text(max_size=10), inner, max_size=5), max_leaves=12)
payloads = st.dictionaries(st.sampled_from(KEYS), json_values, max_size=5) | json_values


def assert_contract_answer(answer) -> None:
    assert isinstance(answer, dict), answer
    if answer.get("ok") is True:
        return
    assert answer.get("ok") is False, answer
    assert answer["error"]["code"] in CODES, answer
    message = answer["error"]["message"]
    assert isinstance(message, str) and "Traceback" not in message and 'File "' not in message


def control_room(users) -> tuple[str, list[str], object]:
    room = "control-" + uuid.uuid4().hex[:8]
    _, client = users.user_on("node-2")
    client.ok("join", {"room": room})
    ids = [client.ok("send", {"room": room, "text": f"kept {n}"})["id"] for n in range(3)]
    return room, ids, client


def test_generated_payloads_for_every_event_get_contract_answers(cluster, users):
    room, kept, control = control_room(users)
    _, fuzzer = users.user_on("node-1")
    fuzzer.ok("join", {"room": "fuzz"})
    seen_codes: set[str] = set()

    @settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck),
              database=None)
    @given(event=st.sampled_from(EVENTS + RESERVED) | st.text(min_size=1, max_size=20),
           payload=payloads)
    def one(event, payload):
        time.sleep(PACE_S)  # pacing: under the rate limit
        answer = fuzzer.call(event, payload, timeout=10)
        assert_contract_answer(answer)
        if not answer["ok"]:
            seen_codes.add(answer["error"]["code"])

    one()
    assert fuzzer.sio.connected
    assert "bad_request" in seen_codes and "rate_limited" not in seen_codes
    history = control.ok("history", {"room": room})["messages"]
    assert [m["id"] for m in history] == kept  # nothing stored where it should not be
    assert fuzzer.ok("send", {"room": "fuzz", "text": "still fine"})["id"]


def raw_socket(base: str, token: str) -> websocket.WebSocket:
    """A raw Engine.IO WebSocket session, connected to the Socket.IO namespace."""
    connection = websocket.create_connection(
        base.replace("http://", "ws://") + "/socket.io/?EIO=4&transport=websocket&node_key=raw1",
        timeout=5, origin=base)
    assert connection.recv().startswith("0{")  # Engine.IO open
    connection.send("40" + json.dumps({"token": token}))
    assert connection.recv().startswith("40{")  # Socket.IO connect accepted
    return connection


MALFORMED = ["", "4", "42", "42[", "42{}", "42[]", "42[1,2]", '42["send"', "43", "49", "4x",
             "44", "45-", '451-["send",{"_placeholder":true,"num":9}]', "9", "6", "40{bad",
             "41", '42999999999999999999999["join",{"room":"x"}]', '42/nope,["join"]',
             "3probe", "\u0000\u0001", "4" + "[" * 5000 + "]" * 5000]


def test_malformed_packets_never_crash_the_node_or_reach_other_users(cluster, users, room):
    _, token = users.register("raw")
    _, witness = users.user_on("node-1")
    witness.ok("join", {"room": room})
    for frame in MALFORMED:
        connection = raw_socket(cluster.url, token)
        try:
            connection.send(frame)
            connection.send_binary(b"\x00\xff\x10garbage")
        except websocket.WebSocketException:
            pass  # the node may close a connection that speaks nonsense: that is fine
        finally:
            connection.close()  # waits for the node's close frame: it read the junk before
    polling = requests.get(f"{cluster.url}/socket.io/?EIO=4&transport=polling&node_key=raw1",
                           timeout=5)
    sid = polling.text.split('"sid":"')[1].split('"')[0]
    for body in ["", "garbage", "40{", "4" * 10000, b"\xff\xfe\x00"]:
        answer = requests.post(f"{cluster.url}/socket.io/?EIO=4&transport=polling&sid={sid}"
                               "&node_key=raw1", data=body, timeout=5)
        assert answer.status_code < 500, (body, answer.status_code, answer.text)
        assert "Traceback" not in answer.text
    for index in cluster.indexes():
        assert requests.get(cluster.node_url(index) + "/healthz", timeout=5).status_code == 200
    assert witness.until_marker(witness.mark_room(room)) == []  # no garbage reached the room
    raw_node = requests.get(f"{cluster.url}/healthz?node_key=raw1", timeout=5).json()["node"]
    node_log = (cluster.log_dir / f"{raw_node}.log").read_text()
    assert "Traceback" not in node_log, node_log[-3000:]  # junk frames end quietly


def test_oversized_frames_are_refused_and_the_node_carries_on(cluster, users):
    _, token = users.register("big")
    connection = raw_socket(cluster.url, token)
    try:
        with pytest.raises((websocket.WebSocketConnectionClosedException, OSError)):
            connection.send('42["send",{"room":"big","text":"' + "x" * (1 << 20) + '"}]')
            for _ in range(5):
                connection.recv()  # the node closes the connection instead of answering
    finally:
        connection.close()
    for size in (100_000, 2 << 20):  # past the node's limit, then past the front door's
        answer = requests.post(f"{cluster.url}/api/register", data="x" * size,
                               headers={"Content-Type": "application/json"}, timeout=10)
        assert answer.status_code == 413, (size, answer.status_code)
        assert answer.json()["error"]["code"] == "too_large"
    assert requests.get(cluster.url + "/readyz", timeout=5).status_code == 200


def test_a_message_announced_as_huge_is_cut_off_before_it_is_buffered(cluster, users):
    _, token = users.register("huge")
    connection = raw_socket(cluster.url, token)
    try:
        header = bytes((0x81, 0xFF)) + (100 << 20).to_bytes(8, "big") + bytes(4)  # 100 MB, mask 0
        connection.sock.sendall(header)
        closed_by_node = False
        started = time.monotonic()
        for _ in range(128):  # at most 8 MB of the announced 100 MB
            try:
                connection.sock.sendall(b"x" * 65536)
            except OSError:
                closed_by_node = True
                break
            if time.monotonic() - started > 20:
                break
        for _ in range(10):  # frames sent before the close (`welcome`, a ping) come first
            if closed_by_node:
                break
            try:
                opcode, _ = connection.recv_data(control_frame=True)
                closed_by_node = opcode == websocket.ABNF.OPCODE_CLOSE
            except websocket.WebSocketConnectionClosedException:
                closed_by_node = True
            except websocket.WebSocketTimeoutException:
                break  # still reading: the node would buffer the whole message
        assert closed_by_node
    finally:
        connection.close()
    assert requests.get(cluster.url + "/readyz?node_key=raw1", timeout=5).status_code == 200


@pytest.mark.parametrize("body", [b"", b"{", b"[]", b"null", b'{"username": 5}', b'"text"',
                                  b'{"username": "a", "password": null}', b"\xff\xfe"])
def test_bad_http_bodies_get_json_errors(cluster, body):
    for path, headers in (("/api/register", {}), ("/api/token", {}),
                          ("/api/rooms/lobby/messages", {"Authorization": f"Bearer {API_KEY}"})):
        answer = requests.post(cluster.url + path, data=body,
                               headers={"Content-Type": "application/json", **headers},
                               timeout=5)
        assert answer.status_code == 400, (path, body, answer.status_code, answer.text)
        assert answer.json()["error"]["code"] == "bad_request"


@pytest.mark.parametrize("name", ["connect", "disconnect", "connect_error", "disconnecting", "*"])
def test_client_events_named_like_server_only_handlers_are_refused(users, room, name):
    _, client = users.user_on("node-1")
    client.ok("join", {"room": room})
    answer = client.call(name, {"token": "x"})
    assert answer["ok"] is False and answer["error"]["code"] == "bad_request"
    assert client.ok("presence", {"room": room})["members"]  # still present, still joined
    client.ok("send", {"room": room, "text": "still here"})
