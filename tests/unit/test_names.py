"""The name rules of service/primitives/names.py that the app's tokens rely on."""

import pytest

from service.primitives.names import grants, is_user, is_username


@pytest.mark.parametrize("name", ["a", "x" * 64, "user@example.com", "tenant:42", "a.b_c-d"])
def test_an_app_may_bring_users_an_account_could_not_be_named(name):
    assert is_user(name)


@pytest.mark.parametrize("name", ["", "x" * 65, "a b", "a{b}", "a|b", "a/b", None, 7])
def test_a_user_name_keeps_out_what_keys_and_channels_cannot_hold(name):
    assert not is_user(name)


def test_every_account_name_is_a_user_name():
    assert is_username("alice") and is_user("alice")
    assert not is_username("al") and is_user("al")


@pytest.mark.parametrize(("patterns", "room", "admitted"), [
    (("team-a",), "team-a", True),
    (("team-a",), "team-ab", False),
    (("team-*",), "team-ab", True),
    (("team-*",), "team", False),
    (("*",), "anything", True),
    ((), "team-a", False),
    (("x", "team-*"), "team-", True),
])
def test_a_rooms_claim_admits_names_and_prefixes(patterns, room, admitted):
    assert grants(patterns, room) is admitted
