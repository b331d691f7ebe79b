"""A node for an app that brings every user (OWN_ACCOUNTS=false, APP_JWT_SECRET), in-process
(Flask's and Flask-SocketIO's test clients) against a real redis-server: the service's own
registration, tokens and log-in page answer 404 (JSON under /api/), the HTTP API takes the API
key and no token of the service's own, and app JWTs connect and talk to each other."""

from __future__ import annotations

import pytest
import redis

from service import create_app, socketio
from service.settings import load_settings
from tests.app_jwts import SECRET, claims, sign

API_KEY = "own-accounts-test-api-key"


def make_app(redis_server, **env: str):
    redis.Redis.from_url(redis_server.url).flushall()
    settings = load_settings({"REDIS_URL": redis_server.url, "ASYNC_MODE": "threading",
                              "NODE_NAME": "node-o", "DOTENV_PATH": "/nonexistent",
                              "API_KEY": API_KEY, "APP_JWT_SECRET": SECRET, **env})
    return create_app(settings, background=False)


@pytest.fixture
def closed(redis_server):
    app = make_app(redis_server, OWN_ACCOUNTS="false")
    yield app
    app.extensions["node"].bus.close()


@pytest.fixture
def open_app(redis_server):
    app = make_app(redis_server)
    yield app
    app.extensions["node"].bus.close()


ACCOUNT = {"username": "alice", "password": "correct-horse-alice"}
JSON_ROUTES = [("post", "/api/register"), ("post", "/api/token"),
               ("post", "/api/session/token")]
PAGE_ROUTES = [("get", "/"), ("post", "/login"), ("post", "/register"), ("post", "/logout")]


@pytest.mark.parametrize(("method", "path"), JSON_ROUTES)
def test_the_own_accounts_json_endpoints_answer_a_json_404(closed, method, path):
    response = getattr(closed.test_client(), method)(path, json=ACCOUNT)
    assert response.status_code == 404
    error = response.get_json()["error"]
    assert error["code"] == "not_found" and "OWN_ACCOUNTS=false" in error["message"]


@pytest.mark.parametrize(("method", "path"), PAGE_ROUTES)
def test_the_log_in_page_and_its_forms_answer_404(closed, method, path):
    response = getattr(closed.test_client(), method)(path, data=ACCOUNT)
    assert response.status_code == 404


def test_with_own_accounts_the_same_routes_are_there(open_app):
    client = open_app.test_client()
    assert client.post("/api/register", json=ACCOUNT).status_code == 201
    assert client.post("/api/token", json=ACCOUNT).status_code == 200
    assert client.get("/").status_code == 200


def test_the_http_api_takes_the_api_key_and_no_own_token(closed):
    client = closed.test_client()
    published = client.post("/api/rooms/lobby/messages", json={"text": "from the app"},
                            headers={"Authorization": f"Bearer {API_KEY}"})
    assert published.status_code == 202
    own = closed.extensions["node"].signer.issue("alice")
    refused = client.get("/api/rooms/lobby/messages", headers={"Authorization": f"Bearer {own}"})
    assert refused.status_code == 401
    assert "OWN_ACCOUNTS=false" in refused.get_json()["error"]["message"]
    assert client.get("/healthz").status_code == 200


def test_app_jwts_connect_and_talk_and_own_tokens_are_refused(closed):
    ann = socketio.test_client(closed, auth={"token": sign(SECRET, "HS256", claims("app:ann"))})
    ben = socketio.test_client(closed, auth={"token": sign(SECRET, "HS256", claims("app:ben"))})
    assert ann.is_connected() and ben.is_connected()
    sent = ann.emit("direct", {"to": "app:ben", "text": "hi"}, callback=True)
    assert sent["ok"], sent
    inbox = ben.emit("inbox", {}, callback=True)["messages"]  # no bus here: stored is enough
    assert [(d["id"], d["from"]) for d in inbox] == [(sent["id"], "app:ann")]
    own = socketio.test_client(closed, auth={
        "token": closed.extensions["node"].signer.issue("alice")})
    assert not own.is_connected()
    for client in (ann, ben):
        client.disconnect()
