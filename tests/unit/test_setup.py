"""The set-up a newcomer relies on: current locks, a bootstrap that installs only what is missing
and leaves the machine's services alone, a launcher on ports of its own, honest type ignores."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
from pathlib import Path

import pytest
from cluster import FRONT_DOOR_PORT, NODE_BASE_PORT, REDIS_PORT, Cluster

ROOT = Path(__file__).resolve().parents[2]


def test_the_locks_are_current_with_pyproject():
    """uv.lock resolves pyproject.toml as it is now, and the hashed pip files match uv.lock."""
    result = subprocess.run([str(ROOT / "scripts" / "lock.sh"), "--check"], cwd=ROOT,
                            capture_output=True, text=True, check=False, timeout=120)
    assert result.returncode == 0, result.stderr


def test_the_lock_check_fails_when_pyproject_changes(tmp_path):
    """The check above can fail: a dependency added to pyproject.toml makes the lock stale."""
    for name in ("pyproject.toml", "uv.lock", "requirements.lock", "requirements-dev.lock",
                 "README.md"):
        shutil.copy(ROOT / name, tmp_path / name)
    (tmp_path / "scripts").mkdir()
    shutil.copy(ROOT / "scripts" / "lock.sh", tmp_path / "scripts" / "lock.sh")
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace(
        '"orjson>=3.13.0,<4",', '"orjson>=3.13.0,<4",\n    "six>=1.16",', 1))
    result = subprocess.run([str(tmp_path / "scripts" / "lock.sh"), "--check"], cwd=tmp_path,
                            capture_output=True, text=True, check=False, timeout=120,
                            env={**os.environ, "UV": str(ROOT / ".venv" / "bin" / "uv")})
    assert result.returncode != 0
    assert "uv.lock is stale against pyproject.toml: run `make lock`" in result.stderr


def test_installs_check_every_file_against_its_hash():
    for lock in ("requirements.lock", "requirements-dev.lock"):
        requirements = [line for line in (ROOT / lock).read_text().splitlines()
                        if re.match(r"^[A-Za-z0-9]", line)]
        assert requirements
        assert all("==" in line and line.rstrip().endswith("\\") for line in requirements), lock
    assert "--require-hashes" in (ROOT / "scripts" / "bootstrap.sh").read_text()
    assert "--require-hashes" in (ROOT / "Dockerfile").read_text()


def fake_tools(folder: Path, names: list[str]) -> Path:
    """Commands that only record that they were called."""
    calls = folder / "calls.log"
    for name in names:
        tool = folder / name
        tool.write_text(f'#!/bin/sh\necho "{name} $*" >> {calls}\n')
        tool.chmod(0o755)
    return calls


def test_bootstrap_runs_no_apt_and_stops_no_service_when_nothing_is_missing(tmp_path):
    calls = fake_tools(tmp_path, ["apt-get", "sudo", "systemctl", "service"])
    result = subprocess.run(
        [str(ROOT / "scripts" / "bootstrap.sh"), "cluster", "venv", "npm"], cwd=ROOT,
        capture_output=True, text=True, check=False, timeout=120,
        env={**os.environ, "PATH": f"{tmp_path}:{os.environ['PATH']}"},
    )
    assert result.returncode == 0, result.stderr
    assert not calls.exists(), calls.read_text()
    assert "installing" not in result.stdout


def test_bootstrap_names_the_tools_it_cannot_install(tmp_path):
    """Without apt-get (nor redis on the PATH) it says what is missing, by tool and package."""
    for tool in ("dirname", "id"):
        (tmp_path / tool).symlink_to(shutil.which(tool))
    result = subprocess.run(["/bin/bash", str(ROOT / "scripts" / "bootstrap.sh"), "cluster"],
                            cwd=ROOT, capture_output=True, text=True, check=False, timeout=60,
                            env={"PATH": str(tmp_path), "HOME": str(tmp_path)})
    assert result.returncode == 1
    assert "cannot be installed here" in result.stderr
    assert "redis-server (Debian package redis-server)" in result.stderr
    assert "redis-cli (Debian package redis-tools)" in result.stderr


def test_bootstrap_refuses_an_unknown_part():
    result = subprocess.run([str(ROOT / "scripts" / "bootstrap.sh"), "everything"], cwd=ROOT,
                            capture_output=True, text=True, check=False, timeout=60)
    assert result.returncode == 2
    assert "unknown part 'everything'" in result.stderr


def test_make_run_uses_ports_of_its_own():
    """Not the ports Debian's redis-server and nginx packages start on."""
    ports = Cluster(nodes=32).ports()
    used = {port for role in ports.values() for port in role}
    assert FRONT_DOOR_PORT == 8080  # the contract's default front door
    assert {6379, 80, 443}.isdisjoint(used)
    assert {REDIS_PORT, NODE_BASE_PORT} <= used


def test_a_busy_port_stops_the_launcher_naming_its_setting_and_leaves_its_holder_alone():
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        busy = holder.getsockname()[1]
        cluster = Cluster(nodes=1, port=busy - 1, redis_port=busy, node_base_port=busy + 1)
        with pytest.raises(SystemExit, match=rf"{busy} \(redis, moved by REDIS_PORT\)"):
            cluster.start()
        assert cluster.processes == {}
        with socket.create_connection(("127.0.0.1", busy), timeout=2):
            pass  # still served by its holder


def test_every_type_ignore_says_why():
    bare = []
    for path in (ROOT / "service").rglob("*.py"):
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            match = re.search(r"# type: ignore(\[[^\]]*\])?(.*)$", line)
            if match and not match.group(2).strip().startswith("#"):
                bare.append(f"{path.relative_to(ROOT)}:{number}")
    assert not bare, f"type: ignore without a reason: {bare}"
