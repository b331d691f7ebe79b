"""gunicorn settings for one node: one gevent worker (gunicorn's own balancing is not sticky).

What can be configured comes from the node's settings (service/settings), loaded once here, in
gunicorn's master, before it forks the worker: a bad value stops gunicorn with "configuration
error: ..." naming the setting, and a non-zero exit, instead of a traceback.
"""

import resource

from service.settings import Settings, SettingsError, load_settings


def _settings() -> Settings:
    try:
        settings = load_settings()
    except SettingsError as error:
        raise SystemExit(f"configuration error: {error}") from None
    if settings.async_mode == "eventlet":
        raise SystemExit("configuration error: ASYNC_MODE=eventlet is served by "
                         "`python -m service.node.eventlet_server`, not by gunicorn")
    return settings


settings = _settings()
bind = settings.bind
worker_class = "gevent"
workers = 1
timeout = 60
worker_connections = settings.worker_connections
# draining waits for events in flight and spreads the hand-over, then whatever requests are left
graceful_timeout = int(settings.drain_timeout_s + settings.handover_spread_s) + 10
# a request's headers must arrive within this (a slow-loris handshake is cut off), and a kept-alive
# connection may idle this long between requests
keepalive = max(1, int(settings.connect_timeout_s))
accesslog = None
errorlog = "-"
loglevel = settings.log_level
proc_name = "rooms-" + settings.node_name
# gunicorn 27 opens a shared control socket in $HOME by default; nodes on one host would collide.
control_socket_disable = True


def on_starting(server):
    """Raise the open-file limit so the worker can hold worker_connections sockets (many hosts
    start processes at 1024): the hard limit too where the process may (root, CAP_SYS_RESOURCE),
    else up to it, with a warning naming it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = worker_connections + 1024  # Redis, nginx upstream keepalive, logs, listeners
    if soft != resource.RLIM_INFINITY and soft < wanted:
        if hard != resource.RLIM_INFINITY and hard < wanted:
            try:
                resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, wanted))
                soft, hard = wanted, wanted
            except (ValueError, OSError):
                pass  # not allowed here: up to the hard limit, and the warning below
        raised = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (raised, hard))
        if raised < wanted:
            server.log.warning("the open-file limit (hard %d) lets this node hold about %d "
                               "connections, fewer than WORKER_CONNECTIONS=%d: raise the limit "
                               "(ulimit -n, or the container's nofile)", hard, raised - 1024,
                               worker_connections)


def post_worker_init(worker):
    """SIGTERM drains the node (service/drain.py) instead of cutting its connections."""
    from service.node.drain import install

    install(worker.wsgi, worker)
