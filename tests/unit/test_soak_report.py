"""`make soak`'s report: soak.json's shape, its verdicts and counts, the summary and the chart."""

import json

from loadtests.accounting import Accounting
from loadtests.soak_chart import chart
from loadtests.soak_memory import Series
from loadtests.soak_report import build, summary
from loadtests.soak_timeline import Timeline

T0 = 1_000_000.0
SETTINGS = {"duration_s": 600, "users": 100, "spawn_rate": 50, "processes": 2, "sample_s": 10,
            "settle_s": 120, "redis": "single", "nodes": 3, "port_base": 31000}


def memory() -> tuple[Series, Series]:
    rss, used = Series(), Series()
    for t in range(0, 611, 10):
        rss.add(t, {"node-1 master": 30.0, "node-1 worker": 60 + t / 36,  # 100 MB/h
                    "nginx worker 1": 11.0, "redis": 12 + t / 36, "locust": 60 + t / 36})
        used.add(t, {"redis": 2 + t / 40})
    return rss, used


def timeline() -> Timeline:
    line = Timeline(t0=T0)
    for second in range(600):
        line.record("deliver", "cross-node", T0 + second, 5.0 + second % 10)
        line.record("send", "send", T0 + second, 2.0)
    line.record("send", "send", T0 + 30, 10_000.0, TimeoutError("no ack"))
    return line


def report(load_s: float = 602.0, **changes) -> dict:
    rss, used = memory()
    accounting = Accounting(expected=6000, delivered=6000, sent=600, retries=2,
                            send_failures={"rate_limited": 1}, deliveries_per_s=10.0)
    for name, value in changes.items():
        setattr(accounting, name, value)
    return build(settings=SETTINGS, load_s=load_s, elapsed_s=615.0, accounting=accounting,
                 timeline=timeline(), rss=rss, pids={"node-1 worker": [10, 11]},
                 redis_memory=used, exited={})


def test_the_report_holds_counts_minutes_memory_and_the_leak_judgement():
    result = json.loads(json.dumps(report()))  # what soak.json holds
    assert set(result) == {"settings", "load_s", "elapsed_s", "counts", "errors",
                           "cluster_processes_exited", "latency_ms", "per_minute", "memory",
                           "leaks", "clean"}
    assert set(result["counts"]) == {"expected", "delivered", "lost", "duplicates",
                                     "out_of_order", "directs_received", "sent", "retries",
                                     "send_failures", "deliveries_per_s"}
    assert (result["counts"]["delivered"], result["counts"]["lost"]) == (6000, 0)
    assert result["counts"]["retries"] == 2
    assert result["errors"] == {"total": 1, "by_kind": {"send send: no ack": 1}}
    assert [row["minute"] for row in result["per_minute"]] == list(range(10))
    assert result["per_minute"][0]["delivery_p99_ms"] == 14.0
    assert result["latency_ms"]["ack_p50_ms"] == 2.0
    assert set(result["memory"]["rss_mb"]) == {"node-1 master", "node-1 worker",
                                               "nginx worker 1", "redis", "locust"}
    assert len(result["memory"]["t_s"]) == len(result["memory"]["rss_mb"]["redis"]) == 62
    leaks = result["leaks"]
    assert leaks["window_s"] == [301.0, 602.0]
    verdicts = {label: f["verdict"] for label, f in leaks["processes"].items()}
    assert verdicts == {"node-1 master": "flat", "node-1 worker": "possible leak",
                        "nginx worker 1": "flat", "redis": "grows: stored data",
                        "locust": "grows: the load generator's ledger"}
    assert leaks["possible_leaks"] == ["node-1 worker"]
    assert leaks["processes"]["node-1 worker"]["slope_mb_per_h"] == 100.0
    assert result["clean"]


def test_loss_duplicates_disorder_nothing_owed_or_an_exited_process_make_it_unclean():
    for changes in ({"lost": 1}, {"duplicates": 1}, {"out_of_order": 1}, {"expected": 0}):
        assert not report(**changes)["clean"], changes
    rss, used = memory()
    exited = build(settings=SETTINGS, load_s=602.0, elapsed_s=615.0,
                   accounting=Accounting(expected=1, delivered=1), timeline=timeline(), rss=rss,
                   pids={}, redis_memory=used, exited={"node-2": -9})
    assert not exited["clean"]
    assert "EXITED during the run: node-2 (exit -9)" in summary(exited)


def test_the_summary_names_counts_minutes_and_possible_leaks():
    text = summary(report())
    assert "lost 0, duplicated 0, out of order 0" in text
    assert "retries 2, send failures 1, errors 1" in text
    assert "POSSIBLE LEAK: node-1 worker" in text
    assert "(used_memory 2.0 -> 17.2 MB)" in text
    assert len([line for line in text.splitlines() if line.startswith("     ")]) == 10  # minutes
    assert "sending" not in text


def test_minutes_the_senders_stopped_in_say_how_long_they_sent():
    result = report(load_s=570.0)
    assert [row["sending_s"] for row in result["per_minute"]][-2:] == [60.0, 30.0]
    minute_9 = next(line for line in summary(result).splitlines() if line.startswith("     9"))
    assert minute_9.endswith("sending 30 s of it")


def test_the_chart_is_drawn(tmp_path):
    chart(report(), tmp_path / "soak.png")
    assert (tmp_path / "soak.png").stat().st_size > 10_000
