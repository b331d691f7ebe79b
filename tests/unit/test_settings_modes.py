"""Settings that only one ASYNC_MODE honours are refused, naming both, when set in another.

The project's WebSocket transport (service/transport/websocket.py) is installed only in gevent
mode; in eventlet mode python-engineio serves WebSockets itself and eventlet's own server, not
gunicorn, serves HTTP (service/node/eventlet_server.py). So SEND_BUFFER_BYTES (the transport's
send buffer), CONNECT_TIMEOUT_S (the transport's join deadline and gunicorn's keepalive) and
LOG_LEVEL (gunicorn's log) have no effect there.
"""

from pathlib import Path
from types import SimpleNamespace

import pytest

from service.settings import SettingsError, load_settings
from service.settings.table import TABLE, WEBSOCKET_TRANSPORT
from service.transport import websocket

NO_DOTENV = Path("/nonexistent/.env")
MODES = ("gevent", "eventlet", "threading")
SAMPLE = {"SEND_BUFFER_BYTES": "262144", "CONNECT_TIMEOUT_S": "5.5", "LOG_LEVEL": "debug"}


def load(**env: str):
    return load_settings(env, dotenv=NO_DOTENV)


def test_the_settings_one_mode_honours():
    assert {s.name for s in TABLE if s.only_in} == set(SAMPLE)
    assert all(s.only_in.modes == ("gevent",) for s in TABLE if s.only_in)


@pytest.mark.parametrize("name", sorted(SAMPLE))
@pytest.mark.parametrize("mode", ["eventlet", "threading"])
def test_set_in_a_mode_that_ignores_it_is_refused_naming_both(name, mode):
    with pytest.raises(SettingsError) as refused:
        load(ASYNC_MODE=mode, **{name: SAMPLE[name]})
    message = str(refused.value)
    assert message.startswith(f"{name} has no effect with ASYNC_MODE={mode}")
    assert "ASYNC_MODE=gevent" in message


@pytest.mark.parametrize("name", sorted(SAMPLE))
def test_honoured_in_gevent_mode(name):
    settings = load(ASYNC_MODE="gevent", **{name: SAMPLE[name]})
    assert str(getattr(settings, name.lower())) == SAMPLE[name]


def test_unset_or_blank_they_keep_their_defaults_in_any_mode():
    for mode in MODES:
        assert load(ASYNC_MODE=mode).send_buffer_bytes == 1 << 20
        assert load(ASYNC_MODE=mode, SEND_BUFFER_BYTES="", LOG_LEVEL="").log_level == "info"


def test_the_send_buffer_rule_applies_only_where_there_is_a_send_buffer():
    """Without the project's transport a large MAX_FRAME_BYTES needs no SEND_BUFFER_BYTES (which
    could not be set there)."""
    assert load(ASYNC_MODE="eventlet", MAX_FRAME_BYTES="1048576").max_frame_bytes == 1048576
    with pytest.raises(SettingsError, match=r"SEND_BUFFER_BYTES .* MAX_FRAME_BYTES"):
        load(ASYNC_MODE="gevent", MAX_FRAME_BYTES="1048576")


@pytest.mark.parametrize("mode", MODES)
def test_the_transport_is_installed_in_the_modes_the_table_says(mode):
    eio = SimpleNamespace(async_mode=mode, ping_interval=25, ping_timeout=20,
                          max_http_buffer_size=65536, sleep=lambda seconds: None,
                          handle_request=lambda environ, start_response: None, _async={})
    installed = websocket.install(eio, send_buffer_bytes=1 << 20, connect_timeout_s=10,
                                  max_sessions=10, allowed_origins=[], spawn=lambda task: None,
                                  is_joined=lambda sid: True)
    assert installed == (mode in WEBSOCKET_TRANSPORT.modes)
