"""Unit tests that need Redis get a real redis-server of their own (tests/redis_server.py)."""

import pytest

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
