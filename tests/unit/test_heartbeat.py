"""One timer for all connections (service/transport/heartbeat.py): each visited when due, once."""

from service.transport.heartbeat import Heartbeat


class Item:
    def __init__(self, name, plan):
        self.name, self.plan, self.visits = name, list(plan), []

    def on_timer(self, now):
        self.visits.append(round(now, 2))
        return self.plan.pop(0) if self.plan else None


def test_items_are_visited_at_their_time_and_reschedule_themselves():
    beat = Heartbeat(tick_s=0.125)  # exact in binary: times below sit clear of tick boundaries
    start = beat._last * 0.125
    a = Item("a", [start + 0.8, None])
    b = Item("b", [])
    beat.schedule(a, start + 0.3)
    beat.schedule(b, start + 1.3)
    assert beat.run_due(start + 0.2) == 0
    assert beat.run_due(start + 0.4) == 1 and a.visits == [round(start + 0.4, 2)]
    assert beat.run_due(start + 0.9) == 1 and len(a.visits) == 2  # rescheduled by its answer
    assert beat.run_due(start + 2.0) == 1 and b.visits == [round(start + 2.0, 2)]
    assert len(beat) == 0  # a visit that returns None is the last


def test_an_earlier_schedule_wins_and_forget_removes():
    beat = Heartbeat(tick_s=0.125)
    start = beat._last * 0.125
    a = Item("a", [])
    beat.schedule(a, start + 1.0)
    beat.schedule(a, start + 0.3)  # earlier: moves it
    beat.schedule(a, start + 0.9)  # later: the earlier visit stays
    assert beat.run_due(start + 0.55) == 1
    b = Item("b", [])
    beat.schedule(b, start + 0.8)
    beat.forget(b)
    assert beat.run_due(start + 3.0) == 0


def test_a_failing_item_does_not_stop_the_others():
    class Broken:
        def on_timer(self, now):
            raise RuntimeError("boom")

    beat = Heartbeat(tick_s=0.1)
    start = beat._last * 0.1
    other = Item("other", [])
    beat.schedule(Broken(), start + 0.2)
    beat.schedule(other, start + 0.2)
    assert beat.run_due(start + 0.5) == 2
    assert other.visits


def test_fifty_thousand_connections_cost_only_the_due_ones_per_tick():
    beat = Heartbeat(tick_s=1.0)
    start = beat._last * 1.0
    items = [Item(str(n), []) for n in range(50_000)]
    for n, item in enumerate(items):
        beat.schedule(item, start + 1 + n % 25)  # pings spread over a 25 s interval
    assert beat.run_due(start + 1) == 2000
    assert len(beat) == 48_000
