"""Giving a burst's memory back (service/transport/memory.py): once after each burst of tasks,
never while tasks run, never for a trickle."""

from __future__ import annotations

from service.transport.memory import BurstTrimmer, malloc_trim


def test_glibc_here_has_malloc_trim_and_it_runs():
    trim = malloc_trim()
    assert trim is not None
    assert trim() in (0, 1)  # 1: memory was released, 0: there was none to release


def test_a_burst_is_trimmed_once_when_its_tasks_are_done():
    calls: list[int] = []
    trimmer = BurstTrimmer(trim=lambda: calls.append(1), burst_tasks=64)
    for tasks in range(1, 101):
        trimmer.saw(tasks)
    assert not trimmer.tick(40)  # still running
    assert calls == []
    assert trimmer.tick(0)
    assert not trimmer.tick(0)  # once per burst
    assert calls == [1]


def test_a_trickle_of_tasks_is_never_trimmed():
    calls: list[int] = []
    trimmer = BurstTrimmer(trim=lambda: calls.append(1), burst_tasks=64)
    for _ in range(1000):
        trimmer.saw(3)
        trimmer.tick(0)
    assert calls == []
