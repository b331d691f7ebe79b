"""`make capacity`'s memory probe (loadtests/idle_capacity.py) without a cluster: its settings,
the verdicts against issue 25's targets, and the front door edited to another relay buffer size."""

from __future__ import annotations

import re
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))

from loadtests import idle_capacity  # noqa: E402
from loadtests.idle_capacity import (  # noqa: E402
    buffer_sizes_from_env,
    counts_from_env,
    judge,
    part_of,
    summary_lines,
)


def row(system: str, kb: float, node_kb: float, storm_s: float | None = 5.0,
        connections: int = 3000, **extra) -> dict:
    return {"system": system, "target_connections": 3000, "proxy_buffer_size": "1k",
            "connections": connections, "failed": 0, "kb_per_connection": kb,
            "node_kb_per_connection": node_kb, "nginx_kb_per_connection": kb - node_kb,
            "redis_kb_per_connection": 0.0, "idle_cpu": {"node_cpu_per_s": 0.01},
            "storm": {"all_served_s": storm_s, "bound_s": 30.0,
                      "within_bound": storm_s is not None and storm_s <= 30}, **extra}


def test_the_defaults_are_the_issues_counts(monkeypatch):
    for name in ("MEMORY_CONNECTIONS", "PROXY_BUFFER_SIZES"):
        monkeypatch.delenv(name, raising=False)
    assert counts_from_env("MEMORY_CONNECTIONS", "3000,15000") == [3000, 15000]
    assert buffer_sizes_from_env() == ["1k"]
    monkeypatch.setenv("PROXY_BUFFER_SIZES", "1k,2k,default")
    assert buffer_sizes_from_env() == ["1k", "2k", "default"]


@pytest.mark.parametrize(("name", "value", "message"), [
    ("MEMORY_CONNECTIONS", "3k", "must list connection counts"),
    ("MEMORY_CONNECTIONS", "5", "at least 10"),
    ("PROXY_BUFFER_SIZES", "1k,huge", "must list sizes"),
])
def test_a_bad_setting_stops_the_probe_naming_it(monkeypatch, name, value, message):
    monkeypatch.setenv(name, value)
    with pytest.raises(SystemExit, match=f"{name} {message}|{name}.*{message}"):
        counts_from_env(name, "3000") if name == "MEMORY_CONNECTIONS" else buffer_sizes_from_env()


def test_processes_are_counted_by_part():
    assert [part_of(name) for name in ("node-1", "nginx", "nginx-2", "redis", "redis-16371")] == [
        "node", "nginx", "nginx", "redis", "redis"]


def test_the_targets_beside_the_reference():
    met = judge([row("rooms", 20.0, 10.0), row("node-reference", 30.0, 15.0, storm_s=None)])
    [verdict] = met["rooms"]
    assert met["ok"] and verdict["held"] and verdict["storm_met"]
    assert verdict["ratio_to_reference"] == 0.67 and verdict["ratio_met"]
    assert verdict["node_kb_met"] and verdict["server_kb_met"]
    missed = judge([row("rooms", 42.6, 28.7), row("node-reference", 24.5, 10.3)])
    [verdict] = missed["rooms"]
    assert missed["ok"]  # memory targets are reported, not enforced
    assert not (verdict["node_kb_met"] or verdict["server_kb_met"] or verdict["ratio_met"])
    assert "NOT MET" in summary_lines([row("rooms", 42.6, 28.7)], missed)[-1]


@pytest.mark.parametrize("rooms", [row("rooms", 20.0, 10.0, storm_s=31.0),
                                   row("rooms", 20.0, 10.0, storm_s=None),
                                   row("rooms", 20.0, 10.0, connections=2999)],
                         ids=["storm-too-slow", "storm-not-all-served", "not-all-held"])
def test_a_slow_storm_or_connections_not_held_fail_the_probe(rooms):
    result = judge([rooms, row("node-reference", 30.0, 15.0)])
    assert not result["ok"]
    assert len(summary_lines([rooms], result)) == 3  # a failed storm still prints


def test_the_socket_location_gets_another_buffer_size_before_clients_come(tmp_path, monkeypatch):
    """The rendered front door is edited, checked by `nginx -t` and reloaded: here with a fake
    master whose workers change once it gets SIGHUP."""
    from tests.unit.test_front_door_config import render_local

    render_local(tmp_path / "nginx")
    signals = []
    workers = [[SimpleNamespace(pid=11), SimpleNamespace(pid=12)]]

    class Master:
        pid = 10

        def __init__(self, pid: int) -> None:
            pass

        def children(self):
            return workers[-1]

    def kill(pid: int, sig: int) -> None:
        signals.append((pid, sig))
        last = workers[-1][-1].pid
        workers.append([SimpleNamespace(pid=last + 1), SimpleNamespace(pid=last + 2)])

    import psutil

    monkeypatch.setattr(psutil, "Process", Master)
    monkeypatch.setattr(idle_capacity.os, "kill", kill)
    cluster = SimpleNamespace(run_dir=tmp_path, processes={"nginx": SimpleNamespace(pid=10)})
    idle_capacity.set_proxy_buffer_size(cluster, "4k")
    text = (tmp_path / "nginx" / "cluster.conf").read_text()
    assert re.findall(r"proxy_buffer_size \w+;", text) == ["proxy_buffer_size 4k;"]
    assert len(signals) == 1
    with pytest.raises(SystemExit, match="no `proxy_buffer_size 1k;` to change"):
        idle_capacity.set_proxy_buffer_size(cluster, "2k")
    render_local(tmp_path / "nginx")
    idle_capacity.set_proxy_buffer_size(cluster, "default")  # nginx's own: the line goes
    text = (tmp_path / "nginx" / "cluster.conf").read_text()
    assert not re.search(r"^\s*proxy_buffer_size", text, re.MULTILINE)
