"""Users an app brings have no account here: with app JWTs on (the store's `app_users`), a direct
message may go to any user name and a conversation with one is no `not_found`; with them off, an
unknown recipient stays `not_found` (store/messages.py, lua/append.lua's KEYS[4])."""

from __future__ import annotations

import pytest

from service.errors import ServiceError
from service.settings import RedisTarget
from service.store import keys
from service.store.store import Store


@pytest.fixture
def app_store(client, redis_server):
    store = Store(RedisTarget(url=redis_server.url), "node-a", history_max=1000, app_users=True)
    yield store
    store.close()


def test_with_app_users_a_direct_reaches_any_user_name(app_store, client):
    sent = app_store.messages.direct("ann@example.com", "tenant:ben", "hi", "c1", "node-a|s")
    assert [entry[0] for entry in client.xrange(keys.inbox("tenant:ben"))] == [sent.id]
    assert [entry[0] for entry in client.xrange(keys.inbox("ann@example.com"))] == [sent.id]
    assert not client.exists(keys.account("tenant:ben"))  # no account was needed, none made
    (talk,) = app_store.conversations.list("tenant:ben")
    assert (talk.with_user, talk.unread) == ("ann@example.com", 1)
    assert app_store.conversations.history("ann@example.com", "nobody-yet", None, 50) == []
    assert app_store.conversations.read("ann@example.com", "nobody-yet", sent.id).id is None


def test_without_app_users_an_unknown_recipient_is_not_found(store, client):
    with pytest.raises(ServiceError) as refused:
        store.messages.direct("ann", "tenant:ben", "hi", None, "node-a|s")
    assert refused.value.code == "not_found"
    assert not client.exists(keys.inbox("tenant:ben"), keys.inbox("ann"))
    with pytest.raises(ServiceError) as refused:
        store.conversations.history("ann", "tenant:ben", None, 50)
    assert refused.value.code == "not_found"
