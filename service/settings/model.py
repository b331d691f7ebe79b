"""What the settings are once loaded: the values every part of a node reads."""

from __future__ import annotations

from dataclasses import dataclass

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
    """One attribute per setting of the table (table.py), named after it in lower case; their
    defaults, ranges and meanings are declared there only. Built by `load_settings`, which
    guarantees every value passed its setting's checks and the rules between settings
    (rules.py)."""

    env: str
    redis_url: str
    redis_cluster_nodes: tuple[Address, ...]
    redis_password: str | None
    redis_username: str | None
    ack_replicas: int
    ack_min_replicas: int
    ack_timeout_ms: int
    secret_key: str
    api_key: str
    bind: str
    node_name: str
    node_url: str
    allowed_origins: tuple[str, ...]
    async_mode: str
    log_level: str
    max_text_chars: int
    room_history_max: int
    token_ttl_s: int
    rate_limit_per_s: float
    rate_limit_burst: int
    heartbeat_interval_s: float
    node_ttl_s: float
    max_frame_bytes: int
    session_cookie_secure: bool
    drain_timeout_s: float
    handover_spread_s: float
    redis_lost_grace_s: float
    ping_interval_s: int
    ping_timeout_s: int
    worker_connections: int
    send_buffer_bytes: int
    connect_timeout_s: float
    operators: frozenset[str]
    canary_interval_s: float
    canary_deadline_s: float
    own_accounts: bool
    app_jwt_secret: str | None
    app_jwt_keys: str | None
    app_jwt_audience: str | None
    app_jwt_issuer: str | None
    app_jwt_leeway_s: int
    rooms_default: str
    hook_secret: str | None
    hook_timeout_s: float
    join_hook_url: str | None
    join_hook_cache_s: int
    send_hook_url: str | None
    webhook_url: str | None
    webhook_retry_s: int
    webhook_batch_max: int
    webhook_sweep_s: float

    @property
    def production(self) -> bool:
        return self.env == "production"

    @property
    def app_jwts(self) -> bool:
        """Whether connections may bring an app's JWTs (APP_JWT_SECRET or APP_JWT_KEYS set):
        then any user name is a user, with or without an account here."""
        return bool(self.app_jwt_secret or self.app_jwt_keys)

    @property
    def redis_target(self) -> RedisTarget:
        if self.redis_cluster_nodes:
            return RedisTarget(cluster_nodes=self.redis_cluster_nodes,
                               username=self.redis_username, password=self.redis_password)
        return RedisTarget(url=self.redis_url)
