from pathlib import Path

import pytest

from service.settings import DEV_API_KEY, DEV_SECRET_KEY, SettingsError, load_settings

NO_DOTENV = Path("/nonexistent/.env")


def load(**env: str):
    return load_settings(env, dotenv=NO_DOTENV)


def test_defaults_are_for_the_local_cluster():
    settings = load()
    assert settings.env == "development"
    assert settings.secret_key == DEV_SECRET_KEY
    assert settings.async_mode == "gevent"
    assert settings.max_text_chars == 4000
    assert "http://127.0.0.1:8080" in settings.allowed_origins


PRODUCTION = {"ENV": "production", "SECRET_KEY": "s" * 32, "API_KEY": "a" * 32,
              "REDIS_URL": "redis://:redis-password@redis:6379/0"}


@pytest.mark.parametrize("missing", ["SECRET_KEY", "API_KEY"])
def test_production_refuses_default_secrets(missing):
    env = dict(PRODUCTION)
    del env[missing]
    with pytest.raises(SettingsError, match=missing):
        load(**env)


def test_production_refuses_the_example_placeholders():
    with pytest.raises(SettingsError, match="SECRET_KEY"):
        load(**{**PRODUCTION, "SECRET_KEY": "change-me-to-a-long-random-secret"})


@pytest.mark.parametrize("url", ["redis://redis:6379/0", "redis://user@redis:6379/0"])
def test_production_refuses_redis_without_a_password(url):
    with pytest.raises(SettingsError, match="REDIS_URL must carry a password"):
        load(**{**PRODUCTION, "REDIS_URL": url})


def test_production_accepts_a_unix_socket_for_redis():
    assert load(**{**PRODUCTION, "REDIS_URL": "unix:///run/redis.sock"}).production


def test_production_accepts_real_secrets_and_secures_cookies():
    settings = load(**PRODUCTION)
    assert settings.production
    assert settings.session_cookie_secure


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("MAX_TEXT_CHARS", "lots"),
        ("MAX_TEXT_CHARS", "0"),
        ("RATE_LIMIT_PER_S", "fast"),
        ("RATE_LIMIT_BURST", "-1"),
        ("REDIS_URL", "http://redis"),
        ("NODE_NAME", "node one"),
        ("ALLOWED_ORIGINS", "example.com"),
        ("ASYNC_MODE", "asyncio"),
        ("ENV", "staging"),
        ("SESSION_COOKIE_SECURE", "maybe"),
        ("SECRET_KEY", "short"),
        ("TOKEN_TTL_S", "1.5"),
        ("PING_INTERVAL_S", "0"),
        ("PING_TIMEOUT_S", "soon"),
        ("SEND_BUFFER_BYTES", "big"),
        ("SEND_BUFFER_BYTES", "1024"),
        ("CONNECT_TIMEOUT_S", "0"),
        ("CONNECT_TIMEOUT_S", "later"),
        ("OPERATORS", "alice,x"),
        ("OPERATORS", "al ice"),
        ("CANARY_INTERVAL_S", "often"),
        ("CANARY_INTERVAL_S", "0"),
        ("CANARY_DEADLINE_S", "0.1"),
        ("HANDOVER_SPREAD_S", "-1"),
        ("HANDOVER_SPREAD_S", "a while"),
        ("REDIS_LOST_GRACE_S", "0"),
        ("REDIS_LOST_GRACE_S", "7200"),
        ("ACK_MIN_REPLICAS", "-1"),
        ("NODE_URL", "node-3:5001"),
        ("NODE_URL", "http://node-3/readyz"),
    ],
)
def test_bad_values_name_the_setting(name, value):
    with pytest.raises(SettingsError, match=name):
        load(**{name: value})


def test_the_send_buffer_must_hold_two_of_the_largest_messages():
    with pytest.raises(SettingsError, match=r"SEND_BUFFER_BYTES .* MAX_FRAME_BYTES"):
        load(MAX_FRAME_BYTES="1048576", SEND_BUFFER_BYTES="1048576")
    settings = load(MAX_FRAME_BYTES="65536", SEND_BUFFER_BYTES="131072", CONNECT_TIMEOUT_S="2.5")
    assert (settings.send_buffer_bytes, settings.connect_timeout_s) == (131072, 2.5)


def test_operators_and_the_canary():
    settings = load(OPERATORS=" alice, bob.b ,", CANARY_INTERVAL_S="0.5", CANARY_DEADLINE_S="2")
    assert settings.operators == {"alice", "bob.b"}
    assert (settings.canary_interval_s, settings.canary_deadline_s) == (0.5, 2)
    assert load().operators == frozenset()
    with pytest.raises(SettingsError, match="CANARY_DEADLINE_S must be at least twice"):
        load(CANARY_INTERVAL_S="2", CANARY_DEADLINE_S="3")


def test_without_node_name_a_node_is_named_after_its_host(monkeypatch):
    monkeypatch.setattr("socket.gethostname", lambda: "rooms-node-7f3a")
    assert load().node_name == "rooms-node-7f3a"
    monkeypatch.setattr("socket.gethostname", lambda: "pod name/with:odd chars")
    assert load().node_name == "pod-name-with-odd-chars"


def test_node_ttl_must_outlast_heartbeats():
    with pytest.raises(SettingsError, match="NODE_TTL_S"):
        load(HEARTBEAT_INTERVAL_S="5", NODE_TTL_S="6")


def test_dotenv_is_read_and_environment_wins(tmp_path):
    dotenv = tmp_path / ".env"
    dotenv.write_text(
        "# comment\nNODE_NAME=from-file\nexport MAX_TEXT_CHARS='123'\n"
        "API_KEY=\"k" + "x" * 20 + "\"\n"
    )
    settings = load_settings({"NODE_NAME": "from-env"}, dotenv=dotenv)
    assert settings.node_name == "from-env"
    assert settings.max_text_chars == 123
    assert settings.api_key == "k" + "x" * 20
    assert settings.api_key != DEV_API_KEY


def test_malformed_dotenv_line_is_reported(tmp_path):
    dotenv = tmp_path / ".env"
    dotenv.write_text("NODE_NAME\n")
    with pytest.raises(SettingsError, match=r"\.env:1"):
        load_settings({}, dotenv=dotenv)


def test_origins_are_split_and_trimmed():
    settings = load(ALLOWED_ORIGINS="https://a.example, http://b.example:8080/")
    assert settings.allowed_origins == ("https://a.example", "http://b.example:8080")


def test_a_redis_cluster_is_named_by_its_seeds():
    settings = load(REDIS_CLUSTER_NODES="10.0.0.1:7000, redis-2:7001", REDIS_PASSWORD="pw")
    target = settings.redis_target
    assert target.cluster and target.cluster_nodes == (("10.0.0.1", 7000), ("redis-2", 7001))
    assert target.password == "pw"
    assert settings.ack_replicas == 1  # a cluster's writes wait for a replica by default
    assert "pw" not in target.describe()
    assert load().ack_replicas == 0 and not load().redis_target.cluster


@pytest.mark.parametrize(("env", "named"), [
    ({"REDIS_CLUSTER_NODES": "10.0.0.1"}, "REDIS_CLUSTER_NODES"),
    ({"REDIS_CLUSTER_NODES": "host:99999"}, "REDIS_CLUSTER_NODES"),
    ({"REDIS_CLUSTER_NODES": "a:1,,b:2"}, "REDIS_CLUSTER_NODES"),
    ({"REDIS_CLUSTER_NODES": "a:1", "REDIS_URL": "redis://x:6379/0"}, "not both"),
    ({"ACK_REPLICAS": "-1"}, "ACK_REPLICAS"),
    ({"ACK_REPLICAS": "many"}, "ACK_REPLICAS"),
    ({"ACK_TIMEOUT_MS": "0"}, "ACK_TIMEOUT_MS"),
])
def test_bad_redis_settings_name_the_setting(env, named):
    with pytest.raises(SettingsError, match=named):
        load(**env)


def test_production_needs_a_password_for_a_cluster():
    env = {key: value for key, value in PRODUCTION.items() if key != "REDIS_URL"}
    with pytest.raises(SettingsError, match="REDIS_PASSWORD"):
        load(**env, REDIS_CLUSTER_NODES="redis:7000")
    assert load(**env, REDIS_CLUSTER_NODES="redis:7000", REDIS_PASSWORD="secret").production


def test_staying_up_settings():
    settings = load(HANDOVER_SPREAD_S="2.5", REDIS_LOST_GRACE_S="4", NODE_URL="http://10.1.2.3:8000/",
                    REDIS_CLUSTER_NODES="r:7000", ACK_REPLICAS="2", ACK_MIN_REPLICAS="1")
    assert (settings.handover_spread_s, settings.redis_lost_grace_s) == (2.5, 4)
    assert settings.node_url == "http://10.1.2.3:8000"
    assert (settings.ack_replicas, settings.ack_min_replicas) == (2, 1)
    defaults = load()
    assert (defaults.handover_spread_s, defaults.redis_lost_grace_s) == (5, 10)
    assert defaults.ack_min_replicas == 0  # writes go on with the replicas there are
    with pytest.raises(SettingsError, match=r"ACK_MIN_REPLICAS \(2\) must not exceed ACK_REPLICAS"):
        load(REDIS_CLUSTER_NODES="r:7000", ACK_MIN_REPLICAS="2")


def test_peers_reach_a_node_where_it_listens(monkeypatch):
    assert load(BIND="127.0.0.1:15003").node_url == "http://127.0.0.1:15003"
    monkeypatch.setattr("socket.gethostname", lambda: "localhost")
    assert load(BIND="0.0.0.0:8000").node_url == "http://127.0.0.1:8000"


def test_app_settings_are_refused_where_they_cannot_work(tmp_path):
    secret = "s" * 32
    with pytest.raises(SettingsError, match="WEBHOOK_URL needs HOOK_SECRET"):
        load(WEBHOOK_URL="http://app.example/hooks")
    with pytest.raises(SettingsError, match="SEND_HOOK_URL needs HOOK_SECRET"):
        load(SEND_HOOK_URL="https://app.example/send")
    with pytest.raises(SettingsError, match="OWN_ACCOUNTS=false needs APP_JWT_SECRET"):
        load(OWN_ACCOUNTS="false")
    with pytest.raises(SettingsError, match="APP_JWT_AUDIENCE checks app JWTs"):
        load(APP_JWT_AUDIENCE="rooms")
    keys = tmp_path / "keys.pem"
    keys.write_text("-----BEGIN PUBLIC KEY-----\n")
    settings = load(OWN_ACCOUNTS="false", APP_JWT_KEYS=str(keys), APP_JWT_ISSUER="app",
                    APP_JWT_SECRET=secret, HOOK_SECRET="h" * 16,
                    JOIN_HOOK_URL="http://127.0.0.1:9/join", ROOMS_DEFAULT="private")
    assert (settings.own_accounts, settings.app_jwt_keys, settings.app_jwt_issuer) == (
        False, str(keys), "app")
    assert (settings.join_hook_url, settings.join_hook_cache_s, settings.rooms_default) == (
        "http://127.0.0.1:9/join", 60, "private")
    assert (settings.hook_timeout_s, settings.webhook_retry_s) == (2.0, 86_400)
