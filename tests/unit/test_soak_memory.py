"""`make soak`'s memory sampling: labels of process trees, series, the sampler thread."""

import subprocess
import sys

import psutil
import pytest

from loadtests.soak_memory import ProcessTable, Role, Sampler, Series, labelled
from tests.waiting import wait_for

SLEEPER = [sys.executable, "-c", "import time; time.sleep(60)"]


@pytest.fixture
def parent_of_two():
    """A process with two children, each a process of its own."""
    script = ("import subprocess, sys, time\n"
              f"kids = [subprocess.Popen({SLEEPER!r}) for _ in range(2)]\n"
              "print('ready', flush=True)\n"
              "time.sleep(60)\n")
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert parent.stdout.readline().strip() == "ready"
    yield parent
    import psutil

    for child in psutil.Process(parent.pid).children():
        child.kill()
    parent.kill()
    parent.wait()


def test_a_role_labels_itself_and_numbers_its_children_in_pid_order(parent_of_two):
    found = labelled([Role("nginx master", parent_of_two.pid, "nginx worker")])
    assert sorted(found) == ["nginx master", "nginx worker 1", "nginx worker 2"]
    assert found["nginx master"].pid == parent_of_two.pid
    assert found["nginx worker 1"].pid < found["nginx worker 2"].pid


def test_an_only_child_is_not_numbered_and_children_are_left_out_when_not_asked_for():
    # a parent of exactly one child of its own (the test process may have others: a Redis of
    # another test's fixture)
    parent = subprocess.Popen([sys.executable, "-c", "import subprocess, sys, time; "
                               f"subprocess.Popen({SLEEPER!r}); time.sleep(60)"])
    try:
        wait_for(lambda: len(psutil.Process(parent.pid).children()) == 1,
                 what="the parent's child to start")
        assert list(labelled([Role("node-1 master", parent.pid, "node-1 worker")])) == [
            "node-1 master", "node-1 worker"]
        assert list(labelled([Role("redis", parent.pid)])) == ["redis"]
    finally:
        for process in psutil.Process(parent.pid).children():
            process.kill()
        parent.kill()
        parent.wait()


def test_a_process_that_is_gone_is_left_out():
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    assert labelled([Role("redis", gone.pid)]) == {}


def test_the_table_reads_rss_in_mb_and_keeps_every_pid_a_label_stood_for():
    first = subprocess.Popen(SLEEPER)
    second = subprocess.Popen(SLEEPER)
    current = [first.pid]
    table = ProcessTable(lambda: [Role("node-1 worker", current[0])])
    try:
        assert 0 < table()["node-1 worker"] < 1000  # MB (a process just started holds little)
        current[0] = second.pid  # the worker was replaced
        table()
        assert table.pids == {"node-1 worker": [first.pid, second.pid]}
    finally:
        for process in (first, second):
            process.kill()
            process.wait()


def test_series_keep_every_name_aligned_with_the_clock():
    series = Series()
    series.add(0.0, {"a": 1.0})
    series.add(10.0, {"a": 2.0, "b": 5.0})
    series.add(20.0, {"b": 6.0})
    assert series.t_s == [0.0, 10.0, 20.0]
    assert series.values == {"a": [1.0, 2.0, None], "b": [None, 5.0, 6.0]}
    assert series.latest() == {"b": 6.0}


def test_the_sampler_samples_at_start_and_stop_and_a_failing_probe_misses_only_its_sample():
    calls = []

    def flaky() -> dict[str, float]:
        calls.append(1)
        if len(calls) == 1:
            raise OSError("busy")
        return {"redis": float(len(calls))}

    sampler = Sampler({"rss": lambda: {"x": 1.0}, "redis": flaky}, interval=3600, t0=0.0)
    sampler.start()
    sampler.stop()
    assert len(sampler.series["rss"].t_s) == 2  # the first sample, and the last one at stop
    assert sampler.series["redis"].values == {"redis": [2.0]}
    assert sampler.latest("rss") == {"x": 1.0}
