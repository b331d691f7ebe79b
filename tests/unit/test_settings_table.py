"""The declaration of the settings (service/settings/table.py): complete, documented, with
defaults its own checks accept, and every refusal naming the setting."""

import dataclasses
from pathlib import Path

import pytest

from service.settings import Settings, SettingsError, load_settings
from service.settings.parsers import Format, Integer, Number, Text
from service.settings.setting import Derived
from service.settings.table import TABLE

NO_DOTENV = Path("/nonexistent/.env")

# a value each setting refuses; the Redis credentials and the JWT claims checked take any text
BAD = {
    "ENV": "staging", "REDIS_URL": "http://redis", "REDIS_CLUSTER_NODES": "redis",
    "ACK_REPLICAS": "6", "ACK_MIN_REPLICAS": "many", "ACK_TIMEOUT_MS": "0",
    "SECRET_KEY": "short", "API_KEY": "", "BIND": "8000", "NODE_NAME": "node one",
    "NODE_URL": "node-3:5001", "ALLOWED_ORIGINS": "example.com", "ASYNC_MODE": "asyncio",
    "LOG_LEVEL": "chatty", "MAX_TEXT_CHARS": "lots", "ROOM_HISTORY_MAX": "9",
    "TOKEN_TTL_S": "1.5", "RATE_LIMIT_PER_S": "fast", "RATE_LIMIT_BURST": "-1",
    "HEARTBEAT_INTERVAL_S": "0.1", "NODE_TTL_S": "forever", "MAX_FRAME_BYTES": "1024",
    "SESSION_COOKIE_SECURE": "maybe", "DRAIN_TIMEOUT_S": "-1", "HANDOVER_SPREAD_S": "a while",
    "REDIS_LOST_GRACE_S": "7200", "PING_INTERVAL_S": "0", "PING_TIMEOUT_S": "soon",
    "WORKER_CONNECTIONS": "lots", "SEND_BUFFER_BYTES": "big", "CONNECT_TIMEOUT_S": "0",
    "OPERATORS": "al ice", "CANARY_INTERVAL_S": "often", "CANARY_DEADLINE_S": "0.1",
    "OWN_ACCOUNTS": "sometimes", "APP_JWT_SECRET": "too-short-for-hs256",
    "APP_JWT_KEYS": "/nonexistent/keys.pem",
    "APP_JWT_LEEWAY_S": "3600", "ROOMS_DEFAULT": "secret", "HOOK_SECRET": "short",
    "HOOK_TIMEOUT_S": "0", "JOIN_HOOK_URL": "ftp://app/join", "JOIN_HOOK_CACHE_S": "-1",
    "SEND_HOOK_URL": "app/send", "WEBHOOK_URL": "http://", "WEBHOOK_RETRY_S": "0",
    "WEBHOOK_BATCH_MAX": "0", "WEBHOOK_SWEEP_S": "0.5",
}
ANY_TEXT = {"REDIS_PASSWORD", "REDIS_USERNAME", "APP_JWT_AUDIENCE", "APP_JWT_ISSUER"}


def test_every_settings_attribute_is_declared_once_in_its_order():
    names = [setting.name for setting in TABLE]
    assert len(names) == len(set(names))
    assert [setting.attribute for setting in TABLE] == [
        field.name for field in dataclasses.fields(Settings)]


@pytest.mark.parametrize("setting", TABLE, ids=lambda setting: setting.name)
def test_every_setting_is_documented(setting):
    assert setting.doc.strip() and setting.parse.accepts.strip()
    assert not setting.doc.endswith(".")  # a table cell, like the others


@pytest.mark.parametrize("setting", TABLE, ids=lambda setting: setting.name)
def test_every_default_passes_its_own_checks(setting):
    """Written as the environment would give it, the default is read back unchanged; a derived
    default too, from the defaults before it."""
    defaults = {}
    for earlier in TABLE:
        defaults[earlier.attribute] = earlier.default_value(defaults)
        if earlier is setting:
            break
    value = defaults[setting.attribute]
    if value is None:
        assert setting.blank_is_default and isinstance(setting.parse, Text | Format)
        return
    assert setting.parse(setting.parse.show(value)) == value
    if isinstance(setting.parse, Integer | Number):
        assert setting.parse.low <= value <= setting.parse.high


def test_derived_defaults_follow_the_settings_they_depend_on():
    derived = {setting.name for setting in TABLE if isinstance(setting.default, Derived)}
    assert derived == {"ACK_REPLICAS", "NODE_NAME", "NODE_URL", "SESSION_COOKIE_SECURE"}
    cluster = load_settings({"REDIS_CLUSTER_NODES": "r:7000", "ENV": "test",
                             "BIND": "127.0.0.1:15009"}, dotenv=NO_DOTENV)
    assert (cluster.ack_replicas, cluster.session_cookie_secure) == (1, False)
    assert cluster.node_url == "http://127.0.0.1:15009"


def test_a_bad_value_is_known_for_every_setting_that_can_refuse_one():
    assert set(BAD) | ANY_TEXT == {setting.name for setting in TABLE}
    assert all(setting.parse == Text() for setting in TABLE if setting.name in ANY_TEXT)


@pytest.mark.parametrize(("name", "value"), sorted(BAD.items()))
def test_a_bad_value_is_refused_naming_its_setting(name, value):
    with pytest.raises(SettingsError) as refused:
        load_settings({name: value}, dotenv=NO_DOTENV)
    assert str(refused.value).startswith(f"{name} ")


@pytest.mark.parametrize("setting", TABLE, ids=lambda setting: setting.name)
def test_unset_and_blank_mean_the_default_or_are_refused(setting):
    unset = load_settings({}, dotenv=NO_DOTENV)
    if setting.blank_is_default:
        blank = load_settings({setting.name: ""}, dotenv=NO_DOTENV)
        assert getattr(blank, setting.attribute) == getattr(unset, setting.attribute)
    elif setting.name != "ALLOWED_ORIGINS":  # blank there: no origin
        with pytest.raises(SettingsError, match=setting.name):
            load_settings({setting.name: ""}, dotenv=NO_DOTENV)


def test_the_new_settings_read_by_the_servers():
    settings = load_settings({"BIND": "0.0.0.0:8000", "LOG_LEVEL": "DEBUG"}, dotenv=NO_DOTENV)
    assert (settings.bind, settings.log_level) == ("0.0.0.0:8000", "debug")
    defaults = load_settings({}, dotenv=NO_DOTENV)
    assert (defaults.bind, defaults.log_level) == ("127.0.0.1:5001", "info")
