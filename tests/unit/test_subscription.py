"""The queue subscription's own reader against a real redis-server."""

import threading
import time

import pytest
import redis

from service.bus.subscription import Subscription

CHANNEL = "queue-under-test"


@pytest.fixture
def client(redis_server):
    # a short read timeout, so a reader that inherited it would fail within the test
    return redis.Redis.from_url(redis_server.url, client_name="node-x:queue", socket_timeout=1)


def publish_later(url: str, delay_s: float, *messages: tuple[str, str]) -> threading.Thread:
    def publish() -> None:
        time.sleep(delay_s)
        publisher = redis.Redis.from_url(url)
        for channel, data in messages:
            publisher.publish(channel, data)

    thread = threading.Thread(target=publish)
    thread.start()
    return thread


def test_payloads_of_its_channel_arrive_in_order_under_the_client_name(client, redis_server):
    subscription = Subscription(client, CHANNEL)
    try:
        names = [c["name"] for c in client.client_list(_type="pubsub")]
        assert names.count("node-x:queue") == 1
        publish_later(redis_server.url, 0, (CHANNEL, "one"), ("another-channel", "not mine"),
                      (CHANNEL, '{"two": 2}')).join()
        payloads = subscription.payloads()
        assert [next(payloads), next(payloads)] == [b"one", b'{"two": 2}']
    finally:
        subscription.close()


def test_a_quiet_channel_outlasting_the_read_timeout_is_not_a_failure(client, redis_server):
    subscription = Subscription(client, CHANNEL)
    try:
        publisher = publish_later(redis_server.url, 2.5, (CHANNEL, "after the quiet"))
        assert next(subscription.payloads()) == b"after the quiet"
        publisher.join()
    finally:
        subscription.close()


def test_a_killed_connection_ends_the_payloads_with_an_error(client, redis_server):
    subscription = Subscription(client, CHANNEL)
    payloads = subscription.payloads()
    killer = threading.Timer(0.3, lambda: redis.Redis.from_url(redis_server.url).client_kill_filter(
        _type="pubsub"))
    killer.start()
    with pytest.raises(ConnectionError):
        next(payloads)
    killer.join()
    subscription.close()
