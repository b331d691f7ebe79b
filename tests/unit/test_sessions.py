"""Browser sessions: a log-out is final, whatever requests were in flight (service/sessions.py)."""

import pytest
import redis
from flask import Flask, session

from service.settings import RedisTarget
from service.store.store import Store
from service.web.sessions import StoreSessionInterface

COOKIE = "rooms_session"


@pytest.fixture
def store(redis_server):
    redis.Redis.from_url(redis_server.url).flushall()
    return Store(RedisTarget(url=redis_server.url), "node-a", history_max=100)


@pytest.fixture
def app(store):
    app = Flask(__name__)
    app.config.update(SECRET_KEY="test", SESSION_COOKIE_NAME=COOKIE)
    app.session_interface = StoreSessionInterface(app, store)

    @app.post("/login")
    def login():
        session["user"] = "alice"
        return "ok"

    @app.get("/me")
    def me():
        return session.get("user", "nobody")

    @app.post("/logout")
    def logout():
        store.sessions.end(session.sid)
        session.clear()
        return "bye"

    return app


def session_id(client) -> str:
    return client.get_cookie(COOKIE).value


def test_a_session_is_created_then_read_back(app, store):
    client = app.test_client()
    assert client.get("/me").text == "nobody"
    client.post("/login")
    assert client.get("/me").text == "alice"
    assert store.sessions.load(session_id(client)) is not None


def test_a_request_that_loaded_the_session_before_log_out_cannot_log_the_user_in_again(app, store):
    client = app.test_client()
    client.post("/login")
    sid = session_id(client)
    interface = app.session_interface
    # a second tab's request: it loads the session, then log-out happens before it answers
    with app.test_request_context("/me", headers={"Cookie": f"{COOKIE}={sid}"}) as context:
        in_flight = interface.open_session(app, context.request)
        assert in_flight["user"] == "alice"
        assert client.post("/logout").text == "bye"
        in_flight["seen"] = True  # modified, so Flask-Session would write it back
        interface.save_session(app, in_flight, app.response_class())
    assert store.sessions.load(sid) is None
    assert client.get("/me").text == "nobody"


def test_a_socket_registering_after_log_out_is_refused_and_one_before_is_returned(app, store):
    client = app.test_client()
    client.post("/login")
    sid = session_id(client)
    assert store.sessions.add_socket(sid, "socket-1")
    assert store.sessions.end(sid) == ["socket-1"]
    assert not store.sessions.add_socket(sid, "socket-2")
    assert store.sessions.end(sid) == []  # the refused socket left nothing behind


def test_an_unknown_cookie_gets_a_new_session_not_the_one_it_named(app, store):
    client = app.test_client()
    client.set_cookie(COOKIE, "forged-or-expired")
    client.post("/login")
    assert session_id(client) != "forged-or-expired"
    assert store.sessions.load("forged-or-expired") is None
    assert client.get("/me").text == "alice"


def test_a_session_that_cannot_be_kept_is_a_503_not_a_log_in(app, store, redis_server, caplog):
    app.config["NODE_NAME"] = "node-a"
    server = redis.Redis.from_url(redis_server.url)
    server.config_set("maxmemory", 1)  # Redis refuses writes: full
    try:
        answer = app.test_client().post("/login")
    finally:
        server.config_set("maxmemory", 0)
    assert answer.status_code == 503
    assert answer.json["error"]["code"] == "unavailable"
    assert "storage is full" in answer.json["error"]["message"]
    assert "Traceback" not in caplog.text
    assert "could not keep a browser session" in caplog.text
