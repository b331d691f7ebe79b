"""`make soak`'s leak judgement: the least-squares line, the judged window and the flags."""

import pytest

from loadtests.soak_analysis import (
    ALLOCATOR,
    DATA,
    FLAT,
    LEAK,
    LEDGER,
    UNJUDGED,
    fit,
    judge,
    judge_all,
    redis_window,
    verdict,
    window,
)

TIMES = [float(t) for t in range(0, 1801, 10)]  # a 30-minute run sampled every 10 s


def test_the_line_through_exact_points_is_found_with_r2_one():
    line = fit([0.0, 1.0, 2.0, 3.0], [5.0, 7.0, 9.0, 11.0])
    assert line.slope == pytest.approx(2.0)
    assert line.intercept == pytest.approx(5.0)
    assert line.r2 == pytest.approx(1.0)


def test_a_flat_series_has_slope_zero_and_explains_nothing():
    line = fit([0.0, 1.0, 2.0], [3.0, 3.0, 3.0])
    assert (line.slope, line.r2) == (0.0, 0.0)


def test_a_line_needs_two_distinct_times():
    with pytest.raises(ValueError):
        fit([1.0, 1.0], [2.0, 3.0])


def test_the_window_is_the_second_half_but_never_before_settling():
    assert window(1800, settle_s=120) == (900, 1800)
    assert window(300, settle_s=180) == (180, 300)
    assert window(60, settle_s=120) == (60, 60)  # shorter than settling: nothing judged


def test_a_steady_climb_past_the_threshold_is_flagged_with_its_rate_and_growth():
    values = [100 + t / 3600 * 10 for t in TIMES]  # 10 MB/h
    figures = judge(TIMES, values, 900, 1800)
    assert figures["slope_mb_per_h"] == pytest.approx(10.0)
    assert figures["growth_mb"] == pytest.approx(2.5)  # 15 minutes at 10 MB/h
    assert figures["r2"] == pytest.approx(1.0)
    assert figures["steady_growth"]
    assert (figures["start_mb"], figures["end_mb"], figures["peak_mb"]) == (100, 105, 105)


def test_growth_during_settling_only_is_not_flagged():
    values = [min(100 + t / 10, 130) for t in TIMES]  # fills up in 5 minutes, then flat
    figures = judge(TIMES, values, 900, 1800)
    assert figures["slope_mb_per_h"] == 0
    assert not figures["steady_growth"]


def test_a_single_step_in_the_window_is_not_steady_growth():
    values = [100.0 if t < 1350 else 103.0 for t in TIMES]
    figures = judge(TIMES, values, 900, 1800)
    assert figures["slope_mb_per_h"] > 4 and figures["growth_mb"] > 1
    assert figures["r2"] < 0.8
    assert not figures["steady_growth"]


def test_a_slow_or_small_climb_is_not_flagged():
    slow = [100 + t / 3600 * 2 for t in TIMES]  # 2 MB/h
    assert not judge(TIMES, slow, 900, 1800)["steady_growth"]
    short = [100 + t / 3600 * 20 for t in TIMES[:31]]  # 20 MB/h over 5 minutes: 0.8 MB judged
    assert not judge(TIMES[:31], short, 180, 300)["steady_growth"]


def test_missing_samples_are_skipped_and_too_few_are_not_judged():
    values: list[float | None] = [None, None, *[50.0 + i for i in range(len(TIMES) - 2)]]
    figures = judge(TIMES, values, 900, 1800)
    assert figures["start_mb"] == 50.0 and figures["samples_judged"] == 91
    few = judge(TIMES, [1.0] * len(TIMES), 1790, 1800)
    assert few["slope_mb_per_h"] is None and verdict("node-1 worker", few) == UNJUDGED


def test_verdicts_tell_the_ledger_stored_data_and_the_allocator_from_a_possible_leak():
    climbing = judge(TIMES, [100 + t / 360 for t in TIMES], 900, 1800)  # 10 MB/h, 2.5 MB
    data_climbing = judge(TIMES, [10 + t / 450 for t in TIMES], 900, 1800)  # 8 MB/h, 2 MB
    data_slower = judge(TIMES, [10 + t / 1800 for t in TIMES], 900, 1800)  # 2 MB/h, 0.5 MB
    data_flat = judge(TIMES, [30.0] * len(TIMES), 900, 1800)
    assert verdict("node-1 worker", climbing) == LEAK
    assert verdict("locust worker 1", climbing) == LEDGER
    assert verdict("redis", climbing, data_climbing) == DATA
    assert verdict("redis", climbing, data_flat) == ALLOCATOR
    assert verdict("redis", climbing, data_slower) == ALLOCATOR  # under the thresholds: flat
    assert verdict("redis", climbing, {**data_climbing, "growth_mb": 0.5}) == LEAK
    assert verdict("redis", climbing) == LEAK
    assert verdict("nginx worker 1", judge(TIMES, [10.0] * len(TIMES), 900, 1800)) == FLAT


def test_redis_is_judged_once_the_load_filled_it():
    assert redis_window(900, 1800, 1000) == 1060
    assert redis_window(900, 1800, 300) == 900
    assert redis_window(150, 300, 1000) == 300  # a short run: nothing left to judge
    series = {"redis": [10 + min(t, 1000) / 50 for t in TIMES]}  # fills, then flat
    judged = judge_all(TIMES, series, 900, 1800, redis_start=1060)
    assert judged["redis"]["verdict"] == FLAT


def test_every_series_is_judged_with_its_verdict():
    series = {"node-1 worker": [100 + t / 360 for t in TIMES],
              "redis": [10 + t / 360 for t in TIMES], "nginx master": [5.0] * len(TIMES)}
    data = {"redis": judge(TIMES, [10 + t / 450 for t in TIMES], 900, 1800)}
    judged = judge_all(TIMES, series, 900, 1800, data=data)
    assert {label: f["verdict"] for label, f in judged.items()} == {
        "nginx master": FLAT, "node-1 worker": LEAK, "redis": DATA}
