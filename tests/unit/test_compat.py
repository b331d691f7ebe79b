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
