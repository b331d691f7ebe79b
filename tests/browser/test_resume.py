"""A page that loses its connection returns by itself and shows what it missed once, in order."""

from __future__ import annotations

import signal
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from playwright.sync_api import Page, expect

from service.store.messages import parse_id
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
        ids = watcher.locator("#messages li.message").evaluate_all(
            "items => items.map(i => i.dataset.id)")
        assert len(set(ids)) == len(ids) == len(expected)
        pages.screenshot(watcher, "after-failover")
    finally:
        cluster.start_node(3)


class Publisher:
    """Publishes to a room over the HTTP API with the API key, four requests at a time."""

    def __init__(self, base: str, room: str):
        self.url = f"{base}/api/rooms/{room}/messages"
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {API_KEY}"

    def one(self, text: str) -> str:
        answer = self.session.post(self.url, json={"text": text}, timeout=10)
        assert answer.status_code == 202, answer.text
        return answer.json()["id"]

    def many(self, texts: list[str]) -> list[str]:
        with ThreadPoolExecutor(4) as pool:
            return list(pool.map(self.one, texts))


def cut_off(page: Page, publisher: Publisher) -> None:
    """Ends a long-polling page's connection and keeps it from reconnecting."""
    page.context.route("**/socket.io/**", lambda route: route.abort())
    publisher.one("wakes the pending poll")
    expect(page.locator("#state")).to_have_text("reconnecting…")


def let_back(page: Page, node: str) -> None:
    page.context.unroute("**/socket.io/**")
    wait_connected(page, node)


def test_a_page_away_for_more_than_one_join_page_loads_the_whole_gap(pages, cluster):
    room = "b-" + uuid.uuid4().hex[:10]
    page = pages.open("node-2", query="?transport=polling")
    join(page, room)
    say(page, "the last thing I saw")
    publisher = Publisher(cluster.url, room)
    cut_off(page, publisher)
    missed = [f"missed {n}" for n in range(700)]  # more than one join answer (500) carries
    for text in missed:  # one at a time, so their order is known
        publisher.one(text)
    let_back(page, "node-2")
    texts = page.locator("#messages li .text")
    expect(texts).to_have_count(702)
    assert texts.all_text_contents() == ["the last thing I saw", "wakes the pending poll", *missed]
    expect(page.locator("#notice")).to_be_hidden()
    pages.screenshot(page, "gap-loaded")


def test_a_page_told_its_missed_history_was_trimmed(pages, cluster):
    """Retention (ROOM_HISTORY_MAX) outran a disconnected page: it says so instead of a gap."""
    room = "b-" + uuid.uuid4().hex[:10]
    page = pages.open("node-2", query="?transport=polling")
    join(page, room)
    say(page, "the last thing I saw")
    publisher = Publisher(cluster.url, room)
    cut_off(page, publisher)
    publisher.many([f"missed {n}" for n in range(int(TEST_ENV["ROOM_HISTORY_MAX"]) + 150)])
    newest = publisher.one("the newest")
    let_back(page, "node-2")
    expect(page.locator("#notice")).to_have_text(
        "Some older messages of this room are no longer stored.")
    expect(page.locator("#messages li.message").last).to_have_attribute("data-id", newest)
    ids = page.locator("#messages li.message").evaluate_all("items => items.map(i => i.dataset.id)")
    assert len(ids) == len(set(ids)) > 1000  # everything still stored, once
    assert ids == sorted(ids, key=parse_id)
    pages.screenshot(page, "truncated")
