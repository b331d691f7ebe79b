"""The web page as people use it: pages on different nodes talking through the cluster."""

from __future__ import annotations

import re
import uuid

import pytest
from playwright.sync_api import expect

from .conftest import NODES, join, say, wait_connected

pytestmark = pytest.mark.local_cluster


@pytest.fixture
def room() -> str:
    return "b-" + uuid.uuid4().hex[:10]


def test_three_users_on_three_nodes_see_each_other(pages, room):
    opened = [pages.open(node) for node in NODES]
    assert [page.locator("body").get_attribute("data-node") for page in opened] == NODES
    names = [page.locator("#me").text_content() for page in opened]
    for page in opened:
        join(page, room)
    for page in opened:
        expect(page.locator("#presence li")).to_have_text(sorted(names))
    for page, name in zip(opened, names, strict=True):
        say(page, f"hello from {name}")
    expected = [f"hello from {name}" for name in names]
    for page in opened:
        expect(page.locator("#messages li .text")).to_have_text(expected)
    # each message shows its author, its time and the node that accepted it
    first = opened[2].locator("#messages li.message").first
    expect(first.locator("strong")).to_have_text(f"{names[0]}: ")
    expect(first.locator(".meta")).to_contain_text("node-1")
    expect(first.locator(".meta")).to_have_text(re.compile(r"\d{1,2}:\d{2}:\d{2}"))
    opened[1].locator("#rooms button.leave").click()
    for page in (opened[0], opened[2]):
        expect(page.locator("#presence li")).to_have_text(sorted([names[0], names[2]]))
    assert not pages.dialogs and not pages.errors


def test_a_direct_message_crosses_nodes(pages):
    sender = pages.open("node-1")
    receiver = pages.open("node-3")
    sender_name = sender.locator("#me").text_content()
    to = receiver.locator("#me").text_content()
    join(receiver, "b-" + uuid.uuid4().hex[:10])  # so the direct messages arrive unread
    sender.fill("#direct-to", to)
    sender.fill("#direct-text", "psst, across the cluster")
    sender.press("#direct-text", "Enter")
    expect(sender.locator("#room-title")).to_have_text("@" + to)
    conversation = receiver.locator("#conversations li", has_text="@" + sender_name)
    expect(conversation.locator(".unread")).to_have_text("1")
    conversation.locator("button").click()
    expect(receiver.locator("#messages li .text")).to_have_text(["psst, across the cluster"])
    expect(receiver.locator("#messages li.message .meta")).to_contain_text("node-1")
    expect(conversation.locator(".unread")).to_have_count(0)
    expect(sender.locator("#messages li .text")).to_have_text(["psst, across the cluster"])
    sender.fill("#direct-to", "nobody" + uuid.uuid4().hex[:8])
    sender.fill("#direct-text", "into the void")
    sender.press("#direct-text", "Enter")
    expect(sender.locator("#notice")).to_contain_text("no user named")
    expect(sender.locator("#conversations li")).to_have_count(1)


def test_markup_in_messages_shows_as_text_and_runs_nothing(pages, room):
    writer = pages.open("node-1")
    reader = pages.open("node-2")
    for page in (writer, reader):
        join(page, room)
    hostile = ["<img src=x onerror=alert(1)>", "<script>alert(2)</script>",
               '"><svg onload=alert(3)>']
    for text in hostile:
        say(writer, text)
    for page in (writer, reader):
        expect(page.locator("#messages li .text")).to_have_text(hostile)
        assert page.locator("#messages img, #messages script, #messages svg").count() == 0
    reader.reload()
    wait_connected(reader, "node-2")
    assert not pages.dialogs, pages.dialogs
    assert not pages.errors, pages.errors


def test_a_page_that_may_only_long_poll_works(pages, room):
    polling = pages.open("node-2", query="?transport=polling")
    other = pages.open("node-3")
    expect(polling.locator("#state")).to_contain_text("(polling)")
    for page in (polling, other):
        join(page, room)
    say(polling, "sent over long-polling")
    say(other, "received over long-polling")
    expected = ["sent over long-polling", "received over long-polling"]
    for page in (polling, other):
        expect(page.locator("#messages li .text")).to_have_text(expected)
    expect(other.locator("body")).to_have_attribute("data-transport", "websocket")
    assert pages.websockets[other], "the other page should have upgraded to a WebSocket"
    assert polling.locator("body").get_attribute("data-transport") == "polling"
    assert pages.websockets[polling] == []


def test_the_page_loads_nothing_from_elsewhere_and_fits_a_phone(pages, room):
    page = pages.open("node-1", viewport={"width": 375, "height": 740})
    join(page, room)
    say(page, "small screen")
    expect(page.locator("#messages li .text")).to_have_text(["small screen"])
    width = page.evaluate("() => document.documentElement.scrollWidth")
    assert width <= 375
    assert page.locator("#send-text").is_visible() and page.locator("#presence").is_visible()
    base = pages.base.replace("http://", "")
    foreign = [url for url in pages.requests if base not in url]
    assert not foreign, foreign


def test_logging_out_ends_the_connection_and_a_logged_out_page_cannot_connect(pages, room):
    page = pages.open("node-2")
    second_tab = page.context.new_page()  # the same session in another tab, on the same node
    second_tab.goto(pages.base + "/")
    wait_connected(second_tab, "node-2")
    page.locator("#logout").click()
    expect(page.locator("#login-form")).to_be_visible()
    expect(second_tab.locator("#login-form")).to_be_visible()  # its socket was ended
    # the logged-out page loads the Socket.IO client itself and tries to connect with its cookies
    page.add_script_tag(url="/static/vendor/socket.io.min.js")
    outcome = page.evaluate("""() => new Promise((resolve) => {
        const socket = io({ transports: ['polling'], reconnection: false });
        socket.on('connect', () => resolve('connected'));
        socket.on('connect_error', (error) => resolve('refused: ' + error.message));
    })""")
    assert outcome == "refused: no credentials: send auth {token} or log in first", outcome
    assert not pages.errors, pages.errors
