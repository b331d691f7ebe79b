"""The live cluster page in chromium: operators see every node's figures and charts that move;
everybody else gets 403; the page loads nothing from elsewhere."""

from __future__ import annotations

import threading
import uuid

import pytest
import requests
from playwright.sync_api import expect

from tests.conftest import TEST_ENV
from tests.integration.conftest import Client

from .conftest import NODES, register, wait_for_number

OPERATOR = TEST_ENV["OPERATORS"]
PASSWORD = "operator-password-" + OPERATOR


@pytest.fixture
def room() -> str:
    return "room-" + uuid.uuid4().hex[:12]


def operator_account(base: str) -> tuple[str, str]:
    answer = requests.post(base + "/api/register",
                           json={"username": OPERATOR, "password": PASSWORD}, timeout=10)
    assert answer.status_code in (201, 409), answer.text
    return OPERATOR, PASSWORD


def chatter(base: str, room: str, stop: threading.Event) -> None:
    """Two clients talking in a room until stopped, so the cluster has something to show."""
    clients = []
    for _ in range(2):
        name, password = register(base, "load")
        token = requests.post(base + "/api/token", json={"username": name, "password": password},
                              timeout=10).json()["token"]
        client = Client(base, token, None)
        client.ok("join", {"room": room})
        clients.append(client)
    try:
        while not stop.wait(0.05):
            clients[0].call("send", {"room": room, "text": "traffic"})
    finally:
        for client in clients:
            client.close()


def wait_for_polls(page, at_least: int) -> int:
    """Waits until the page has polled its data at least `at_least` times; answers the count
    (a poll can land between two checks, so never wait for one exact count)."""
    cluster = page.locator("#cluster")
    return int(wait_for_number(lambda: cluster.get_attribute("data-polls"), at_least,
                               "the cluster page's polls"))


def test_an_operator_sees_every_node_and_live_charts(pages, cluster, room):
    page = pages.open("node-2", operator_account(cluster.url))
    stop = threading.Event()
    traffic = threading.Thread(target=chatter, args=(cluster.url, room, stop), daemon=True)
    traffic.start()
    try:
        page.goto(cluster.url + "/admin")
        rows = page.locator("#nodes tbody tr")
        for node in NODES:
            expect(page.locator(f'#nodes tbody tr[data-node="{node}"]')).to_have_count(1)
        expect(page.locator("#total-nodes")).to_have_text(str(len(NODES)))
        expect(page.locator("#nodes thead th").last).to_have_text("hooks")
        expect(page.locator('#nodes tbody tr[data-node="node-1"] td').last).to_have_text(
            "-")  # no hook is set on this cluster (with one: "12 calls, 0 failed")
        expect(page.locator("#redis tbody tr").first).to_contain_text("up")
        expect(page.locator("#updated")).to_contain_text("live")
        polls = wait_for_polls(page, 3)
        first = int(page.locator("#chart-delivered").get_attribute("data-points"))
        wait_for_polls(page, polls + 2)
        assert int(page.locator("#chart-delivered").get_attribute("data-points")) > first
        wait_for_number(page.locator("#total-delivered").text_content, 0.1,
                        "deliveries per second")
        assert rows.count() == len(NODES)
        pages.screenshot(page, "cluster-page")
    finally:
        stop.set()
        traffic.join(15)
    assert pages.errors == []
    assert all(url.startswith(cluster.url) for url in pages.requests), pages.requests


def test_someone_not_listed_as_operator_gets_403(pages, cluster):
    page = pages.open("node-1")
    response = page.goto(cluster.url + "/admin")
    assert response.status == 403
    expect(page.locator("#forbidden")).to_contain_text("not listed in OPERATORS")
    assert page.locator("#nodes").count() == 0
    assert requests.get(cluster.url + "/admin", timeout=5).status_code == 403
