"""Settings from environment variables and an optional `.env` file, checked at start.

Every problem raises `SettingsError` whose message names the setting, so a node refuses to start
with a sentence a person can act on instead of failing later on a bad value.
"""

from __future__ import annotations

import os
import re
import socket
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from .primitives.names import USERNAME

DEV_SECRET_KEY = "dev-secret-key-change-me"  # noqa: S105 - a marker, refused in production
DEV_API_KEY = "dev-api-key-change-me"
NODE_NAME_PATTERN = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


class SettingsError(ValueError):
    """A setting is missing or invalid; the message names it."""


Address = tuple[str, int]


@dataclass(frozen=True)
class RedisTarget:
    """What the settings say about Redis: one server's URL, or a Redis Cluster's seeds."""

    url: str | None = None
    cluster_nodes: tuple[Address, ...] = ()
    username: str | None = None
    password: str | None = None

    @property
    def cluster(self) -> bool:
        return bool(self.cluster_nodes)

    @property
    def setting(self) -> str:
        return "REDIS_CLUSTER_NODES" if self.cluster else "REDIS_URL"

    def describe(self) -> str:
        """Where Redis is, without credentials (for logs)."""
        if self.cluster:
            return "cluster " + ",".join(f"{host}:{port}" for host, port in self.cluster_nodes)
        return (self.url or "").split("@")[-1]


@dataclass(frozen=True)
class Settings:
    env: str = "development"
    redis_url: str = "redis://127.0.0.1:6379/0"
    redis_cluster_nodes: tuple[Address, ...] = ()
    redis_username: str | None = None
    redis_password: str | None = None
    ack_replicas: int = 0
    ack_min_replicas: int = 0
    ack_timeout_ms: int = 500
    secret_key: str = DEV_SECRET_KEY
    api_key: str = DEV_API_KEY
    node_name: str = "node-1"
    allowed_origins: tuple[str, ...] = ("http://127.0.0.1:8080", "http://localhost:8080")
    async_mode: str = "gevent"
    max_text_chars: int = 4000
    room_history_max: int = 10000
    token_ttl_s: int = 12 * 3600
    rate_limit_per_s: float = 20.0
    rate_limit_burst: int = 60
    heartbeat_interval_s: float = 2.0
    node_ttl_s: float = 10.0
    drain_timeout_s: float = 5.0
    handover_spread_s: float = 5.0
    redis_lost_grace_s: float = 10.0
    node_url: str = "http://127.0.0.1:5001"
    session_cookie_secure: bool = False
    max_frame_bytes: int = 64 * 1024
    ping_interval_s: int = 25
    ping_timeout_s: int = 20
    send_buffer_bytes: int = 1 << 20
    connect_timeout_s: float = 10.0
    worker_connections: int = 10000
    operators: frozenset[str] = frozenset()
    canary_interval_s: float = 1.0
    canary_deadline_s: float = 5.0

    @property
    def production(self) -> bool:
        return self.env == "production"

    @property
    def redis_target(self) -> RedisTarget:
        if self.redis_cluster_nodes:
            return RedisTarget(cluster_nodes=self.redis_cluster_nodes,
                               username=self.redis_username, password=self.redis_password)
        return RedisTarget(url=self.redis_url)


def read_dotenv(path: Path) -> dict[str, str]:
    """Parse KEY=VALUE lines; `#` starts a comment line; values may be quoted."""
    values: dict[str, str] = {}
    for number, raw in enumerate(path.read_text().splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("export "):
            line = line[len("export ") :]
        key, sep, value = line.partition("=")
        if not sep or not key.strip():
            raise SettingsError(f"{path}:{number}: expected KEY=VALUE")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[key.strip()] = value
    return values


def _int(source: dict[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = source.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name} must be an integer, got {raw!r}") from None
    if not low <= value <= high:
        raise SettingsError(f"{name} must be between {low} and {high}, got {value}")
    return value


def _float(source: dict[str, str], name: str, default: float, low: float, high: float) -> float:
    raw = source.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a number, got {raw!r}") from None
    if not low <= value <= high:
        raise SettingsError(f"{name} must be between {low} and {high}, got {value}")
    return value


def _bool(source: dict[str, str], name: str, default: bool) -> bool:
    raw = source.get(name)
    if raw is None or raw == "":
        return default
    lowered = raw.lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise SettingsError(f"{name} must be true or false, got {raw!r}")


def _addresses(source: dict[str, str], name: str) -> tuple[Address, ...]:
    """`host:port,host:port` as addresses; empty when unset."""
    raw = source.get(name, "").strip()
    if not raw:
        return ()
    addresses = []
    for part in raw.split(","):
        host, sep, port = part.strip().rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise SettingsError(f"{name} must be host:port entries separated by commas, "
                                f"got {part.strip()!r}")
        addresses.append((host, int(port)))
    return tuple(addresses)


def _usernames(source: dict[str, str], name: str) -> frozenset[str]:
    """`alice,bob` as a set of usernames; empty when unset."""
    names = [part.strip() for part in source.get(name, "").split(",") if part.strip()]
    for username in names:
        if not USERNAME.fullmatch(username):
            raise SettingsError(f"{name} must be usernames (3-32 characters of A-Za-z0-9_.-) "
                                f"separated by commas, got {username!r}")
    return frozenset(names)


def default_node_url(bind: str) -> str:
    """How peers reach this node, from where it listens (BIND): a wildcard address becomes the
    address the host's name resolves to (a container's or pod's own)."""
    host, _, port = bind.rpartition(":")
    host = host.strip("[]")
    if host in ("", "0.0.0.0", "::"):  # noqa: S104 - read, not bound
        try:
            host = socket.gethostbyname(socket.gethostname())
        except OSError:
            host = "127.0.0.1"
    return f"http://{host}:{port}"


def default_node_name() -> str:
    """The host's name made a valid node name (a container's or pod's name is unique)."""
    name = re.sub(r"[^A-Za-z0-9_.-]", "-", socket.gethostname())[:64]
    return name or Settings.node_name


def load_settings(environ: dict[str, str] | None = None, dotenv: Path | None = None) -> Settings:
    """Build Settings from `.env` (if present) overlaid by the process environment."""
    environ = dict(os.environ if environ is None else environ)
    dotenv = dotenv or Path(environ.get("DOTENV_PATH", ".env"))
    source: dict[str, str] = read_dotenv(dotenv) if dotenv.is_file() else {}
    source.update(environ)

    env = source.get("ENV", "development")
    if env not in ("development", "production", "test"):
        raise SettingsError(f"ENV must be development, test or production, got {env!r}")

    redis_url = source.get("REDIS_URL") or Settings.redis_url
    if not redis_url.startswith(("redis://", "rediss://", "unix://")):
        raise SettingsError(
            f"REDIS_URL must start with redis://, rediss:// or unix://: {redis_url!r}"
        )
    cluster_nodes = _addresses(source, "REDIS_CLUSTER_NODES")
    if cluster_nodes and source.get("REDIS_URL"):
        raise SettingsError("set REDIS_URL (one Redis) or REDIS_CLUSTER_NODES (a Redis Cluster), "
                            "not both")
    redis_password = source.get("REDIS_PASSWORD") or None
    default_replicas = 1 if cluster_nodes else 0

    secret_key = source.get("SECRET_KEY", DEV_SECRET_KEY)
    api_key = source.get("API_KEY", DEV_API_KEY)
    if env == "production":
        for name, value, default in (
            ("SECRET_KEY", secret_key, DEV_SECRET_KEY),
            ("API_KEY", api_key, DEV_API_KEY),
        ):
            if value in ("", default) or "change-me" in value.lower():
                raise SettingsError(f"{name} must be a secret of your own when ENV=production")
        if cluster_nodes and not redis_password:
            raise SettingsError("REDIS_PASSWORD must be set for REDIS_CLUSTER_NODES when "
                                "ENV=production")
        if (not cluster_nodes and redis_url.startswith(("redis://", "rediss://"))
                and not urlsplit(redis_url).password):
            raise SettingsError("REDIS_URL must carry a password (redis://:PASSWORD@host:6379/0) "
                                "when ENV=production")
    if len(secret_key) < 16:
        raise SettingsError("SECRET_KEY must be at least 16 characters")
    if len(api_key) < 16:
        raise SettingsError("API_KEY must be at least 16 characters")

    # unset: the host's name, so replicas of one compose service or Kubernetes pods differ
    node_name = source.get("NODE_NAME") or default_node_name()
    if not NODE_NAME_PATTERN.match(node_name):
        raise SettingsError(f"NODE_NAME must be 1-64 characters of A-Za-z0-9_.-, got {node_name!r}")

    origins_raw = source.get("ALLOWED_ORIGINS")
    if origins_raw is None:
        origins = Settings.allowed_origins
    else:
        origins = tuple(o.strip().rstrip("/") for o in origins_raw.split(",") if o.strip())
        for origin in origins:
            if origin != "*" and not re.match(r"^https?://[^/\s]+$", origin):
                raise SettingsError(
                    f"ALLOWED_ORIGINS entries must look like http(s)://host[:port], got {origin!r}"
                )
        if "*" in origins and env == "production":
            raise SettingsError("ALLOWED_ORIGINS must not be * when ENV=production")

    async_mode = source.get("ASYNC_MODE", "gevent")
    if async_mode not in ("gevent", "eventlet", "threading"):
        raise SettingsError(f"ASYNC_MODE must be gevent, eventlet or threading, got {async_mode!r}")

    heartbeat = _float(source, "HEARTBEAT_INTERVAL_S", Settings.heartbeat_interval_s, 0.2, 60)
    node_ttl = _float(source, "NODE_TTL_S", Settings.node_ttl_s, 1, 600)
    drain_timeout = _float(source, "DRAIN_TIMEOUT_S", Settings.drain_timeout_s, 0, 60)
    handover_spread = _float(source, "HANDOVER_SPREAD_S", Settings.handover_spread_s, 0, 120)
    redis_lost_grace = _float(source, "REDIS_LOST_GRACE_S", Settings.redis_lost_grace_s, 1,
                              3600)
    ack_replicas = _int(source, "ACK_REPLICAS", default_replicas, 0, 5)
    ack_min_replicas = _int(source, "ACK_MIN_REPLICAS", 0, 0, 5)
    if ack_min_replicas > ack_replicas:
        raise SettingsError(f"ACK_MIN_REPLICAS ({ack_min_replicas}) must not exceed ACK_REPLICAS "
                            f"({ack_replicas}): it is the fewest of them a write may settle for")
    node_url = (source.get("NODE_URL") or default_node_url(
        source.get("BIND") or "127.0.0.1:5001")).rstrip("/")
    if not re.match(r"^https?://[^/\s]+:\d{1,5}$", node_url):
        raise SettingsError(f"NODE_URL must look like http(s)://host:port (how the other nodes "
                            f"reach this one), got {node_url!r}")
    if node_ttl < 2 * heartbeat:
        raise SettingsError("NODE_TTL_S must be at least twice HEARTBEAT_INTERVAL_S")
    max_frame = _int(source, "MAX_FRAME_BYTES", Settings.max_frame_bytes, 4096, 16 << 20)
    send_buffer = _int(source, "SEND_BUFFER_BYTES", Settings.send_buffer_bytes, 16 << 10, 1 << 30)
    if send_buffer < 2 * max_frame:
        raise SettingsError(f"SEND_BUFFER_BYTES ({send_buffer}) must be at least twice "
                            f"MAX_FRAME_BYTES ({max_frame}): a message must fit with room to spare")

    canary_interval = _float(source, "CANARY_INTERVAL_S", Settings.canary_interval_s, 0.1, 60)
    canary_deadline = _float(source, "CANARY_DEADLINE_S", Settings.canary_deadline_s, 0.5, 600)
    if canary_deadline < 2 * canary_interval:
        raise SettingsError("CANARY_DEADLINE_S must be at least twice CANARY_INTERVAL_S")

    return Settings(
        env=env,
        redis_url=redis_url,
        redis_cluster_nodes=cluster_nodes,
        redis_username=source.get("REDIS_USERNAME") or None,
        redis_password=redis_password,
        ack_replicas=ack_replicas,
        ack_min_replicas=ack_min_replicas,
        ack_timeout_ms=_int(source, "ACK_TIMEOUT_MS", Settings.ack_timeout_ms, 1, 60_000),
        secret_key=secret_key,
        api_key=api_key,
        node_name=node_name,
        allowed_origins=origins,
        async_mode=async_mode,
        max_text_chars=_int(source, "MAX_TEXT_CHARS", Settings.max_text_chars, 1, 100_000),
        room_history_max=_int(
            source, "ROOM_HISTORY_MAX", Settings.room_history_max, 10, 10_000_000
        ),
        token_ttl_s=_int(source, "TOKEN_TTL_S", Settings.token_ttl_s, 1, 90 * 24 * 3600),
        rate_limit_per_s=_float(
            source, "RATE_LIMIT_PER_S", Settings.rate_limit_per_s, 0.1, 100_000
        ),
        rate_limit_burst=_int(source, "RATE_LIMIT_BURST", Settings.rate_limit_burst, 1, 1_000_000),
        heartbeat_interval_s=heartbeat,
        node_ttl_s=node_ttl,
        drain_timeout_s=drain_timeout,
        handover_spread_s=handover_spread,
        redis_lost_grace_s=redis_lost_grace,
        node_url=node_url,
        session_cookie_secure=_bool(source, "SESSION_COOKIE_SECURE", env == "production"),
        max_frame_bytes=max_frame,
        send_buffer_bytes=send_buffer,
        connect_timeout_s=_float(source, "CONNECT_TIMEOUT_S", Settings.connect_timeout_s, 1, 600),
        worker_connections=_int(source, "WORKER_CONNECTIONS", Settings.worker_connections, 1,
                                10_000_000),
        ping_interval_s=_int(source, "PING_INTERVAL_S", Settings.ping_interval_s, 1, 600),
        ping_timeout_s=_int(source, "PING_TIMEOUT_S", Settings.ping_timeout_s, 1, 600),
        operators=_usernames(source, "OPERATORS"),
        canary_interval_s=canary_interval,
        canary_deadline_s=canary_deadline,
    )
