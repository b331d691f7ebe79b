"""The suite's Socket.IO client keeps the order of the wire (tests/in_order_client.py)."""

from tests.in_order_client import InOrderClient


def test_messages_reach_the_handlers_in_the_order_they_arrived():
    client = InOrderClient()
    seen = []
    client.eio.on("message", seen.append)
    for n in range(50):
        client.eio._trigger_event("message", n, run_async=True)
    assert seen == list(range(50))
