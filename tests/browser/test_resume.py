"""A page that loses its connection returns by itself and shows what it missed once, in order."""

from __future__ import annotations

import signal
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from playwright.sync_api import expect

from tests.conftest import TEST_ENV
from tests.integration.conftest import API_KEY

from .conftest import join, say, wait_connected

pytestmark = pytest.mark.local_cluster


def test_a_killed_nodes_page_reconnects_elsewhere_without_gap_or_duplicate(pages, cluster):
    room = "b-" + uuid.uuid4().hex[:10]
    watcher = pages.open("node-3")
    writer = pages.open("node-1")
    for page in (watcher, writer):
        join(page, room)
    say(writer, "before the crash")
    expect(watcher.locator("#messages li .text")).to_have_text(["before the crash"])
    cluster.kill_node(3, signal.SIGKILL)
    try:
        expect(watcher.locator("#state")).not_to_contain_text("node-3")
        meanwhile = [f"while node-3 was gone {n}" for n in range(5)]
        for text in meanwhile:
            say(writer, text)
        moved_to = wait_connected(watcher)
        assert moved_to in ("node-1", "node-2")
        say(writer, "after the reconnect")
        expected = ["before the crash", *meanwhile, "after the reconnect"]
        expect(watcher.locator("#messages li .text")).to_have_text(expected)
        ids = watcher.locator("#messages li").evaluate_all("items => items.map(i => i.dataset.id)")
        assert len(set(ids)) == len(ids) == len(expected)
        pages.screenshot(watcher, "after-failover")
    finally:
        cluster.start_node(3)


def test_a_page_told_its_missed_history_was_trimmed(pages, cluster):
    """Retention (ROOM_HISTORY_MAX) outran a disconnected page: it says so instead of a gap."""
    room = "b-" + uuid.uuid4().hex[:10]
    page = pages.open("node-2", query="?transport=polling")
    join(page, room)
    say(page, "the last thing I saw")
    page.context.route("**/socket.io/**", lambda route: route.abort())
    publish = requests.Session()
    headers = {"Authorization": f"Bearer {API_KEY}"}
    url = f"{cluster.url}/api/rooms/{room}/messages"
    publish.post(url, json={"text": "wakes the pending poll"}, headers=headers, timeout=5)
    expect(page.locator("#state")).to_have_text("reconnecting…")
    retention = int(TEST_ENV["ROOM_HISTORY_MAX"])

    def one(n: int) -> None:
        answer = publish.post(url, json={"text": f"missed {n}"}, headers=headers, timeout=10)
        assert answer.status_code == 202, answer.text

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(one, range(retention + 150)))
    last = publish.post(url, json={"text": "the newest"}, headers=headers, timeout=5).json()
    page.context.unroute("**/socket.io/**")
    wait_connected(page, "node-2")
    expect(page.locator("#notice")).to_have_text(
        "Some older messages of this room are no longer stored.")
    expect(page.locator("#messages li").last).to_have_attribute("data-id", last["id"])
    pages.screenshot(page, "truncated")
