"""Webhook events older than WEBHOOK_RETRY_S are dropped, counted and logged, never delivered
late: a cluster with WEBHOOK_RETRY_S=2 and a receiver that answers 500 for longer than that."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from cluster import Cluster

from tests.waiting import wait_for
from tests.webhook_cluster import joined, logs, metric, new_receiver, webhook_cluster
from tests.webhook_receiver import FAIL, OK, Receiver

pytestmark = pytest.mark.local_cluster  # its own cluster, with a receiver in this process


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    server = new_receiver()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def cluster(receiver: Receiver) -> Iterator[Cluster]:
    with webhook_cluster("webhook-drops", "single", receiver,
                         env={"WEBHOOK_RETRY_S": "2"}) as instance:
        yield instance


def test_events_older_than_the_retry_time_are_dropped_and_counted(users, receiver, cluster,
                                                                   room):
    a = joined(receiver, users, "node-1", room, "wx")
    dropped = metric(cluster, "rooms_webhook_dropped_total")
    receiver.mode = FAIL
    doomed = a.ok("send", {"room": room, "text": "doomed"})
    wait_for(lambda: metric(cluster, "rooms_webhook_dropped_total") > dropped, timeout=10,
             what="the message dropped after WEBHOOK_RETRY_S")
    receiver.mode = OK
    later = a.ok("send", {"room": room, "text": "later"})
    # a room's events arrive in stored order, so once the later message arrived without the
    # doomed one, the doomed one never will
    wait_for(lambda: f"m:{room}:{later['id']}" in receiver.delivered_ids(),
             what="the later message")
    assert f"m:{room}:{doomed['id']}" not in receiver.delivered_ids()
    assert f"of room {room}: older than WEBHOOK_RETRY_S" in logs(cluster)
