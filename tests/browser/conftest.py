"""Real pages in Debian's chromium, driven by Playwright, against the local cluster's front door.

Each page gets its own browser context (its own cookies, so its own session) and is pinned to a
node through the `node_key` cookie that the front door hashes on.
"""

from __future__ import annotations

import os
import re
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests
from playwright.sync_api import Browser, BrowserContext, Page, Playwright, expect, sync_playwright

from tests.conftest import RESULTS

SCREENSHOTS = RESULTS / "browser"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
NODES = ["node-1", "node-2", "node-3"]
expect.set_options(timeout=15_000)


def chromium_path() -> str:
    found = os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which(
        "chromium-browser")
    if not found:
        raise pytest.UsageError("CHROMIUM: no chromium found; `make setup` installs Debian's "
                                "chromium, or set CHROMIUM to a chromium binary")
    return found


@pytest.fixture(scope="session")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as instance:
        yield instance


@pytest.fixture(scope="session")
def browser(playwright: Playwright) -> Iterator[Browser]:
    instance = playwright.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
    yield instance
    instance.close()


def sticky_keys(base: str, nodes: list[str]) -> dict[str, str]:
    """A `node_key` cookie value that the front door at `base` routes to each of `nodes`."""
    keys: dict[str, str] = {}
    for attempt in range(200):
        key = f"browser-{attempt}"
        answer = requests.get(base + "/readyz", cookies={"node_key": key}, timeout=5)
        keys.setdefault(answer.json()["node"], key)
        if len(keys) == len(nodes):
            return keys
    raise AssertionError(f"no sticky key found for every node: {keys}")


@pytest.fixture(scope="session")
def node_keys(cluster) -> dict[str, str]:
    return sticky_keys(cluster.url, NODES)


def register(base: str, prefix: str = "b") -> tuple[str, str]:
    name = f"{prefix}{uuid.uuid4().hex[:10]}"
    password = "correct-horse-" + name
    answer = requests.post(base + "/api/register", json={"username": name, "password": password},
                           timeout=10)
    assert answer.status_code == 201, answer.text
    return name, password


class Pages:
    """Opens logged-in pages on chosen nodes and keeps what every page did."""

    def __init__(self, browser: Browser, base: str, node_keys: dict[str, str], test_name: str):
        self.browser, self.base, self.node_keys = browser, base, node_keys
        self.test_name = test_name
        self.pages: list[Page] = []
        self.contexts: list[BrowserContext] = []
        self.requests: list[str] = []
        self.websockets: dict[Page, list[str]] = {}
        self.dialogs: list[str] = []
        self.errors: list[str] = []

    def open(self, node: str, user: tuple[str, str] | None = None, query: str = "",
             viewport: dict[str, int] | None = None) -> Page:
        """A page logged in (through the form) as `user`, or a new user, connected to `node`."""
        context = self.browser.new_context(viewport=viewport or {"width": 1200, "height": 800})
        context.add_cookies([{"name": "node_key", "value": self.node_keys[node],
                              "url": self.base}])
        page = context.new_page()
        page.on("request", lambda request: self.requests.append(request.url))
        self.websockets[page] = []
        page.on("websocket", lambda socket: self.websockets[page].append(socket.url))
        page.on("dialog", lambda dialog: (self.dialogs.append(dialog.message), dialog.dismiss()))
        page.on("pageerror", lambda error: self.errors.append(str(error)))
        self.contexts.append(context)
        self.pages.append(page)
        name, password = user or register(self.base)
        page.goto(self.base + "/" + query)
        login = page.locator("#login-form")
        login.locator("input[name=username]").fill(name)
        login.locator("input[name=password]").fill(password)
        login.locator("button[type=submit]").click()
        if query:  # the log-in lands on "/", which connects with every transport: let it finish
            expect(page.locator("#me")).to_have_text(name)
            expect(page.locator("body")).to_have_attribute("data-transport", "websocket")
            self.websockets[page] = []  # what the page under test opens is recorded from here
            page.goto(self.base + "/" + query)
        expect(page.locator("#me")).to_have_text(name)
        wait_connected(page, node)
        return page

    def screenshot(self, page: Page, label: str = "") -> Path:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{self.test_name}{'-' + label if label else ''}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    def close(self) -> None:
        for context in self.contexts:
            context.close()


def wait_connected(page: Page, node: str | None = None) -> str:
    """Waits until the page says it is connected (to `node`, if given); returns the node."""
    expected = re.escape(node) if node else r"node-\d+"
    expect(page.locator("#state")).to_have_text(re.compile(rf"^connected to {expected} \("))
    return page.locator("body").get_attribute("data-node")


def wait_for_number(read: Callable[[], str | None], at_least: float, what: str,
                    timeout_s: float = 15) -> float:
    """Waits until the number `read` answers (an attribute, a text) is at least `at_least`.

    Polled from here: Playwright's wait_for_function evaluates its predicate as a string, which
    the pages' Content-Security-Policy (no 'unsafe-eval') refuses."""
    deadline = time.monotonic() + timeout_s
    while True:
        raw = read()
        try:
            value = float(raw) if raw is not None else None
        except ValueError:
            value = None
        if value is not None and value >= at_least:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} was {raw!r} after {timeout_s} s, not {at_least} or more")
        time.sleep(0.1)


def join(page: Page, room: str) -> None:
    page.fill("#join-room", room)
    page.press("#join-room", "Enter")
    expect(page.locator("#room-title")).to_have_text("#" + room)


def say(page: Page, text: str) -> None:
    page.fill("#send-text", text)
    page.press("#send-text", "Enter")
    expect(page.locator("#send-text")).to_have_value("")


@pytest.fixture
def pages(request, browser, cluster, node_keys) -> Iterator[Pages]:
    opened = Pages(browser, cluster.url, node_keys, request.node.name)
    yield opened
    for number, page in enumerate(opened.pages, 1):
        if not page.is_closed():
            opened.screenshot(page, f"page{number}")
    opened.close()
