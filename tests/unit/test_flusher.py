"""The end-of-turn flusher: one callback per turn of the loop, one flush per connection."""

import gevent

from service.transport.flusher import Flusher


def end_this_turn():
    gevent.sleep(0)  # not a wait: yields once, and the loop runs its callbacks


class Connection:
    def __init__(self, log, name, fails=False):
        self.log, self.name, self.fails = log, name, fails

    def flush(self):
        self.log.append(self.name)
        if self.fails:
            raise RuntimeError("broken")


def test_connections_marked_in_one_turn_are_flushed_once_each_in_order():
    flushed = []
    flusher = Flusher()
    for name in ("a", "b", "c"):
        flusher.mark(Connection(flushed, name))
    assert flushed == []  # nothing is sent before the turn ends
    end_this_turn()
    assert flushed == ["a", "b", "c"]


def test_the_next_turn_gets_its_own_flush():
    flushed = []
    flusher = Flusher()
    flusher.mark(Connection(flushed, "first"))
    end_this_turn()
    flusher.mark(Connection(flushed, "second"))
    end_this_turn()
    assert flushed == ["first", "second"]


def test_one_failing_connection_does_not_stop_the_others(caplog):
    flushed = []
    flusher = Flusher()
    flusher.mark(Connection(flushed, "broken", fails=True))
    flusher.mark(Connection(flushed, "fine"))
    end_this_turn()
    assert flushed == ["broken", "fine"]
    assert "flushing a connection failed" in caplog.text
