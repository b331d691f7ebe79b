"""The shared, pipelined Redis connection against a real redis-server."""

import threading
import time

import pytest
import redis

from service.store.pipeline import Pipeline


def connector(client):
    """A factory of raw connections with the client's settings (what store/topology.py gives)."""
    pool = client.connection_pool

    def connect():
        connection = pool.connection_class(**{**pool.connection_kwargs, "protocol": 2})
        connection.connect()
        return connection

    return connect


@pytest.fixture
def client(redis_server):
    return redis.Redis.from_url(redis_server.url, client_name="node-p:store")


def test_concurrent_callers_each_get_the_reply_to_their_own_command(client):
    pipeline = Pipeline(connector(client), timeout_s=5)
    wrong: list[tuple[str, str]] = []

    def caller(name: str) -> None:
        for index in range(200):
            expected = f"{name}-{index}"
            reply = pipeline.execute("ECHO", expected)
            if reply != expected:
                wrong.append((expected, reply))

    threads = [threading.Thread(target=caller, args=(f"t{n}",)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert wrong == []
    pipelines = [c for c in client.client_list()
                 if c["name"] == "node-p:store" and c["cmd"] != "client|list"]
    assert len(pipelines) == 1  # one shared connection, not one per caller


def test_replies_keep_their_types_and_errors_raise_without_breaking_the_connection(client):
    pipeline = Pipeline(connector(client), timeout_s=5)
    assert pipeline.execute("SET", "k", "é") == "OK"
    assert pipeline.execute("GET", "k") == "é"
    assert pipeline.execute("INCR", "n") == 1
    assert pipeline.execute("GET", "missing") is None
    assert pipeline.execute("EVAL", "return {1, 'two', false}", 0) == [1, "two", None]
    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
        pipeline.execute("LPUSH", "k", "x")
    assert pipeline.execute("ECHO", "still usable") == "still usable"


def test_a_killed_connection_fails_its_waiting_calls_and_the_next_call_reconnects(client):
    pipeline = Pipeline(connector(client), timeout_s=10)
    connection_id = pipeline.execute("CLIENT", "ID")
    failures: list[BaseException] = []

    def blocked_call() -> None:
        try:
            pipeline.execute("BLPOP", "never-filled", 8)
        except redis.RedisError as exc:
            failures.append(exc)

    waiting = threading.Thread(target=blocked_call)
    started = time.monotonic()
    waiting.start()
    time.sleep(0.3)
    client.client_kill_filter(_id=connection_id)
    waiting.join()
    assert isinstance(failures[0], redis.ConnectionError)
    assert time.monotonic() - started < 5
    assert pipeline.execute("ECHO", "again") == "again"
    assert pipeline.execute("CLIENT", "ID") != connection_id


def test_a_late_reply_times_out_and_the_next_call_uses_a_fresh_connection(client):
    pipeline = Pipeline(connector(client), timeout_s=0.5)
    connection_id = pipeline.execute("CLIENT", "ID")
    started = time.monotonic()
    with pytest.raises(redis.TimeoutError):
        pipeline.execute("BLPOP", "never-filled", 3)
    assert time.monotonic() - started < 2
    assert pipeline.execute("ECHO", "on time") == "on time"
    assert pipeline.execute("CLIENT", "ID") != connection_id


def test_no_redis_is_a_connection_error():
    pipeline = Pipeline(connector(redis.Redis(port=1, socket_connect_timeout=1)), timeout_s=1)
    with pytest.raises(redis.ConnectionError):
        pipeline.execute("PING")


def test_commands_given_together_are_written_back_to_back_each_with_its_reply(client):
    """`execute_all`: nothing of another task comes between them (ASKING, WAIT)."""
    pipeline = Pipeline(connector(client), timeout_s=5)
    replies = pipeline.execute_all([("SET", "k", "v"), ("INCR", "k"), ("GET", "k")])
    assert replies[0] == "OK"
    assert isinstance(replies[1], redis.ResponseError)
    assert replies[2] == "v"
