"""The rules between settings: each value passed its own setting's checks, these judge them
together. Every refusal names each setting involved."""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import urlsplit

from .errors import SettingsError
from .model import Settings
from .table import DEV_API_KEY, DEV_SECRET_KEY, TABLE, WEBSOCKET_TRANSPORT

Given = frozenset[str]  # the names of the settings the environment or `.env` set


def one_redis(settings: Settings, given: Given) -> None:
    if settings.redis_cluster_nodes and "REDIS_URL" in given:
        raise SettingsError("set REDIS_URL (one Redis) or REDIS_CLUSTER_NODES (a Redis Cluster), "
                            "not both")


def production_has_secrets_of_its_own(settings: Settings, given: Given) -> None:
    if not settings.production:
        return
    for name, value, default in (("SECRET_KEY", settings.secret_key, DEV_SECRET_KEY),
                                 ("API_KEY", settings.api_key, DEV_API_KEY)):
        if value in ("", default) or "change-me" in value.lower():
            raise SettingsError(f"{name} must be a secret of your own when ENV=production")


def production_redis_has_a_password(settings: Settings, given: Given) -> None:
    if not settings.production:
        return
    if settings.redis_cluster_nodes and not settings.redis_password:
        raise SettingsError("REDIS_PASSWORD must be set for REDIS_CLUSTER_NODES when "
                            "ENV=production")
    if (not settings.redis_cluster_nodes and settings.redis_url.startswith(("redis://", "rediss://"))
            and not urlsplit(settings.redis_url).password):
        raise SettingsError("REDIS_URL must carry a password (redis://:PASSWORD@host:6379/0) "
                            "when ENV=production")


def production_names_its_origins(settings: Settings, given: Given) -> None:
    if settings.production and "*" in settings.allowed_origins:
        raise SettingsError("ALLOWED_ORIGINS must not be * when ENV=production")


def set_only_where_honoured(settings: Settings, given: Given) -> None:
    """A setting only some ASYNC_MODEs read, set in another, would be silently ignored."""
    for setting in TABLE:
        only = setting.only_in
        if only and setting.name in given and settings.async_mode not in only.modes:
            modes = " or ".join(f"ASYNC_MODE={mode}" for mode in only.modes)
            raise SettingsError(
                f"{setting.name} has no effect with ASYNC_MODE={settings.async_mode}: it is "
                f"read only by {only.honoured_by}, with {modes}; unset {setting.name} or change "
                f"ASYNC_MODE")


def replicas_floor_within_replicas(settings: Settings, given: Given) -> None:
    if settings.ack_min_replicas > settings.ack_replicas:
        raise SettingsError(
            f"ACK_MIN_REPLICAS ({settings.ack_min_replicas}) must not exceed ACK_REPLICAS "
            f"({settings.ack_replicas}): it is the fewest of them a write may settle for")


def registry_outlasts_heartbeats(settings: Settings, given: Given) -> None:
    if settings.node_ttl_s < 2 * settings.heartbeat_interval_s:
        raise SettingsError("NODE_TTL_S must be at least twice HEARTBEAT_INTERVAL_S")


def send_buffer_holds_two_frames(settings: Settings, given: Given) -> None:
    """Only where the send buffer exists (the project's transport)."""
    if (settings.async_mode in WEBSOCKET_TRANSPORT.modes
            and settings.send_buffer_bytes < 2 * settings.max_frame_bytes):
        raise SettingsError(
            f"SEND_BUFFER_BYTES ({settings.send_buffer_bytes}) must be at least twice "
            f"MAX_FRAME_BYTES ({settings.max_frame_bytes}): a message must fit with room to spare")


def canary_deadline_spans_two_canaries(settings: Settings, given: Given) -> None:
    if settings.canary_deadline_s < 2 * settings.canary_interval_s:
        raise SettingsError("CANARY_DEADLINE_S must be at least twice CANARY_INTERVAL_S")


def hooks_are_signed(settings: Settings, given: Given) -> None:
    """A receiver must be able to tell the service's requests from anyone's."""
    for name, url in (("JOIN_HOOK_URL", settings.join_hook_url),
                      ("SEND_HOOK_URL", settings.send_hook_url),
                      ("WEBHOOK_URL", settings.webhook_url)):
        if url and not settings.hook_secret:
            raise SettingsError(f"{name} needs HOOK_SECRET: every hook and webhook request is "
                                f"signed with it")


def someone_can_connect(settings: Settings, given: Given) -> None:
    if not settings.own_accounts and not (settings.app_jwt_secret or settings.app_jwt_keys):
        raise SettingsError("OWN_ACCOUNTS=false needs APP_JWT_SECRET or APP_JWT_KEYS: without "
                            "the service's own tokens, only your app's JWTs can connect")


def app_jwt_claims_are_checkable(settings: Settings, given: Given) -> None:
    for name in ("APP_JWT_AUDIENCE", "APP_JWT_ISSUER"):
        if name in given and not (settings.app_jwt_secret or settings.app_jwt_keys):
            raise SettingsError(f"{name} checks app JWTs: set APP_JWT_SECRET or APP_JWT_KEYS "
                                f"too")


RULES: tuple[Callable[[Settings, Given], None], ...] = (
    one_redis,
    production_has_secrets_of_its_own,
    production_redis_has_a_password,
    production_names_its_origins,
    set_only_where_honoured,
    replicas_floor_within_replicas,
    registry_outlasts_heartbeats,
    send_buffer_holds_two_frames,
    canary_deadline_spans_two_canaries,
    hooks_are_signed,
    someone_can_connect,
    app_jwt_claims_are_checkable,
)


def check(settings: Settings, given: Given) -> None:
    """Raise SettingsError for the first rule `settings` break."""
    for rule in RULES:
        rule(settings, given)
