"""A user the app removes from a room, in the page: on both of the user's devices (pages on two
nodes) the room leaves the list with a notice that shows the app's reason as text, and the
room's later messages do not come back."""

from __future__ import annotations

import uuid

import pytest
import requests
from playwright.sync_api import expect

from tests.integration.conftest import API_KEY

from .conftest import join, register, say

pytestmark = pytest.mark.local_cluster


def test_the_removed_room_leaves_the_list_on_every_device_with_a_notice(pages, cluster):
    room, other = "b-" + uuid.uuid4().hex[:10], "b-" + uuid.uuid4().hex[:10]
    user = register(cluster.url)
    laptop, phone = pages.open("node-1", user), pages.open("node-2", user)
    watcher = pages.open("node-3")
    for page in (laptop, phone):
        join(page, other)  # the room it keeps
    for page in (laptop, phone, watcher):
        join(page, room)
    expect(phone.locator("#rooms li")).to_have_count(2)
    reason = "<b>moved</b> to <img src=x onerror=alert(1)>"
    removed = requests.delete(f"{cluster.url}/api/rooms/{room}/members/{user[0]}", timeout=10,
                              json={"reason": reason},
                              headers={"Authorization": f"Bearer {API_KEY}"})
    assert removed.status_code == 204, removed.text
    for page in (laptop, phone):
        expect(page.locator("#notice")).to_have_text(f"You were removed from #{room}: {reason}.")
        expect(page.locator(f'#rooms li[data-key="#{room}"]')).to_have_count(0)
        expect(page.locator(f'#rooms li[data-key="#{other}"]')).to_have_count(1)
        assert page.locator("#notice img, #notice b").count() == 0
    say(watcher, "after the removal")
    expect(watcher.locator("#messages li .text")).to_have_text(["after the removal"])
    laptop.reload()  # the server's list agrees: the room does not come back
    expect(laptop.locator(f'#rooms li[data-key="#{other}"]')).to_have_count(1)
    expect(laptop.locator(f'#rooms li[data-key="#{room}"]')).to_have_count(0)
    assert not pages.dialogs and not pages.errors
