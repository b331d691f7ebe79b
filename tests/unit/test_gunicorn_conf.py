"""The node's gunicorn settings: the open-file limit and a bad WORKER_CONNECTIONS."""

import importlib
import resource
import subprocess
import sys

import pytest

from service.node import gunicorn_conf


class Log:
    def __init__(self) -> None:
        self.warnings: list[str] = []

    def warning(self, text: str, *args: object) -> None:
        self.warnings.append(text % args)


class Server:
    def __init__(self) -> None:
        self.log = Log()


@pytest.fixture
def low_soft_limit():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))
    yield hard
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(soft, hard), hard))  # a raised hard: lowered


def test_the_soft_open_file_limit_is_raised_for_worker_connections(low_soft_limit, monkeypatch):
    if low_soft_limit < 3024:
        pytest.skip(f"this machine's hard open-file limit is {low_soft_limit}")
    monkeypatch.setattr(gunicorn_conf, "worker_connections", 2000)
    server = Server()
    gunicorn_conf.on_starting(server)
    assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] == 3024
    assert server.log.warnings == []


def test_the_hard_limit_is_raised_too_where_the_process_may(low_soft_limit, monkeypatch):
    probe = subprocess.run([sys.executable, "-c", "import resource; resource.setrlimit("
                            f"resource.RLIMIT_NOFILE, ({low_soft_limit + 6024},) * 2)"],
                           capture_output=True)
    if probe.returncode != 0:
        pytest.skip("raising the hard open-file limit needs CAP_SYS_RESOURCE, which this "
                    "machine's root lacks")
    monkeypatch.setattr(gunicorn_conf, "worker_connections", low_soft_limit + 5000)
    server = Server()
    gunicorn_conf.on_starting(server)
    assert resource.getrlimit(resource.RLIMIT_NOFILE) == (low_soft_limit + 6024,) * 2
    assert server.log.warnings == []


def test_a_hard_limit_below_worker_connections_is_named_in_a_warning(low_soft_limit, monkeypatch):
    monkeypatch.setattr(gunicorn_conf, "worker_connections", low_soft_limit + 5000)
    real_setrlimit = resource.setrlimit

    def unprivileged(kind: int, limits: tuple[int, int]) -> None:
        if limits[1] > low_soft_limit:
            raise ValueError("not allowed to raise the hard limit")
        real_setrlimit(kind, limits)

    monkeypatch.setattr(resource, "setrlimit", unprivileged)
    server = Server()
    gunicorn_conf.on_starting(server)
    assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] == low_soft_limit
    assert "WORKER_CONNECTIONS" in server.log.warnings[0]


def test_a_bad_worker_connections_stops_with_the_setting_named():
    result = subprocess.run([sys.executable, "-c", "import service.node.gunicorn_conf"],
                            env={"WORKER_CONNECTIONS": "lots", "PATH": ""}, capture_output=True,
                            text=True, cwd=importlib.import_module("service").__path__[0] + "/..")
    assert result.returncode != 0
    assert "WORKER_CONNECTIONS must be a positive integer" in result.stderr
