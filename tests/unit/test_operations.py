"""/metrics and /admin in-process (Flask's and Flask-SocketIO's test clients) against a real
redis-server: what they count, and who may read them."""

from __future__ import annotations

import re

import pytest
import redis

from service import create_app, socketio
from service.node.node_metrics import NAMES
from service.realtime.metrics import Metrics
from service.settings import load_settings

API_KEY = "operations-test-api-key"
FRONT_DOOR = {"X-Rooms-Front-Door": "1"}


@pytest.fixture
def app(redis_server):
    redis.Redis.from_url(redis_server.url).flushall()
    settings = load_settings({"REDIS_URL": redis_server.url, "ASYNC_MODE": "threading",
                              "NODE_NAME": "node-m", "DOTENV_PATH": "/nonexistent",
                              "API_KEY": API_KEY, "OPERATORS": "olga",
                              "RATE_LIMIT_PER_S": "0.1", "RATE_LIMIT_BURST": "8"})
    app = create_app(settings, background=False)
    yield app
    app.extensions["node"].bus.close()


def scrape(app, headers=None) -> str:
    response = app.test_client().get("/metrics", headers=headers or {})
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.content_type.startswith("text/plain; version=0.0.4")
    return response.get_data(as_text=True)


def value(text: str, series: str) -> float:
    match = re.search(rf"^{re.escape(series)} (\S+)$", text, re.MULTILINE)
    assert match, f"{series} is not in /metrics"
    return float(match.group(1))


def test_every_documented_metric_is_exported(app):
    app.extensions["node"].health.probe_once()  # the per-master gauges need one probe
    text = scrape(app)
    for name in NAMES:
        assert re.search(rf"^{name}(_bucket|_count|_sum)?[{{ ]", text, re.MULTILINE), name
    assert "_created" not in text
    assert value(text, 'rooms_node_info{async_mode="threading",node="node-m"}') == 1
    assert value(text, "rooms_redis_up") == 1


def test_messages_errors_and_rate_limits_are_counted(app):
    token = app.extensions["node"].signer.issue("alice")
    client = socketio.test_client(app, auth={"token": token})
    assert client.emit("join", {"room": "lobby"}, callback=True)["ok"]
    for n in range(3):
        assert client.emit("send", {"room": "lobby", "text": f"m{n}"}, callback=True)["ok"]
    assert client.emit("send", {"room": "elsewhere", "text": "x"}, callback=True)[
        "error"]["code"] == "forbidden"
    assert client.emit("send", {"room": "lobby"}, callback=True)["error"]["code"] == \
        "bad_request"
    answers = [client.emit("presence", {"room": "lobby"}, callback=True) for _ in range(6)]
    limited = sum(1 for a in answers if not a["ok"] and a["error"]["code"] == "rate_limited")
    assert limited >= 1
    text = scrape(app)
    assert value(text, 'rooms_messages_accepted_total{kind="room"}') == 3
    assert value(text, 'rooms_errors_total{code="forbidden"}') == 1
    assert value(text, 'rooms_errors_total{code="bad_request"}') == 1
    assert value(text, 'rooms_errors_total{code="rate_limited"}') == limited
    assert value(text, "rooms_rate_limited_total") == limited
    assert value(text, "rooms_publish_seconds_count") == 3
    assert value(text, 'rooms_connections{transport="polling"}') + value(
        text, 'rooms_connections{transport="websocket"}') >= 0
    client.disconnect()


def test_an_api_publish_is_counted_as_api(app):
    response = app.test_client().post("/api/rooms/lobby/messages", json={"text": "hi"},
                                      headers={"Authorization": f"Bearer {API_KEY}"})
    assert response.status_code == 202
    assert value(scrape(app), 'rooms_messages_accepted_total{kind="api"}') == 1


@pytest.mark.parametrize("authorization", [None, "Bearer wrong-key", "Basic " + API_KEY,
                                           "Bearer "])
def test_through_the_front_door_metrics_need_the_api_key(app, authorization):
    headers = dict(FRONT_DOOR)
    if authorization:
        headers["Authorization"] = authorization
    response = app.test_client().get("/metrics", headers=headers)
    assert response.status_code == 401
    assert response.get_json()["error"]["code"] == "unauthorized"
    assert API_KEY not in response.get_data(as_text=True)


def test_a_users_token_is_not_the_api_key(app):
    token = app.extensions["node"].signer.issue("alice")
    response = app.test_client().get("/metrics", headers={
        **FRONT_DOOR, "Authorization": f"Bearer {token}"})
    assert response.status_code == 401


def test_through_the_front_door_with_the_api_key_and_on_the_nodes_own_address(app):
    assert "rooms_bus_up" in scrape(app, {**FRONT_DOOR, "Authorization": f"Bearer {API_KEY}"})
    assert "rooms_bus_up" in scrape(app)


def log_in(client, username: str) -> None:
    """Register `username` through the page's form; the client keeps the session."""
    page = client.get("/").get_data(as_text=True)
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    response = client.post("/register", data={"username": username, "password": username * 3,
                                              "csrf_token": csrf})
    assert response.status_code == 302


def test_the_cluster_page_is_for_operators_only(app):
    anonymous = app.test_client()
    response = anonymous.get("/admin")
    assert response.status_code == 403
    assert "operators" in response.get_data(as_text=True)
    response = anonymous.get("/admin/cluster.json")
    assert response.status_code == 403
    assert response.get_json()["error"]["code"] == "forbidden"

    someone = app.test_client()
    log_in(someone, "sam")
    assert someone.get("/admin").status_code == 403
    assert someone.get("/admin/cluster.json").status_code == 403

    operator = app.test_client()
    log_in(operator, "olga")
    page = operator.get("/admin")
    assert page.status_code == 200
    assert page.headers["Cache-Control"] == "no-store"
    html = page.get_data(as_text=True)
    assert "admin.js" in html and "http://" not in html and "https://" not in html


def test_the_cluster_data_lists_live_nodes_with_their_figures_and_redis(app):
    node = app.extensions["node"]
    node.heartbeat.beat()
    operator = app.test_client()
    log_in(operator, "olga")
    data = operator.get("/admin/cluster.json").get_json()
    (entry,) = data["nodes"]
    assert entry["node"] == "node-m"
    for field in ("connections", "websocket", "polling", "rooms", "accepted_per_s",
                  "delivered_per_s", "delivery_p99_ms", "canary_lag_ms", "canary_silent_s",
                  "canary_deaf", "bus_up", "draining", "beat", "webhooks"):
        assert field in entry, field
    (server,) = data["redis"]
    assert server["up"] is True and server["role"] == "master"
    assert API_KEY not in str(data) and "password" not in str(data).lower()


def test_the_delivery_p99_covers_the_deliveries_since_it_was_last_read():
    metrics = Metrics()
    assert metrics.delivery_p99_s() is None
    for _ in range(99):
        metrics.delivery_seconds.observe(0.003)
    metrics.delivery_seconds.observe(0.8)
    assert 0.0025 < metrics.delivery_p99_s() <= 0.005
    for _ in range(10):
        metrics.delivery_seconds.observe(2)
    assert 1.0 < metrics.delivery_p99_s() <= 2.5
    assert metrics.delivery_p99_s() is None


def test_the_rates_cover_what_was_counted_since_they_were_last_read():
    metrics = Metrics()
    assert metrics.rates() == (0.0, 0.0)
    metrics.accepted.labels("room").inc(3)
    metrics.delivered_frame(None, 12)
    accepted_per_s, delivered_per_s = metrics.rates()
    assert accepted_per_s > 0 and delivered_per_s == pytest.approx(4 * accepted_per_s)
    assert metrics.rates() == (0.0, 0.0)


def test_a_node_with_webhooks_shows_them_in_its_figures_and_metrics_without_secrets(
        redis_server):
    redis.Redis.from_url(redis_server.url).flushall()
    settings = load_settings({"REDIS_URL": redis_server.url, "ASYNC_MODE": "threading",
                              "NODE_NAME": "node-w", "DOTENV_PATH": "/nonexistent",
                              "API_KEY": API_KEY, "OPERATORS": "olga",
                              "WEBHOOK_URL": "http://127.0.0.1:9/hook?key=url-secret",
                              "HOOK_SECRET": "the-hook-secret-itself"})
    app = create_app(settings, background=False)
    try:
        node = app.extensions["node"]
        node.heartbeat.beat()
        operator = app.test_client()
        log_in(operator, "olga")
        (entry,) = operator.get("/admin/cluster.json").get_json()["nodes"]
        assert set(entry["webhooks"]) == {"delivered", "failed", "batches", "retries",
                                          "dropped", "pending", "oldest_pending_s"}
        page = operator.get("/admin").get_data(as_text=True)
        assert 'id="webhooks"' in page
        text = scrape(app)
        assert value(text, 'rooms_webhook_batches_total{outcome="delivered"}') == 0
        for secret in ("url-secret", "the-hook-secret-itself", "127.0.0.1:9"):
            assert secret not in text and secret not in str(entry)
    finally:
        app.extensions["node"].bus.close()
