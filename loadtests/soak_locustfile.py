"""The chat users of loadtests/locustfile.py, with the per-minute timeline `make soak` reads.

Every locust process that runs users files each request event it reports (a delivery's latency,
a send's ack time, a connect, a failure) under the minute of the run it happened in (from
SOAK_T0, epoch seconds), and writes its timeline to $LOADTEST_RESULTS/timeline-<pid>.json every
FLUSH_S seconds and when the test stops. The users, their ledger and what locust reports are
those of `make loadtest`, unchanged.
"""

from __future__ import annotations

import os
import time

import gevent
from locust import events

from loadtests.locustfile import RESULTS, ChatUser  # noqa: F401 - the user class locust runs
from loadtests.soak_timeline import FLUSH_S, Timeline

timeline = Timeline(t0=float(os.environ.get("SOAK_T0") or time.time()))


def flush() -> None:
    if timeline:
        RESULTS.mkdir(parents=True, exist_ok=True)
        timeline.write(RESULTS / f"timeline-{os.getpid()}.json")


def flush_forever() -> None:
    while True:
        gevent.sleep(FLUSH_S)
        flush()


@events.request.add_listener
def on_request(request_type, name, response_time, exception=None, **_kwargs) -> None:
    timeline.record(request_type, name, time.time(), response_time, exception)


@events.init.add_listener
def start_flushing(environment, **_kwargs) -> None:
    gevent.spawn(flush_forever)  # one per process: with --processes, init runs after the fork


@events.test_stop.add_listener
def last_flush(environment, **_kwargs) -> None:
    flush()
