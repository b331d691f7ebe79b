"""The node's gunicorn settings: read from the settings table, a bad value refused by name
without a traceback, and the open-file limit."""

import importlib
import resource
import subprocess
import sys
from pathlib import Path

import pytest

from service.settings.table import TABLE

ROOT = Path(__file__).resolve().parents[2]


def load_config(monkeypatch, **env: str):
    """gunicorn_conf as gunicorn's master loads it, with only `env` set (no `.env`)."""
    for setting in TABLE:
        monkeypatch.delenv(setting.name, raising=False)
    monkeypatch.setenv("DOTENV_PATH", "/nonexistent/.env")
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    from service.node import gunicorn_conf

    return importlib.reload(gunicorn_conf)


@pytest.fixture
def gunicorn_conf(monkeypatch):
    return load_config(monkeypatch)


def test_gunicorn_takes_its_settings_from_the_table(monkeypatch):
    conf = load_config(monkeypatch, BIND="0.0.0.0:8000", WORKER_CONNECTIONS="1234",
                       DRAIN_TIMEOUT_S="7.5", HANDOVER_SPREAD_S="3", CONNECT_TIMEOUT_S="2.5",
                       LOG_LEVEL="WARNING", NODE_NAME="node-7")
    assert (conf.bind, conf.worker_connections, conf.loglevel, conf.proc_name) == (
        "0.0.0.0:8000", 1234, "warning", "rooms-node-7")
    assert conf.graceful_timeout == int(7.5 + 3) + 10  # draining, the hand-over, what is left
    assert conf.keepalive == 2
    defaults = load_config(monkeypatch)
    assert (defaults.bind, defaults.worker_connections, defaults.graceful_timeout,
            defaults.keepalive, defaults.loglevel) == ("127.0.0.1:5001", 10000, 20, 10, "info")


@pytest.mark.parametrize(("env", "message"), [
    ({"DRAIN_TIMEOUT_S": "soon"}, "DRAIN_TIMEOUT_S must be a number, got 'soon'"),
    ({"BIND": "8000"}, "BIND must be host:port"),
    ({"ASYNC_MODE": "eventlet"}, "ASYNC_MODE=eventlet is served by"),
    ({"ENV": "production"}, "SECRET_KEY must be a secret of your own"),
])
def test_a_bad_setting_stops_the_master_naming_it(monkeypatch, env, message):
    with pytest.raises(SystemExit) as stopped:
        load_config(monkeypatch, **env)
    assert str(stopped.value.code).startswith("configuration error: ")
    assert message in str(stopped.value.code)


def test_the_master_imports_the_settings_and_not_the_application():
    """gunicorn's gevent worker monkey-patches after the fork: modules imported before then keep
    the unpatched ssl (redis, urllib3), so the config imports only the settings."""
    result = subprocess.run(
        [sys.executable, "-c", "import sys, service.node.gunicorn_conf; print(sorted(name for "
         "name in ('flask', 'redis', 'urllib3', 'engineio', 'socketio', 'service.app') "
         "if name in sys.modules))"],
        env={"PATH": "", "DOTENV_PATH": "/nonexistent/.env"}, capture_output=True, text=True,
        cwd=ROOT, check=True)
    assert result.stdout.strip() == "[]"


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


def test_the_soft_open_file_limit_is_raised_for_worker_connections(low_soft_limit, monkeypatch,
                                                                   gunicorn_conf):
    if low_soft_limit < 3024:
        pytest.skip(f"this machine's hard open-file limit is {low_soft_limit}")
    monkeypatch.setattr(gunicorn_conf, "worker_connections", 2000)
    server = Server()
    gunicorn_conf.on_starting(server)
    assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] == 3024
    assert server.log.warnings == []


def test_the_hard_limit_is_raised_too_where_the_process_may(low_soft_limit, monkeypatch,
                                                            gunicorn_conf):
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


def test_a_hard_limit_below_worker_connections_is_named_in_a_warning(low_soft_limit, monkeypatch,
                                                                    gunicorn_conf):
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
                            env={"WORKER_CONNECTIONS": "lots", "PATH": "",
                                 "DOTENV_PATH": "/nonexistent/.env"},
                            capture_output=True, text=True, cwd=ROOT)
    assert result.returncode != 0
    assert result.stderr.strip() == ("configuration error: WORKER_CONNECTIONS must be an "
                                     "integer, got 'lots'")
