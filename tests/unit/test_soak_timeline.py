"""`make soak`'s per-minute timeline: what locust processes record, merged, and its percentiles."""

import json
from collections import Counter

from loadtests.report import percentile as raw_percentile
from loadtests.soak_timeline import Timeline, load, merge, overall, per_minute, percentile

T0 = 1_000_000.0


def test_percentiles_of_a_histogram_are_the_nearest_rank_ones_of_the_raw_values():
    values = [1.0, 2.0, 2.0, 3.5, 10.0, 11.2, 40.0, 40.0, 41.3, 250.7]
    counts = Counter(round(v / 0.1) for v in values)
    for p in (1, 50, 90, 99, 100):
        assert percentile(counts, p) == raw_percentile(values, p)
    assert percentile(Counter(), 50) is None


def test_events_are_filed_under_the_minute_they_happened_in():
    timeline = Timeline(t0=T0)
    timeline.record("deliver", "cross-node", T0 + 5, 3.04)
    timeline.record("deliver", "same-node", T0 + 59.9, 7.0)
    timeline.record("deliver", "cross-node", T0 + 60, 20.0)
    timeline.record("send", "send", T0 + 61, 2.5)
    timeline.record("connect", "socketio", T0 + 1, 80.0)
    timeline.record("send", "send", T0 + 130, 10_000.0, TimeoutError("no ack"))
    rows = per_minute(timeline)
    assert [row["deliveries"] for row in rows] == [2, 1, 0]
    assert rows[0]["delivery_p50_ms"] == 3.0 and rows[0]["delivery_p99_ms"] == 7.0
    assert (rows[1]["acks"], rows[1]["ack_p99_ms"]) == (1, 2.5)
    assert rows[0]["connects"] == 1
    assert rows[2]["errors"] == 1 and rows[2]["ack_p50_ms"] is None  # a failed send has no ack
    assert timeline.error_kinds == Counter({"send send: no ack": 1})


def test_an_event_before_t0_counts_in_the_first_minute():
    timeline = Timeline(t0=T0)
    timeline.record("deliver", "direct", T0 - 0.5, 1.0)
    assert per_minute(timeline)[0]["deliveries"] == 1


def test_per_minute_rows_run_up_to_the_minute_asked_for():
    timeline = Timeline(t0=T0)
    timeline.record("deliver", "cross-node", T0 + 125, 1.0)
    assert [row["minute"] for row in per_minute(timeline, last=3)] == [0, 1, 2, 3]
    assert per_minute(Timeline(t0=T0)) == []


def test_the_timelines_of_several_processes_merge_through_their_files(tmp_path):
    first, second = Timeline(t0=T0), Timeline(t0=T0)
    for value in (1.0, 2.0, 3.0):
        first.record("deliver", "cross-node", T0 + 10, value)
    second.record("deliver", "cross-node", T0 + 20, 100.0)
    second.record("send", "send", T0 + 70, 4.0, ConnectionError("dropped"))
    first.write(tmp_path / "timeline-1.json")
    second.write(tmp_path / "timeline-2.json")
    assert not list(tmp_path.glob("*.tmp"))
    merged = load(tmp_path)
    rows = per_minute(merged)
    assert rows[0]["deliveries"] == 4 and rows[0]["delivery_p99_ms"] == 100.0
    assert rows[1]["errors"] == 1
    whole = overall(merged)
    assert (whole["deliveries"], whole["delivery_p50_ms"], whole["errors"]) == (4, 2.0, 1)
    assert merge([json.loads((tmp_path / "timeline-1.json").read_text())]).t0 == T0
