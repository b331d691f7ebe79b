"""gunicorn settings for one node: one gevent worker (gunicorn's own balancing is not sticky)."""

import os
import resource

bind = os.environ.get("BIND", "127.0.0.1:5001")
worker_class = "gevent"
workers = 1
timeout = 60


def _worker_connections() -> int:
    value = os.environ.get("WORKER_CONNECTIONS", "10000")
    if not value.isdigit() or int(value) < 1:
        raise SystemExit(f"configuration error: WORKER_CONNECTIONS must be a positive integer, "
                         f"got {value!r}")
    return int(value)


worker_connections = _worker_connections()


def _seconds(name: str, default: float) -> float:
    try:
        return float(os.environ.get(name, str(default)))
    except ValueError:
        return default  # the node itself refuses the bad value, naming the setting


# draining waits for events in flight and spreads the hand-over, then whatever requests are left
graceful_timeout = int(_seconds("DRAIN_TIMEOUT_S", 5) + _seconds("HANDOVER_SPREAD_S", 5)) + 10


# a request's headers must arrive within this (a slow-loris handshake is cut off), and a kept-alive
# connection may idle this long between requests
keepalive = max(1, int(_seconds("CONNECT_TIMEOUT_S", 10)))
accesslog = None
errorlog = "-"
loglevel = os.environ.get("LOG_LEVEL", "info")
proc_name = "rooms-" + os.environ.get("NODE_NAME", "node")
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
