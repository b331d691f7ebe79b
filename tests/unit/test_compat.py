"""Every library internal the service relies on is still there (service/transport/compat.py).

One test per internal: upgrading a library that changed one fails here, naming it, before a
node would refuse to start over it."""

from typing import ClassVar

import pytest

from service import create_app
from service.settings import load_settings
from service.transport import compat


@pytest.mark.parametrize("internal", compat.INTERNALS, ids=lambda i: f"{i.library}: {i.name}")
def test_the_internal_is_still_there(internal):
    assert internal.present(), (f"{internal.library} {internal.name} is gone (used by "
                                f"{internal.used_by}); written for {compat.WRITTEN_FOR}")


def test_every_library_relied_on_has_the_version_it_was_written_for():
    for library, version in compat.installed_versions().items():
        assert version.startswith(compat.WRITTEN_FOR[library] + "."), (library, version)


def test_a_node_refuses_to_start_naming_what_is_gone(monkeypatch):
    gone = compat.Internal("python-engineio", "Socket.poll", "transport/websocket.py",
                           lambda: False)
    broken = compat.Internal("redis", "Connection._sock", "bus/link.py",
                             lambda: (_ for _ in ()).throw(AttributeError("_sock")))
    monkeypatch.setattr(compat, "INTERNALS", [*compat.INTERNALS, gone, broken])
    with pytest.raises(compat.CompatError) as refused:
        create_app(load_settings({"REDIS_URL": "redis://127.0.0.1:1/0"}), background=False)
    message = str(refused.value)
    assert "python-engineio Socket.poll (for transport/websocket.py)" in message
    assert "redis Connection._sock (for bus/link.py)" in message
    assert "written for python-engineio 4.15 (installed 4.15." in message


def test_hostile_event_names_go_to_the_catch_all():
    calls = []

    class Server:
        def _handle_event(self, eio_sid, namespace, ack_id, data):
            calls.append(data)

        def _handle_eio_message(self, eio_sid, data):
            raise ValueError("undecodable")

        class eio:  # stands in for python-engineio's server
            handlers: ClassVar[dict] = {}

            @classmethod
            def on(cls, name, handler):
                cls.handlers[name] = handler

    server = Server()
    malformed = []
    compat.guard_incoming_packets(server, lambda sid, error: malformed.append(sid))
    server._handle_event("e1", "/", None, ["disconnect", 1])
    server._handle_event("e1", "/", None, [])
    Server.eio.handlers["message"]("e2", "garbage")
    assert calls == [["reserved:disconnect", 1]]
    assert malformed == ["e2"]


APP = '''
def app(environ, start_response):
    sock = environ["gunicorn.socket"]
    sock.sendall(b"HTTP/1.1 200 OK\\r\\nContent-Length: 5\\r\\nConnection: close\\r\\n\\r\\nmine!")
    raise StopIteration  # the connection is the application's: gunicorn writes nothing more
'''


def test_gunicorn_lets_an_application_take_the_connection_and_end_it(tmp_path):
    """What transport/websocket.py relies on in a real gevent worker: the connection's socket in
    the environ, and StopIteration from the application ending the request quietly."""
    import socket
    import subprocess
    import sys

    from tests.redis_server import free_port
    from tests.waiting import wait_for

    (tmp_path / "taker.py").write_text(APP)
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-k", "gevent", "-w", "1", "-b", f"127.0.0.1:{port}",
         "--chdir", str(tmp_path), "taker:app"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        def answered() -> bytes:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=2) as conn:
                    conn.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
                    data = b""
                    while chunk := conn.recv(4096):
                        data += chunk
                    return data
            except OSError:
                return b""

        got: list[bytes] = []
        wait_for(lambda: got.append(answered()) or got[-1], timeout=30, what="gunicorn to answer")
        assert got[-1] == (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\n"
                           b"mine!")
    finally:
        server.terminate()
        output = server.communicate(timeout=15)[0].decode(errors="replace")
    assert "Traceback" not in output and "Error handling request" not in output, output
