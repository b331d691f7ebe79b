"""Against the compose cluster: a node container restarts and its clients carry on."""

import os
import subprocess

import pytest

from tests.waiting import wait_for

from .room_traffic import Member, Pump, Sender, wait_until_received

COMMAND = os.environ.get("RESTART_NODE_COMMAND")  # {node}: a node's name, its container's host name
pytestmark = pytest.mark.skipif(not COMMAND, reason="set RESTART_NODE_COMMAND (make compose-test)")


def test_clients_carry_on_when_a_node_container_restarts(users, room, nodes):
    writer_node, restarted = nodes[0], nodes[1]
    _, writer = users.user_on(writer_node)
    writer.ok("join", {"room": room})
    _, token = users.register()
    reader = Member(users.connect(token, restarted, reconnection=True), room)
    sender, pump = Sender(writer, room, per_second=20), Pump()
    pump.add(reader)
    sender.start()
    pump.start()
    try:
        sender.wait_for_more(5)
        subprocess.run(COMMAND.format(node=restarted), shell=True, check=True, timeout=60)  # noqa: S602
        wait_for(lambda: reader.reconnects > 0 and not reader.rejoin_pending, 30,
                 "the reader to come back, to whichever node is up")
        sender.wait_for_more(10)
    finally:
        sender.stop()
        pump.stop()
    wait_until_received([reader], sender.acked)
    assert sender.acked and writer.sio.connected
