"""The eventlet server reads the node's settings (in eventlet mode) from the same table.

Each test runs it in a process of its own (importing it monkey-patches the process); none
listens on a port."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ENV = {"PATH": "", "DOTENV_PATH": "/nonexistent/.env"}


def last_line(stderr: str) -> str:
    """What the server said last (eventlet's deprecation notice comes first)."""
    return stderr.strip().splitlines()[-1]

SERVE_WITHOUT_SERVING = """
import json
import service.app
import service.node.eventlet_server as server

seen = {}
service.app.create_app = lambda settings: seen.update(async_mode=settings.async_mode) or "app"
server.eventlet.listen = lambda address: seen.update(address=address)
server.wsgi.server = lambda sock, app, **options: seen.update(app=app, **options)
server.main()
print(json.dumps(seen))
"""


def test_it_serves_on_bind_with_worker_connections_in_eventlet_mode():
    result = subprocess.run(
        [sys.executable, "-c", SERVE_WITHOUT_SERVING], capture_output=True, text=True, cwd=ROOT,
        env={**ENV, "BIND": "127.0.0.1:15999", "WORKER_CONNECTIONS": "123",
             "ASYNC_MODE": "gevent"}, check=False, timeout=60)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.splitlines()[-1]) == {
        "async_mode": "eventlet", "address": ["127.0.0.1", 15999], "app": "app",
        "log_output": False, "max_size": 123}


def test_a_setting_eventlet_mode_ignores_stops_the_start_naming_both():
    result = subprocess.run(
        [sys.executable, "-m", "service.node.eventlet_server"], capture_output=True, text=True,
        cwd=ROOT, env={**ENV, "SEND_BUFFER_BYTES": "262144"}, check=False, timeout=60)
    assert result.returncode == 3
    assert last_line(result.stderr).startswith("configuration error: SEND_BUFFER_BYTES has no "
                                               "effect with ASYNC_MODE=eventlet")
    assert "Traceback" not in result.stderr


def test_a_bad_value_stops_the_start_naming_it():
    result = subprocess.run(
        [sys.executable, "-m", "service.node.eventlet_server"], capture_output=True, text=True,
        cwd=ROOT, env={**ENV, "BIND": "localhost"}, check=False, timeout=60)
    assert result.returncode == 3
    assert last_line(result.stderr) == ("configuration error: BIND must be host:port (the address "
                                        "and port this node listens on), got 'localhost'")
