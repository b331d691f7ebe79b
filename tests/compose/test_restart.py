"""Against the compose cluster: a node container restarts and its clients carry on."""

import os
import subprocess
import threading
import time

import pytest

from tests.integration.conftest import Client

COMMAND = os.environ.get("RESTART_NODE_COMMAND")
pytestmark = pytest.mark.skipif(not COMMAND, reason="set RESTART_NODE_COMMAND (make compose-test)")


def test_clients_carry_on_when_a_node_container_restarts(users, room):
    _, writer = users.user_on("node-1")
    _, token = users.register()
    reader = None
    for attempt in range(60):
        candidate = Client(users.base, token, f"restart-{attempt}", reconnection=True)
        if candidate.node == "node-2":
            reader = candidate
            break
        candidate.close()
    assert reader is not None
    users.clients.append(reader)
    writer.ok("join", {"room": room})
    reader.ok("join", {"room": room})
    acked = [writer.ok("send", {"room": room, "text": "before"})["id"]]
    last_seen = reader.take("message", 1)[0]["id"]

    stop = threading.Event()

    def keep_sending():
        while not stop.is_set() and len(acked) < 200:
            answer = writer.call("send", {"room": room, "text": f"m{len(acked)}"})
            if answer.get("ok"):
                acked.append(answer["id"])
            time.sleep(0.05)

    sender = threading.Thread(target=keep_sending)
    sender.start()
    try:
        subprocess.run(COMMAND.format(node="node-2"), shell=True, check=True, timeout=60)  # noqa: S602
        reader.events["welcome"].get(timeout=30)  # reconnected, to whichever node is up
        time.sleep(1)
    finally:
        stop.set()
        sender.join(30)
    live_before_resume = [m["id"] for m in reader.drain("message", settle=0)]
    answer = reader.ok("join", {"room": room, "since": last_seen})
    time.sleep(0.5)
    seen = live_before_resume + [m["id"] for m in answer["missed"]] + [
        m["id"] for m in reader.drain("message")]
    assert sorted(set(seen)) == sorted(acked[1:]), "messages were lost across the restart"
    assert writer.sio.connected
