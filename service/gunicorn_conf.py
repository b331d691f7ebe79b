"""gunicorn settings for one node: one gevent worker (gunicorn's own balancing is not sticky)."""

import os

bind = os.environ.get("BIND", "127.0.0.1:5001")
worker_class = "gevent"
workers = 1
worker_connections = int(os.environ.get("WORKER_CONNECTIONS", "10000"))
timeout = 60


def _drain_timeout_s() -> float:
    try:
        return float(os.environ.get("DRAIN_TIMEOUT_S", "5"))
    except ValueError:
        return 5.0  # the node itself refuses the bad value, naming DRAIN_TIMEOUT_S


graceful_timeout = int(_drain_timeout_s()) + 10  # draining, then whatever requests are left
keepalive = 75
accesslog = None
errorlog = "-"
loglevel = os.environ.get("LOG_LEVEL", "info")
proc_name = "rooms-" + os.environ.get("NODE_NAME", "node")
# gunicorn 27 opens a shared control socket in $HOME by default; nodes on one host would collide.
control_socket_disable = True


def post_worker_init(worker):
    """SIGTERM drains the node (service/drain.py) instead of cutting its connections."""
    from service.drain import install

    install(worker.wsgi, worker)
