"""Unit tests that need Redis get a real redis-server of their own (tests/redis_server.py)."""

import pytest
import redis

from service.settings import RedisTarget
from service.store.store import Store
from tests.redis_server import RedisServer


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory):
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def redis_cluster(tmp_path_factory):
    from tests.redis_server import RedisClusterServers

    servers = RedisClusterServers(tmp_path_factory.mktemp("redis-cluster"))
    yield servers
    servers.stop()


@pytest.fixture
def client(redis_server):
    """A client of the module's redis-server, emptied for the test."""
    client = redis.Redis.from_url(redis_server.url, decode_responses=True)
    client.flushall()
    return client


@pytest.fixture
def store(client, redis_server):
    store = Store(RedisTarget(url=redis_server.url), "node-a", history_max=1000)
    yield store
    store.close()
