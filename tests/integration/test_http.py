"""HTTP through the front door: accounts, health, the publish and read API, the page's log-in."""

import contextlib
import re
import uuid

import pytest
import requests
import socketio

from tests.waiting import wait_for

from .conftest import API_KEY, TEST_ENV, Client


def post(cluster, path, body, **kwargs):
    return requests.post(cluster.url + path, json=body, timeout=10, **kwargs)


def assert_error(response, status, code):
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"]["code"] == code and body["error"]["message"]


def test_register_and_token_follow_the_contract(cluster, users):
    name, _ = users.register()
    assert_error(post(cluster, "/api/register", {"username": name, "password": "x" * 10}), 409,
                 "conflict")
    assert_error(post(cluster, "/api/register", {"username": "api", "password": "x" * 10}), 409,
                 "conflict")
    for bad in ({"username": "ab", "password": "x" * 10}, {"username": "ok_name"},
                {"username": "bad name", "password": "x" * 10},
                {"username": "okname", "password": "short"}, ["not", "an", "object"]):
        assert_error(post(cluster, "/api/register", bad), 400, "bad_request")
    garbage = requests.post(cluster.url + "/api/register", data=b"{not json",
                            headers={"Content-Type": "application/json"}, timeout=10)
    assert_error(garbage, 400, "bad_request")
    assert_error(post(cluster, "/api/token", {"username": name, "password": "wrong-password"}),
                 401, "unauthorized")
    assert_error(post(cluster, "/api/token", {"username": "nobody-here", "password": "x" * 10}),
                 401, "unauthorized")


@pytest.mark.redis_cluster
@pytest.mark.local_cluster
def test_health_and_readiness_on_every_node(cluster):
    for index in cluster.indexes():
        assert requests.get(cluster.node_url(index) + "/healthz", timeout=5).status_code == 200
        ready = requests.get(cluster.node_url(index) + "/readyz", timeout=5)
        assert ready.status_code == 200 and ready.json()["ready"] is True


@pytest.mark.redis_cluster
def test_readiness_through_the_front_door(cluster):
    ready = requests.get(cluster.url + "/readyz", timeout=5)
    assert ready.status_code == 200 and ready.json()["ready"] is True


def test_publish_api_needs_the_api_key_and_validates(cluster, users, room):
    _, token = users.register()
    url = f"{cluster.url}/api/rooms/{room}/messages"
    assert_error(requests.post(url, json={"text": "x"}, timeout=5), 401, "unauthorized")
    assert_error(requests.post(url, json={"text": "x"}, timeout=5,
                               headers={"Authorization": "Bearer wrong"}), 401, "unauthorized")
    assert_error(requests.post(url, json={"text": "x"}, timeout=5,
                               headers={"Authorization": f"Bearer {token}"}), 403, "forbidden")
    key = {"Authorization": f"Bearer {API_KEY}"}
    assert_error(requests.post(url, json={"text": ""}, headers=key, timeout=5), 400, "bad_request")
    assert_error(requests.post(url, json={"text": "x" * 4001}, headers=key, timeout=5), 413,
                 "too_large")
    assert_error(requests.post(f"{cluster.url}/api/rooms/bad%20room/messages", json={"text": "x"},
                               headers=key, timeout=5), 400, "bad_request")
    ids = [requests.post(url, json={"text": f"m{i}"}, headers=key, timeout=5).json()["id"]
           for i in range(5)]

    for auth in (key, {"Authorization": f"Bearer {token}"}):
        page = requests.get(url, params={"after": ids[1], "limit": 2}, headers=auth, timeout=5)
        assert page.status_code == 200
        assert page.json() == {"room": room, "messages": [
            {"id": i, "room": room, "user": "api", "text": f"m{n}", "ts": int(i.split("-")[0]),
             "node": page.json()["messages"][n - 2]["node"]}
            for n, i in ((2, ids[2]), (3, ids[3]))]}
    latest = requests.get(url, headers=key, timeout=5).json()["messages"]
    assert [m["id"] for m in latest] == ids
    assert_error(requests.get(url, timeout=5), 401, "unauthorized")
    assert_error(requests.get(url, params={"after": "x"}, headers=key, timeout=5), 400,
                 "bad_request")


@pytest.mark.redis_cluster
def test_cluster_lists_live_nodes_with_connection_counts(cluster, users, nodes):
    users.user_on(nodes[1])

    def listed() -> dict[str, dict]:
        answer = requests.get(cluster.url + "/api/cluster", timeout=5,
                              headers={"Authorization": f"Bearer {API_KEY}"})
        assert answer.status_code == 200
        return {n["node"]: n for n in answer.json()["nodes"]}

    wait_for(lambda: listed().get(nodes[1], {}).get("connections", 0) >= 1, 10,
             f"a heartbeat to carry {nodes[1]}'s connection count")
    listing = listed()
    assert sorted(listing) == nodes
    assert all(n["started"] > 0 for n in listing.values())
    assert_error(requests.get(cluster.url + "/api/cluster", timeout=5), 401, "unauthorized")


def test_unknown_api_paths_answer_json(cluster):
    assert_error(requests.get(cluster.url + "/api/nothing-here", timeout=5), 404, "not_found")


def csrf_of(html: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def assert_all_disconnected(sockets: list[Client]) -> None:
    wait_for(lambda: not any(s.sio.connected for s in sockets), 10,
             "the log-out to end every connection")


def connect_refusal(base: str, **credentials) -> str:
    """Why a Socket.IO connection with these credentials (auth, headers) is refused."""
    client = socketio.Client(reconnection=False)
    reasons = []
    client.on("connect_error", reasons.append)
    with contextlib.suppress(socketio.exceptions.ConnectionError):
        client.connect(base, transports=["websocket"], wait_timeout=5, **credentials)
    assert not client.connected and reasons
    return reasons[0]["message"]


def test_browser_login_session_works_on_every_node_and_logout_ends_the_connection(cluster, users):
    name, _ = users.register()
    password = "correct-horse-" + name
    browser = requests.Session()
    page = browser.get(cluster.url + "/", timeout=5)
    assert page.status_code == 200 and "Log in" in page.text
    assert "Content-Security-Policy" in page.headers
    refused = browser.post(cluster.url + "/login", timeout=5,
                           data={"username": name, "password": password, "csrf_token": "forged"})
    assert refused.status_code == 403
    logged_in = browser.post(cluster.url + "/login", timeout=5, data={
        "username": name, "password": password, "csrf_token": csrf_of(page.text)})
    assert logged_in.status_code == 200 and f'data-user="{name}"' in logged_in.text
    cookie = browser.cookies.get("rooms_session")
    set_cookie = logged_in.history[0].headers["Set-Cookie"]
    assert "HttpOnly" in set_cookie and "SameSite=Lax" in set_cookie

    sockets = [Client(cluster.url, None, None, auth=None,
                      headers={"Cookie": f"rooms_session={cookie}; node_key=web-{i}"})
               for i in range(6)]
    assert {s.welcome["user"] for s in sockets} == {name}
    assert len({s.node for s in sockets}) >= 2  # the Redis session is valid on every node

    browser.post(cluster.url + "/logout", timeout=5,
                 data={"csrf_token": csrf_of(logged_in.text)})
    assert_all_disconnected(sockets)
    assert "no credentials" in connect_refusal(
        cluster.url, headers={"Cookie": f"rooms_session={cookie}"})


def test_user_text_is_never_rendered_as_html_by_the_server(cluster):
    page = requests.get(cluster.url + "/", timeout=5).text
    assert "socket.io.min.js" not in page  # the client loads only for a logged-in user
    script = requests.get(cluster.url + "/static/app.js", timeout=5).text
    assert "innerHTML" not in script and "textContent" in script
    vendor = requests.get(cluster.url + "/static/vendor/socket.io.min.js", timeout=5)
    assert vendor.status_code == 200 and len(vendor.content) > 10_000


def test_the_register_form_creates_the_account_and_logs_in(cluster):
    browser = requests.Session()
    page = browser.get(cluster.url + "/", timeout=5)
    name = f"form{uuid.uuid4().hex[:10]}"
    registered = browser.post(cluster.url + "/register", timeout=10, data={
        "username": name, "password": "form-password-1", "csrf_token": csrf_of(page.text)})
    assert registered.status_code == 200 and f'data-user="{name}"' in registered.text
    again = requests.Session()
    page = again.get(cluster.url + "/", timeout=5)
    taken = again.post(cluster.url + "/register", timeout=10, data={
        "username": name, "password": "form-password-1", "csrf_token": csrf_of(page.text)})
    assert "is taken" in taken.text and 'data-user="' not in taken.text
    token = post(cluster, "/api/token", {"username": name, "password": "form-password-1"})
    assert token.status_code == 200


def test_the_page_token_needs_the_session_and_its_csrf_and_ends_with_the_log_out(cluster, users):
    name, _ = users.register()
    browser = requests.Session()
    url = cluster.url + "/api/session/token"
    assert_error(browser.post(url, timeout=5), 401, "unauthorized")
    page = browser.get(cluster.url + "/", timeout=5)
    logged_in = browser.post(cluster.url + "/login", timeout=5, data={
        "username": name, "password": "correct-horse-" + name, "csrf_token": csrf_of(page.text)})
    csrf = csrf_of(logged_in.text)
    assert_error(browser.post(url, timeout=5), 403, "forbidden")  # a cross-site request
    assert_error(browser.post(url, headers={"X-CSRF-Token": "forged"}, timeout=5), 403,
                 "forbidden")
    answer = browser.post(url, headers={"X-CSRF-Token": csrf}, timeout=5)
    assert answer.status_code == 200, answer.text
    assert answer.json()["expires_in"] == int(TEST_ENV.get("TOKEN_TTL_S", 12 * 3600))
    token = answer.json()["token"]
    assert browser.cookies["rooms_session"] not in token  # the HttpOnly cookie stays hidden
    assert "browser session" in connect_refusal(cluster.url, auth={"token": token})  # no cookie
    other = requests.Session()
    other.post(cluster.url + "/login", timeout=5, data={
        "username": name, "password": "correct-horse-" + name,
        "csrf_token": csrf_of(other.get(cluster.url + "/", timeout=5).text)})
    assert "browser session" in connect_refusal(  # the same user's other session
        cluster.url, auth={"token": token},
        headers={"Cookie": f"rooms_session={other.cookies['rooms_session']}"})
    assert_error(requests.get(f"{cluster.url}/api/rooms/lobby/messages", timeout=5,
                              headers={"Authorization": f"Bearer {token}"}), 401, "unauthorized")
    cookie = {"Cookie": f"rooms_session={browser.cookies['rooms_session']}"}
    sockets = [Client(cluster.url, token, f"page-{i}", headers=cookie) for i in range(4)]
    assert {s.welcome["user"] for s in sockets} == {name}
    browser.post(cluster.url + "/logout", timeout=5, data={"csrf_token": csrf})
    assert_all_disconnected(sockets)
    assert "logged out" in connect_refusal(cluster.url, auth={"token": token}, headers=cookie)
