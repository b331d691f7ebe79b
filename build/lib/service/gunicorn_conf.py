"""gunicorn settings for one node: one gevent worker (gunicorn's own balancing is not sticky)."""

import os

bind = os.environ.get("BIND", "127.0.0.1:5001")
worker_class = "gevent"
workers = 1
worker_connections = int(os.environ.get("WORKER_CONNECTIONS", "10000"))
timeout = 60
graceful_timeout = 20
keepalive = 75
accesslog = None
errorlog = "-"
loglevel = os.environ.get("LOG_LEVEL", "info")
proc_name = "rooms-" + os.environ.get("NODE_NAME", "node")
# gunicorn 27 opens a shared control socket in $HOME by default; nodes on one host would collide.
control_socket_disable = True
