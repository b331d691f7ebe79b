"""One node under eventlet, served by eventlet's own WSGI server (gunicorn 26 dropped its eventlet
worker): `BIND=127.0.0.1:5001 python -m service.node.eventlet_server`. It reads the node's settings
(service/settings) with ASYNC_MODE=eventlet, so those only gevent mode honours are refused if set.

gevent under gunicorn is the default and the recommended mode; this one exists for users who must
keep eventlet, and `make bench` measures what it costs. SIGTERM stops it without draining."""

import eventlet

eventlet.monkey_patch()

import os  # noqa: E402 - after monkey patching
import sys  # noqa: E402

from eventlet import wsgi  # noqa: E402


def main() -> None:
    """Load the settings (ASYNC_MODE=eventlet whatever the environment says), build the node, and
    serve it on BIND with at most WORKER_CONNECTIONS connections at once. A bad setting stops the
    start with "configuration error: ..." naming it, exit status 3."""
    from service import create_app
    from service.settings import SettingsError, load_settings
    from service.transport.compat import CompatError

    try:
        settings = load_settings({**os.environ, "ASYNC_MODE": "eventlet"})
        app = create_app(settings)
    except SettingsError as error:
        print(f"configuration error: {error}", file=sys.stderr, flush=True)
        sys.exit(3)
    except CompatError as error:
        print(f"cannot start: {error}", file=sys.stderr, flush=True)
        sys.exit(3)
    host, _, port = settings.bind.rpartition(":")
    wsgi.server(eventlet.listen((host or "127.0.0.1", int(port))), app, log_output=False,
                max_size=settings.worker_connections)


if __name__ == "__main__":
    main()
