"""ASYNC_MODE=eventlet, served by eventlet's own server: the same contract across two nodes."""

import pytest

from tests.conftest import own_cluster

from .conftest import Users

pytestmark = pytest.mark.local_cluster


@pytest.fixture(scope="module")
def eventlet_cluster():
    with own_cluster("eventlet-cluster", nodes=2, port=23080, redis_port=23379,
                     node_base_port=23001, node_command="eventlet") as instance:
        yield instance


def test_eventlet_nodes_deliver_across_the_cluster(eventlet_cluster):
    pool = Users(eventlet_cluster)
    try:
        _, first = pool.user_on("node-1")
        second_name, second = pool.user_on("node-2")
        for client in (first, second):
            client.ok("join", {"room": "evt"})
        sent = first.ok("send", {"room": "evt", "text": "from eventlet"})
        for client in (first, second):
            [message] = client.take("message", 1)
            assert (message["id"], message["node"]) == (sent["id"], "node-1")
        first.ok("direct", {"to": second_name, "text": "psst"})
        assert second.take("direct", 1)[0]["text"] == "psst"
        assert "async_mode=eventlet" in (eventlet_cluster.log_dir / "node-1.log").read_text()
    finally:
        pool.close()
