"""nginx/follow-nodes.sh, the front door's way of following the node replicas in compose: run with
a stand-in `getent` (the addresses a test chooses) and `nginx` (records reloads)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.waiting import wait_for

SCRIPT = Path(__file__).resolve().parents[2] / "nginx" / "follow-nodes.sh"


@dataclass
class Door:
    folder: Path
    process: subprocess.Popen | None = None

    @property
    def upstream(self) -> Path:
        return self.folder / "nodes" / "upstream.conf"

    def env(self, **settings: str) -> dict[str, str]:
        return {"PATH": f"{self.folder / 'bin'}:{os.environ['PATH']}",
                "NODES_DNS_NAME": "node", "NODES_PORT": "8000", "RESOLVE_INTERVAL_S": "1",
                "NODES_FILE": str(self.upstream),
                "UPSTREAM_SERVERS": f"include {self.upstream};", **settings}

    def answer(self, *addresses: str) -> None:
        """What the DNS says `node` is from now on (getent's ahostsv4 lines, three per address)."""
        lines = "".join(f"{a}       {kind} \n" for a in addresses for kind in ("STREAM node",
                                                                            "DGRAM", "RAW"))
        (self.folder / "answer").write_text(lines)

    def reloads(self) -> int:
        return self.count("reloads")

    def lookups(self) -> int:
        return self.count("lookups")

    def count(self, name: str) -> int:
        log = self.folder / name
        return len(log.read_text().splitlines()) if log.exists() else 0

    def servers(self) -> list[str]:
        return self.upstream.read_text().split("\n")[:-1]

    def log(self) -> list[str]:
        return (self.folder / "log").read_text().splitlines()

    def start(self) -> subprocess.CompletedProcess:
        """Runs the script as the image's entrypoint would; its follower stays in the background,
        in a session of its own (stopped with the test)."""
        with open(self.folder / "log", "ab") as log:
            self.process = subprocess.Popen(["sh", str(SCRIPT)], env=self.env(), stdout=log,
                                            stderr=subprocess.STDOUT, start_new_session=True)
        self.process.wait(10)
        return self.process


@pytest.fixture
def door(tmp_path: Path) -> Iterator[Door]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "getent").write_text(f'#!/bin/sh\necho "$*" >> {tmp_path}/lookups\n'
                                    f'[ -s {tmp_path}/answer ] || exit 2\n'
                                    f'cat {tmp_path}/answer\n')
    (bin_dir / "nginx").write_text(f'#!/bin/sh\necho "$*" >> {tmp_path}/reloads\n')
    for tool in bin_dir.iterdir():
        tool.chmod(0o755)
    instance = Door(tmp_path)
    yield instance
    if instance.process is not None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(instance.process.pid, signal.SIGTERM)  # the follower it left behind


def line(address: str) -> str:
    return f"    server {address}:8000 max_fails=1 fail_timeout=5s;"


def test_renders_sorted_servers_before_nginx_starts_then_reloads_only_on_a_change(door):
    door.answer("10.89.0.10", "10.89.0.9", "10.89.0.2", "10.89.0.9")
    assert door.start().returncode == 0
    assert door.servers() == [line("10.89.0.2"), line("10.89.0.9"), line("10.89.0.10")]
    assert door.reloads() == 0  # nginx starts with this file

    door.answer("10.89.0.9", "10.89.0.2", "10.89.0.10", "10.89.0.11", "10.89.0.12")
    wait_for(lambda: door.reloads() == 1)
    assert door.servers()[-2:] == [line("10.89.0.11"), line("10.89.0.12")]
    assert (door.folder / "reloads").read_text() == "-s reload\n"

    door.answer("10.89.0.12", "10.89.0.2", "10.89.0.9")
    wait_for(lambda: door.reloads() == 2)
    assert door.servers() == [line("10.89.0.2"), line("10.89.0.9"), line("10.89.0.12")]
    looked_up = door.lookups()
    wait_for(lambda: door.lookups() >= looked_up + 2)  # the same set twice more: nothing to do
    assert door.reloads() == 2
    changes = [entry for entry in door.log() if "nginx reloaded" in entry]
    assert changes == [
        "follow-nodes: nodes now 10.89.0.2:8000 10.89.0.9:8000 10.89.0.10:8000 10.89.0.11:8000 "
        "10.89.0.12:8000 (were 10.89.0.2:8000 10.89.0.9:8000 10.89.0.10:8000); nginx reloaded",
        "follow-nodes: nodes now 10.89.0.2:8000 10.89.0.9:8000 10.89.0.12:8000 (were "
        "10.89.0.2:8000 10.89.0.9:8000 10.89.0.10:8000 10.89.0.11:8000 10.89.0.12:8000); "
        "nginx reloaded"]


def test_an_empty_answer_keeps_the_last_nodes(door):
    door.answer("10.89.0.2")
    assert door.start().returncode == 0
    door.answer()
    wait_for(lambda: any("resolves to nothing" in entry for entry in door.log()))
    assert door.servers() == [line("10.89.0.2")]
    assert door.reloads() == 0
    door.answer("10.89.0.3")
    wait_for(lambda: door.reloads() == 1)
    assert door.servers() == [line("10.89.0.3")]
    assert sum("resolves to nothing" in entry for entry in door.log()) == 1  # logged once


def test_waits_for_the_first_node_before_nginx_starts(door):
    door.answer()
    with open(door.folder / "log", "ab") as log:
        door.process = subprocess.Popen(["sh", str(SCRIPT)], env=door.env(), stdout=log,
                                        stderr=subprocess.STDOUT, start_new_session=True)
    wait_for(lambda: door.log() == ["follow-nodes: no address for node yet (no node running?); "
                                    "waiting"])
    assert door.process.poll() is None and not door.upstream.exists()
    door.answer("10.89.0.7")
    assert door.process.wait(10) == 0
    assert door.servers() == [line("10.89.0.7")]


@pytest.mark.parametrize(("setting", "value"), [
    ("NODES_PORT", "0"), ("NODES_PORT", "65536"), ("NODES_PORT", "80a"),
    ("RESOLVE_INTERVAL_S", "0"), ("RESOLVE_INTERVAL_S", "0.5"), ("RESOLVE_INTERVAL_S", "soon"),
    ("NODES_DNS_NAME", "no de"), ("NODES_DNS_NAME", "-node"), ("NODES_DNS_NAME", "node;rm"),
    ("UPSTREAM_SERVERS", "server node:8000;"),
])
def test_a_bad_setting_stops_the_start_naming_it(door, setting, value):
    door.answer("10.89.0.2")
    result = subprocess.run(["sh", str(SCRIPT)], env=door.env(**{setting: value}),
                            capture_output=True, text=True, timeout=10, check=False)
    assert result.returncode == 1
    assert result.stderr.startswith(f"follow-nodes: configuration error: {setting} must be")
    assert not door.upstream.exists()


def test_without_a_name_to_follow_it_does_nothing(door):
    result = subprocess.run(["sh", str(SCRIPT)], env=door.env(NODES_DNS_NAME=""),
                            capture_output=True, text=True, timeout=10, check=False)
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")
    assert not door.upstream.exists()
