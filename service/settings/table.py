"""Every setting of a node, declared once: name, parser (type and range), default, meaning.

The order is the settings table's (docs/operating.md, generated from here) and the order of
reading: a derived default sees the settings above it.
"""

from __future__ import annotations

from typing import Any

from . import host
from .parsers import (
    Boolean,
    Choice,
    Format,
    Integer,
    Number,
    Text,
    addresses,
    bind,
    http_url,
    node_name,
    node_url,
    origins,
    readable_file,
    redis_url,
    show_addresses,
    show_words,
    usernames,
)
from .setting import Derived, OnlyIn, Setting

DEV_SECRET_KEY = "dev-secret-key-change-me"  # noqa: S105 - a marker, refused in production
DEV_API_KEY = "dev-api-key-change-me"

# service/app.py installs the project's WebSocket transport only in gevent mode
# (websocket.install); eventlet mode keeps python-engineio's own, and its server is not gunicorn.
WEBSOCKET_TRANSPORT = OnlyIn(("gevent",), "the project's WebSocket transport")
GUNICORN = OnlyIn(("gevent",), "gunicorn")
WEBSOCKET_TRANSPORT_AND_GUNICORN = OnlyIn(("gevent",),
                                          "the project's WebSocket transport and gunicorn")

TABLE: tuple[Setting[Any], ...] = (
    Setting("ENV", Choice(("development", "test", "production")), "development",
            "`production` refuses the development `SECRET_KEY`/`API_KEY`, a Redis without a "
            "password and `ALLOWED_ORIGINS=*`, and sets Secure cookies",
            blank_is_default=False),
    Setting("REDIS_URL", Format(redis_url, "`redis://`, `rediss://` or `unix://` URL"),
            "redis://127.0.0.1:6379/0",
            "one Redis (7.0 or newer) for bus, store and sessions, with its credentials "
            "(`redis://:PASSWORD@host:6379/0`)"),
    Setting("REDIS_CLUSTER_NODES",
            Format(addresses, "`host:port`, comma-separated", show_addresses), (),
            "a Redis Cluster instead: its seeds (any of its servers); not with `REDIS_URL`"),
    Setting("REDIS_PASSWORD", Text(), None,
            "a Redis Cluster's password (one Redis takes it in `REDIS_URL`)"),
    Setting("REDIS_USERNAME", Text(), None,
            "a Redis Cluster's user name (one Redis takes it in `REDIS_URL`)"),
    Setting("ACK_REPLICAS", Integer(0, 5),
            Derived(lambda earlier: 1 if earlier["redis_cluster_nodes"] else 0,
                    "1 on a Redis Cluster, else 0"),
            "replicas that must have a message before `send`/`direct` acknowledge it (Redis "
            "`WAIT`), of those in sync: with fewer in sync, the master's writes are acknowledged "
            "after those there are (degraded, shown); 0 turns it off"),
    Setting("ACK_MIN_REPLICAS", Integer(0, 5), 0,
            "the fewest replicas in sync a master may take writes with; below it `send`/`direct` "
            "are refused (`unavailable`). `ACK_REPLICAS` gives Kafka's `min.insync.replicas` "
            "behaviour: no write with fewer copies, and no writes while a replica is missing. "
            "At most `ACK_REPLICAS`"),
    Setting("ACK_TIMEOUT_MS", Integer(1, 60_000), 500,
            "how long a write waits for its replicas (`ACK_REPLICAS`) before answering "
            "`unavailable`"),
    Setting("SECRET_KEY", Text(min_length=16), DEV_SECRET_KEY, "signs tokens and sessions",
            default_doc="development value", blank_is_default=False),
    Setting("API_KEY", Text(min_length=16), DEV_API_KEY,
            "bearer key of the HTTP publish API (and of `/metrics` through the front door)",
            default_doc="development value", blank_is_default=False),
    Setting("BIND", Format(bind, "`host:port`"), "127.0.0.1:5001",
            "where the node serves HTTP and Socket.IO (gunicorn's or eventlet's server); "
            "`0.0.0.0` listens on every address"),
    Setting("NODE_NAME", Format(node_name, "1-64 characters of `A-Za-z0-9_.-`"),
            Derived(lambda earlier: host.default_node_name(), "the host's name"),
            "this node's name (`make run` sets node-1, node-2, …; a compose replica or a "
            "Kubernetes pod is named after its container or pod)"),
    Setting("NODE_URL", Format(node_url, "`http(s)://host:port`"),
            Derived(lambda earlier: host.default_node_url(earlier["bind"]),
                    "`http://<BIND's address>:<port>` (a wildcard address: the host's own)"),
            "where the other nodes reach this one's HTTP (they ask each other whether they "
            "reach Redis)"),
    Setting("ALLOWED_ORIGINS",
            Format(origins, "`http(s)://host[:port]`, comma-separated; `*`: any (not in "
                   "production)", show_words),
            ("http://127.0.0.1:8080", "http://localhost:8080"),
            "browser origins allowed to connect (set but empty: none)", blank_is_default=False),
    Setting("ASYNC_MODE", Choice(("gevent", "eventlet", "threading")), "gevent",
            "`gevent`: under gunicorn, the recommended mode; `eventlet`: set by "
            "`python -m service.node.eventlet_server` "
            "([internals.md](internals.md#eventlet-mode)); `threading`: tests only",
            blank_is_default=False),
    Setting("LOG_LEVEL", Choice(("debug", "info", "warning", "error", "critical"),
                                fold_case=True), "info",
            "gunicorn's own log lines (the node's are always at info)", only_in=GUNICORN),
    Setting("MAX_TEXT_CHARS", Integer(1, 100_000), 4000, "longest message text"),
    Setting("ROOM_HISTORY_MAX", Integer(10, 10_000_000), 10000, "messages kept per room"),
    Setting("TOKEN_TTL_S", Integer(1, 90 * 24 * 3600), 12 * 3600, "token lifetime"),
    Setting("RATE_LIMIT_PER_S", Number(0.1, 100_000), 20.0,
            "events per second one connection may send, on average"),
    Setting("RATE_LIMIT_BURST", Integer(1, 1_000_000), 60,
            "events one connection may send in a burst (its token bucket's size)"),
    Setting("HEARTBEAT_INTERVAL_S", Number(0.2, 60), 2.0,
            "how often a node renews its entry in the node registry"),
    Setting("NODE_TTL_S", Number(1, 600), 10.0,
            "how long a node stays in the registry after its last heartbeat (at least twice "
            "`HEARTBEAT_INTERVAL_S`)"),
    Setting("MAX_FRAME_BYTES", Integer(4096, 16 << 20), 64 * 1024,
            "largest Socket.IO packet or HTTP body"),
    Setting("SESSION_COOKIE_SECURE", Boolean(),
            Derived(lambda earlier: earlier["env"] == "production", "off (on in production)"),
            "Secure flag of the session cookie"),
    Setting("DRAIN_TIMEOUT_S", Number(0, 60), 5.0,
            "on SIGTERM, how long a connection's event in flight may take before the connection "
            "is handed over anyway"),
    Setting("HANDOVER_SPREAD_S", Number(0, 120), 5.0,
            "a node that drains or is cut off from Redis ends its connections spread over this "
            "(0: all at once), so their reconnections reach the other nodes evenly"),
    Setting("REDIS_LOST_GRACE_S", Number(1, 3600), 10.0,
            "a node that has not reached Redis this long, while another node does, hands its "
            "connections over"),
    Setting("PING_INTERVAL_S", Integer(1, 600), 25, "how often Engine.IO pings a client"),
    Setting("PING_TIMEOUT_S", Integer(1, 600), 20,
            "a client that leaves a ping unanswered past this is cut off"),
    Setting("WORKER_CONNECTIONS", Integer(1, 10_000_000), 10000,
            "connections one node serves: requests in progress (gunicorn) and WebSocket "
            "sessions (a new one past it is answered 503), or under eventlet the connections "
            "its server serves at once; the node raises its open-file limit to match (the hard "
            "limit too where it may)"),
    Setting("SEND_BUFFER_BYTES", Integer(16 << 10, 1 << 30), 1 << 20,
            "unsent bytes one WebSocket may hold before the node disconnects it (a client that "
            "stopped reading); at least twice `MAX_FRAME_BYTES`",
            only_in=WEBSOCKET_TRANSPORT),
    Setting("CONNECT_TIMEOUT_S", Number(1, 600), 10.0,
            "a request's headers must arrive, and a WebSocket must join Socket.IO, within this; "
            "else the node cuts it off", only_in=WEBSOCKET_TRANSPORT_AND_GUNICORN),
    Setting("OPERATORS", Format(usernames, "usernames, comma-separated", show_words),
            frozenset(), "who may open the cluster page `/admin`", default_doc="none"),
    Setting("CANARY_INTERVAL_S", Number(0.1, 60), 1.0,
            "how often a node sends its delivery canary "
            "([the delivery canary](#the-delivery-canary))"),
    Setting("CANARY_DEADLINE_S", Number(0.5, 600), 5.0,
            "how long a node may go without hearing its own canary before it is not ready and "
            "reconnects its bus (at least twice `CANARY_INTERVAL_S`)"),
    Setting("OWN_ACCOUNTS", Boolean(), True,
            "the service's own registration, tokens and log-in page; `false` turns them off "
            "(404) for an app that brings every user with its JWTs "
            "([your app on top](using.md#your-app-on-top))"),
    Setting("APP_JWT_SECRET", Text(min_length=32), None,
            "HS256 secret shared with your app's backend: `auth {token}` and `refresh` also take "
            "the JWTs it signs", default_doc="none"),
    Setting("APP_JWT_KEYS", Format(readable_file, "path to a PEM public key or a JWKS file"),
            None, "public keys of your app's RS256 / ES256 JWTs (a JWT's `kid` picks a JWKS "
            "key)"),
    Setting("APP_JWT_AUDIENCE", Text(), None,
            "when set, an app JWT's `aud` must name it"),
    Setting("APP_JWT_ISSUER", Text(), None,
            "when set, an app JWT's `iss` must be it"),
    Setting("APP_JWT_LEEWAY_S", Integer(0, 300), 5,
            "clock skew allowed when checking an app JWT's `exp`, `nbf` and `iat`"),
    Setting("ROOMS_DEFAULT", Choice(("public", "private")), "public",
            "whether a room nobody configured (`PUT /api/rooms/{room}`) is public or private"),
    Setting("HOOK_SECRET", Text(min_length=16), None,
            "signs every hook and webhook request (`X-Rooms-Signature`); required with any of "
            "them", default_doc="none"),
    Setting("HOOK_TIMEOUT_S", Number(0.1, 60), 2.0,
            "how long a hook may take to answer before the event fails with `unavailable`"),
    Setting("JOIN_HOOK_URL", Format(http_url, "http(s) URL"), None,
            "asked whether a user may join a private room that neither membership nor the "
            "token admits"),
    Setting("JOIN_HOOK_CACHE_S", Integer(0, 86_400), 60,
            "how long a join hook's `allow: true` for a user and room is remembered (0: never)"),
    Setting("SEND_HOOK_URL", Format(http_url, "http(s) URL"), None,
            "asked before every `send` and `direct` is stored: may refuse it or replace its "
            "text"),
    Setting("WEBHOOK_URL", Format(http_url, "http(s) URL"), None,
            "receives batches of what happened (messages, direct messages, presence, "
            "membership), at least once"),
    Setting("WEBHOOK_RETRY_S", Integer(1, 30 * 86_400), 86_400,
            "how long an event is retried before it is dropped (and counted)"),
    Setting("WEBHOOK_BATCH_MAX", Integer(1, 10_000), 100, "most events in one webhook request"),
    Setting("WEBHOOK_SWEEP_S", Number(1, 3600), 60.0,
            "how often one node looks for rooms and inboxes with undelivered webhook events that "
            "a crash left out of the index (they are delivered that much later, never lost)"),
)

BY_NAME: dict[str, Setting[Any]] = {setting.name: setting for setting in TABLE}
