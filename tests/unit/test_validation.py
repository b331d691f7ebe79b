import pytest
from hypothesis import given
from hypothesis import strategies as st

from service.errors import ServiceError
from service.realtime import validation


def code_of(fn, *args):
    with pytest.raises(ServiceError) as info:
        fn(*args)
    return info.value.code


@pytest.mark.parametrize(
    "payload",
    [None, "lobby", 3, [], {"room": ""}, {"room": "a b"}, {"room": "x" * 65}, {"room": 5},
     {"room": "lobby", "since": "abc"}, {"room": "lobby", "since": 17}],
)
def test_bad_join_payloads(payload):
    assert code_of(validation.join, payload) == "bad_request"


def test_join_accepts_room_and_since():
    assert validation.join({"room": "a.b-c_1", "since": "1-0"}) == validation.Join("a.b-c_1", "1-0")
    assert validation.join({"room": "r"}).since is None


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        ({"room": "r"}, "bad_request"),
        ({"room": "r", "text": ""}, "bad_request"),
        ({"room": "r", "text": 12}, "bad_request"),
        ({"room": "r", "text": "x" * 4001}, "too_large"),
        ({"room": "r", "text": "\ud800"}, "bad_request"),
        ({"room": "r", "text": "hi", "client_id": "c" * 65}, "bad_request"),
        ({"room": "r", "text": "hi", "client_id": 7}, "bad_request"),
        ({"text": "hi"}, "bad_request"),
    ],
)
def test_bad_send_payloads(payload, code):
    assert code_of(validation.send, payload, 4000) == code


def test_send_keeps_text_exactly():
    text = "  <img src=x onerror=alert(1)> \n é 😀 "
    assert validation.send({"room": "r", "text": text, "client_id": ""}, 4000) == validation.Send(
        "r", text, ""
    )
    assert len(validation.send({"room": "r", "text": "x" * 4000}, 4000).text) == 4000


@pytest.mark.parametrize("to", ["ab", "x" * 33, "a b", "a@b", None, 3])
def test_bad_direct_recipient(to):
    assert code_of(validation.direct, {"to": to, "text": "hi"}, 4000) == "bad_request"


@pytest.mark.parametrize("to", ["", "x" * 65, "a b", "a{b}", "a|b", None, 3])
def test_bad_direct_recipient_with_app_users(to):
    assert code_of(validation.direct, {"to": to, "text": "hi"}, 4000,
                   validation.APP_USERS) == "bad_request"


@pytest.mark.parametrize("to", ["a", "x" * 64, "user@example.com", "tenant:42", "a.b_c-d"])
def test_with_app_jwts_a_recipient_may_be_any_user_an_app_brings(to):
    assert validation.direct({"to": to, "text": "hi"}, 4000, validation.APP_USERS).to == to
    assert validation.read({"with": to, "id": "1-0"}, validation.APP_USERS).target == to
    assert validation.direct_history({"with": to}, validation.APP_USERS).with_user == to


@pytest.mark.parametrize(("given", "expected"), [(None, 50), (1, 1), (500, 500), (501, 500),
                                                 ("20", 20)])
def test_history_limit(given, expected):
    assert validation.history({"room": "r", "limit": given}).limit == expected


@pytest.mark.parametrize("limit", [0, -1, True, 2.5, "x"])
def test_bad_history_limit(limit):
    assert code_of(validation.history, {"room": "r", "limit": limit}) == "bad_request"


@pytest.mark.parametrize("password", ["short", "p" * 129, 12345678, None])
def test_bad_passwords(password):
    assert code_of(validation.password, password) == "bad_request"


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=80),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.sampled_from(["room", "text", "to", "since", "before", "limit",
                                       "client_id", "x"]), children, max_size=6),
    max_leaves=12,
)


@given(json_values)
def test_any_payload_is_accepted_or_refused_with_a_contract_code(payload):
    for check in (lambda p: validation.join(p), lambda p: validation.send(p, 4000),
                  lambda p: validation.direct(p, 4000), lambda p: validation.history(p),
                  lambda p: validation.room_only(p)):
        try:
            check(payload)
        except ServiceError as error:
            assert error.code in ("bad_request", "too_large")


@pytest.mark.parametrize("value", ["1-99999999999999999999", "18446744073709551615-0",
                                   "9223372036854775808-1"])
def test_ids_beyond_what_a_stream_bound_takes_are_refused(value):
    with pytest.raises(ServiceError) as refused:
        validation.message_id(value, "since")
    assert refused.value.code == "bad_request"
    assert validation.message_id("9223372036854775807-0", "since") == "9223372036854775807-0"


@pytest.mark.parametrize("payload", [
    {}, {"id": "1-0"}, {"room": "ok", "with": "bob", "id": "1-0"}, {"room": "ok"},
    {"room": "bad room", "id": "1-0"}, {"with": "x", "id": "1-0"}, {"room": "ok", "id": 5}])
def test_bad_read_payloads(payload):
    with pytest.raises(ServiceError) as refused:
        validation.read(payload)
    assert refused.value.code == "bad_request"


def test_read_names_a_room_or_a_conversation():
    assert validation.read({"room": "lobby", "id": "5-1"}) == validation.Read("room", "lobby",
                                                                               "5-1")
    assert validation.read({"with": "bob", "id": "5-1"}) == validation.Read("with", "bob", "5-1")
    assert validation.inbox(None) is None and validation.inbox({"since": "3-0"}) == "3-0"
