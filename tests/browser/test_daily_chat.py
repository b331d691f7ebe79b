"""The page as people use it every day, in chromium across nodes: one person on two devices,
reloads, a lost acknowledgement, older history, typing, and a token that outlives its lifetime."""

from __future__ import annotations

import json
import re
import uuid

import pytest
import requests
from playwright.sync_api import Page, WebSocketRoute, expect

from tests.conftest import own_cluster
from tests.integration.conftest import API_KEY

from .conftest import Pages, join, register, say, sticky_keys, wait_connected, wait_for_number

pytestmark = pytest.mark.local_cluster


def room_name(label: str) -> str:
    return f"{label}-{uuid.uuid4().hex[:8]}"


def unread(page: Page, list_id: str, key: str):
    return page.locator(f'#{list_id} li[data-key="{key}"] .unread')


def open_view(page: Page, list_id: str, key: str) -> None:
    page.locator(f'#{list_id} li[data-key="{key}"] button').first.click()


def test_two_devices_of_one_person_see_the_same_unread_counts_and_conversations(pages, cluster):
    person = register(cluster.url, "p")
    busy, quiet = room_name("zz-busy"), room_name("aa-quiet")
    phone = pages.open("node-1", person)
    join(phone, busy)
    join(phone, quiet)  # the phone looks at the quiet room
    laptop = pages.open("node-2", person)  # the second device restores both rooms
    expect(laptop.locator("#rooms li")).to_have_count(2)
    expect(laptop.locator("#room-title")).to_have_text("#" + quiet)
    friend = pages.open("node-3")
    friend_name = friend.locator("#me").text_content()
    join(friend, busy)
    for n in range(3):
        say(friend, f"busy {n}")
    for n in range(2):
        friend.fill("#direct-to", person[0])
        friend.fill("#direct-text", f"psst {n}")
        friend.press("#direct-text", "Enter")
        expect(friend.locator("#messages li.message .text").last).to_have_text(f"psst {n}")
    for device in (phone, laptop):
        expect(unread(device, "rooms", "#" + busy)).to_have_text("3")
        expect(unread(device, "conversations", "@" + friend_name)).to_have_text("2")
        expect(unread(device, "rooms", "#" + quiet)).to_have_count(0)
    pages.screenshot(laptop, "unread")  # docs/chat-page.png
    open_view(laptop, "rooms", "#" + busy)  # read on the laptop ...
    expect(laptop.locator("#messages li.message .text")).to_have_text(
        [f"busy {n}" for n in range(3)])
    expect(unread(phone, "rooms", "#" + busy)).to_have_count(0)  # ... is read on the phone
    open_view(phone, "conversations", "@" + friend_name)
    expect(phone.locator("#messages li.message .text")).to_have_text(["psst 0", "psst 1"])
    expect(unread(laptop, "conversations", "@" + friend_name)).to_have_count(0)
    assert not pages.errors, pages.errors


def test_a_reload_restores_rooms_conversations_unread_and_the_open_view(pages, cluster):
    reader = pages.open("node-1")
    reader_name = reader.locator("#me").text_content()
    writer = pages.open("node-2")
    writer_name = writer.locator("#me").text_content()
    busy, quiet = room_name("busy"), room_name("quiet")
    for room in (busy, quiet):
        join(reader, room)
    join(writer, busy)
    open_view(reader, "rooms", "#" + quiet)
    say(writer, "while you were away")
    writer.fill("#direct-to", reader_name)
    writer.fill("#direct-text", "and a direct one")
    writer.press("#direct-text", "Enter")
    expect(unread(reader, "rooms", "#" + busy)).to_have_text("1")
    reader.reload()
    wait_connected(reader, "node-1")
    expect(reader.locator("#room-title")).to_have_text("#" + quiet)
    expect(reader.locator("#rooms li")).to_have_count(2)
    expect(unread(reader, "rooms", "#" + busy)).to_have_text("1")
    expect(unread(reader, "conversations", "@" + writer_name)).to_have_text("1")
    open_view(reader, "conversations", "@" + writer_name)
    expect(reader.locator("#messages li.message .text")).to_have_text(["and a direct one"])
    expect(reader.locator("#messages li.day")).to_have_text(["Today"])
    open_view(reader, "rooms", "#" + busy)
    expect(reader.locator("#messages li.message .text")).to_have_text(["while you were away"])
    expect(reader.locator("#presence li")).to_have_text(sorted([reader_name, writer_name]))
    assert not pages.errors, pages.errors


class LostAck:
    """Between a page and the front door: swallows the first acknowledgement of a send that
    succeeded, and the message itself on that connection, as a connection that loses them
    would; records what the page sent."""

    def __init__(self, marker: str):
        self.marker = marker
        self.sent: list[dict] = []
        self.dropped_ack: dict | None = None
        self.passed_acks: list[dict] = []
        self.pending_ack_id: str | None = None

    def route(self, ws: WebSocketRoute) -> None:
        server = ws.connect_to_server()
        ws.on_message(lambda frame: self.from_page(frame, server))
        server.on_message(lambda frame: self.from_server(frame, ws))

    def from_page(self, frame, server) -> None:
        if isinstance(frame, str) and frame.startswith("42") and self.marker in frame:
            number, body = re.match(r"42(\d*)(.*)", frame, re.S).groups()
            self.sent.append(json.loads(body)[1])
            self.pending_ack_id = number
        server.send(frame)

    def from_server(self, frame, ws) -> None:
        if isinstance(frame, str) and self.pending_ack_id and frame.startswith(
                "43" + self.pending_ack_id + "["):
            ack = json.loads(frame[2 + len(self.pending_ack_id):])[0]
            self.pending_ack_id = None
            if self.dropped_ack is None and ack.get("ok"):
                self.dropped_ack = ack
                return
            self.passed_acks.append(ack)
        if isinstance(frame, str) and self.marker in frame and self.passed_acks == []:
            return  # the live message, lost with the acknowledgement
        ws.send(frame)


def test_a_send_whose_ack_was_lost_is_retried_without_a_duplicate(pages, cluster):
    room = room_name("lost-ack")
    witness = pages.open("node-2")
    join(witness, room)
    sender = pages.open("node-1")
    text = "exactly once " + uuid.uuid4().hex[:6]
    trap = LostAck(text)
    sender.route_web_socket(re.compile(r"/socket\.io/"), trap.route)
    sender.reload()  # its next WebSocket goes through the trap
    wait_connected(sender, "node-1")
    expect(sender.locator("body")).to_have_attribute("data-transport", "websocket")
    join(sender, room)
    say(sender, text)
    expect(sender.locator("#messages li.pending .text")).to_have_text([text])
    expect(sender.locator("#messages li.message .text")).to_have_text([text], timeout=30_000)
    expect(sender.locator("#messages li.pending")).to_have_count(0)
    assert trap.dropped_ack is not None
    assert len(trap.sent) == 2, trap.sent  # sent again ...
    assert trap.sent[0]["client_id"] == trap.sent[1]["client_id"]  # ... as the same message
    assert trap.passed_acks[0]["id"] == trap.dropped_ack["id"]  # answered with the first id
    stored = requests.get(f"{cluster.url}/api/rooms/{room}/messages", timeout=10,
                          headers={"Authorization": f"Bearer {API_KEY}"}).json()["messages"]
    assert [m["text"] for m in stored] == [text]
    # a marker, stored and published after it: once the pages show it, they show everything
    # before it, so neither page got the message twice (tests/integration/conftest.py, Client)
    marker = requests.post(f"{cluster.url}/api/rooms/{room}/messages", json={"text": "marker"},
                           headers={"Authorization": f"Bearer {API_KEY}"}, timeout=10)
    assert marker.status_code == 202, marker.text
    for page in (witness, sender):
        expect(page.locator("#messages li.message .text")).to_have_text([text, "marker"])
    assert not pages.errors, pages.errors


def test_older_messages_load_when_scrolling_up_and_typing_shows(pages, cluster):
    room = room_name("long")
    for n in range(560):
        answer = requests.post(f"{cluster.url}/api/rooms/{room}/messages",
                               json={"text": f"old {n:03d}"}, timeout=10,
                               headers={"Authorization": f"Bearer {API_KEY}"})
        assert answer.status_code == 202, answer.text
    reader = pages.open("node-3")
    join(reader, room)
    texts = reader.locator("#messages li.message .text")
    expect(texts.last).to_have_text("old 559")
    expect(texts).to_have_count(500)  # the join's page of the newest
    for _ in range(10):
        if reader.locator("#messages li.start").count():
            break
        oldest_shown = texts.first.text_content()
        reader.locator("#messages").evaluate("list => { list.scrollTop = 0; }")
        expect(texts.first).not_to_have_text(oldest_shown, timeout=5_000)
    expect(reader.locator("#messages li.start")).to_have_count(1)
    assert texts.all_text_contents() == [f"old {n:03d}" for n in range(560)]
    typist = pages.open("node-1")
    typist_name = typist.locator("#me").text_content()
    join(typist, room)
    typist.locator("#send-text").press_sequentially("hello the")
    expect(reader.locator("#typing")).to_have_text(f"{typist_name} is typing…")
    typist.press("#send-text", "Enter")
    expect(reader.locator("#typing")).to_have_text("")
    expect(texts.last).to_have_text("hello the")
    assert not pages.errors, pages.errors


# ---- a page open longer than its token lives ----------------------------------------------------

SHORT_TOKEN_TTL_S = 6


@pytest.fixture(scope="module")
def short_token_cluster():
    with own_cluster("short-token-cluster", nodes=2, port=29080, redis_port=29379,
                     node_base_port=29001,
                     env={"TOKEN_TTL_S": str(SHORT_TOKEN_TTL_S)}) as instance:
        yield instance


def test_a_page_open_past_its_token_lifetime_stays_connected(browser, short_token_cluster,
                                                            request):
    base = short_token_cluster.url
    opened = Pages(browser, base, sticky_keys(base, ["node-1", "node-2"]), request.node.name)
    try:
        page = opened.open("node-1")
        other = opened.open("node-2")
        room = room_name("long-lived")
        for each in (page, other):
            join(each, room)
        sockets_before = len(opened.websockets[page])
        # three lifetimes of the first token: refreshed (at 3/4 of each) and never cut off
        body = page.locator("body")
        wait_for_number(lambda: body.get_attribute("data-refreshes"), 3, "token refreshes",
                        timeout_s=3 * SHORT_TOKEN_TTL_S + 5)
        wait_connected(page, "node-1")
        assert len(opened.websockets[page]) == sockets_before  # the same connection
        say(other, "still with us?")
        expect(page.locator("#messages li.message .text")).to_have_text(["still with us?"])
        say(page, "yes")
        expect(other.locator("#messages li.message .text").last).to_have_text("yes")
        assert not opened.errors, opened.errors
    finally:
        opened.close()
